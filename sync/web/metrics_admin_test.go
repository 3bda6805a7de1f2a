package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/admin"
)

// What the Admin API client's Monitor counts reaches /metrics.
func TestAdminMonitorInMetrics(t *testing.T) {
	shopify := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Shopify-Access-Token") == "blocked" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("X-Shopify-API-Deprecated-Reason", "Product.bodyHtml")
		w.Write([]byte(`{"data":{"product":null}}`))
	}))
	t.Cleanup(shopify.Close)
	mon := admin.NewMonitor(nil)
	for _, tok := range []string{"ok", "ok", "blocked"} {
		c := admin.New(admin.Options{Shop: "a.myshopify.com", Token: admin.StaticToken(tok), BaseURL: shopify.URL, Monitor: mon, MaxAttempts: 1})
		c.Product(context.Background(), "gid://shopify/Product/1")
	}

	db := modelstest.Open(t, "sqlite").DB
	log := slog.New(slog.DiscardHandler)
	reg := NewRegistry(db, log)
	RegisterAdminMetrics(reg, mon)
	app := NewServer(ServerOptions{DB: db, Log: log, Registry: reg})
	resp, err := app.Test(httptest.NewRequest("GET", "/metrics", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`rtbshopify_shopify_deprecated_answers_total{operation="Product"} 2`,
		`rtbshopify_shopify_ip_allowlist_refusals_total 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
