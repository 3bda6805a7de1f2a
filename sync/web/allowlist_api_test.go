package web_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb"
	"rtbshopify/shopify"
	imgsync "rtbshopify/sync"
	"rtbshopify/sync/web"
)

// An Admin API refusal by Shopify's IP allowlist during a request (here the
// backfill's estimate and its start) is no "Something went wrong": the
// merchant gets a 503 saying what the operator must change, and /metrics
// counts the refusal like those of jobs.
func TestIPAllowlistRefusalOutsideAJobIsActionable(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "PUT", "/api/settings", validSettings())

		// The app as main wires it, so the Admin API client and /metrics
		// share the process's monitor.
		cfg := config.Config{
			AppURL: "http://127.0.0.1:8080", ShopifyAPIKey: apiKey, ShopifyAPISecret: apiSecret,
			ShopifyScopes: []string{"read_products", "write_products", "write_files"}, ShopifyAPIVersion: "2026-10",
			ShopifyAdminBaseURL: e.store.URL(),
			EncryptionKeys:      []config.Key{{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)}},
		}
		signer, _ := rtb.NewTokenSigner([]rtb.TokenKey{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}})
		client, err := rtb.NewClient(e.rtb.BaseURL(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.DiscardHandler)
		app, err := web.Build(web.Parts{
			DB: db, Log: log, Sealer: e.sealer, Signer: signer, RTB: client,
			Shopify:  func(enq shopify.Enqueuer) *shopify.App { return shopify.New(cfg, db, e.sealer, enq, log) },
			Pipeline: imgsync.Options{AppURL: cfg.AppURL, Schedule: imgsync.Schedule{Disabled: true}},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.app = app.HTTP

		e.must(200, shopA, "GET", "/api/backfill/estimate", nil) // admitted while no allowlist is set
		e.store.SetIPAllowlist(netip.MustParsePrefix("203.0.113.0/24"))
		for _, route := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/backfill/estimate", nil},
			{"POST", "/api/backfill", map[string]any{"confirmAmount": "100.00"}},
		} {
			a := e.must(http.StatusServiceUnavailable, shopA, route.method, route.path, route.body)
			msg, _ := a.body["error"].(map[string]any)["message"].(string)
			if a.errCode() != "ip_allowlist" || !strings.Contains(msg, "IP allowlist in Shopify's Dev Dashboard") {
				t.Errorf("%s %s: %s", route.method, route.path, a.raw)
			}
			if strings.Contains(msg, "this image waits") {
				t.Errorf("%s %s speaks of an image waiting: %s", route.method, route.path, msg)
			}
		}
		var backfills int64
		db.Model(&models.Backfill{}).Count(&backfills)
		if backfills != 0 {
			t.Errorf("%d backfills started while Shopify refused the app", backfills)
		}

		resp, err := app.HTTP.Test(httptest.NewRequest("GET", "/metrics", nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), "rtbshopify_shopify_ip_allowlist_refusals_total 2\n") {
			t.Errorf("/metrics does not count the 2 refusals:\n%s", grepMetric(string(metrics), "ip_allowlist"))
		}
	})
}

func grepMetric(all, part string) string {
	var out []string
	for _, l := range strings.Split(all, "\n") {
		if strings.Contains(l, part) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
