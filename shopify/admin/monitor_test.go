package admin_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
)

// logBuffer is a log sink safe for the client's goroutines.
type logBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLogBuffer() *logBuffer { return &logBuffer{mu: make(chan struct{}, 1)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func TestDeprecationLoggedOncePerOperationAndCounted(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("X-Shopify-API-Deprecated-Reason", "Product.bodyHtml, Product.featuredImage")
		w.Header().Set("X-Shopify-API-Version", "2027-01")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"product":null}}`))
	}))
	t.Cleanup(srv.Close)
	logs := newLogBuffer()
	mon := admin.NewMonitor(slog.New(slog.NewTextHandler(logs, nil)))
	for range 2 { // two clients, as two units of work would build
		c := admin.New(admin.Options{Shop: shop, Token: admin.StaticToken("tok"), BaseURL: srv.URL, Monitor: mon})
		for range 3 {
			if _, err := c.Product(ctx(t), "gid://shopify/Product/1"); !errors.Is(err, admin.ErrNotFound) {
				t.Fatalf("Product error = %v, want ErrNotFound", err)
			}
		}
	}
	if got := mon.Deprecations()["Product"]; got != 6 || calls.Load() != 6 {
		t.Fatalf("counted %d deprecations for Product over %d calls, want 6 and 6", got, calls.Load())
	}
	out := logs.String()
	if n := strings.Count(out, "reports deprecated use"); n != 1 {
		t.Fatalf("deprecation logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "Product.bodyHtml, Product.featuredImage") || !strings.Contains(out, "op=Product") {
		t.Fatalf("log does not name the operation and the reason:\n%s", out)
	}
	if n := strings.Count(out, "no longer served"); n != 1 || !strings.Contains(out, "served=2027-01") {
		t.Fatalf("fall-forward logged %d times, want once naming 2027-01:\n%s", n, out)
	}
}

func TestIPAllowlistRefusalIsNotRetried(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	f.store.ResetRequests()
	f.store.SetIPAllowlist(netip.MustParsePrefix("203.0.113.0/24"))
	logs := newLogBuffer()
	mon := admin.NewMonitor(slog.New(slog.NewTextHandler(logs, nil)))
	c := admin.New(admin.Options{Shop: shop, Token: admin.StaticToken(f.token), BaseURL: f.store.URL(), Monitor: mon,
		BaseDelay: time.Millisecond})
	_, err := c.Product(ctx(t), rec.ID)
	if !errors.Is(err, admin.ErrIPNotAllowed) {
		t.Fatalf("error = %v, want ErrIPNotAllowed", err)
	}
	if admin.IsRetryable(err) {
		t.Fatal("a 403 from the IP allowlist is reported retryable")
	}
	if n := len(f.store.Requests()); n != 1 {
		t.Fatalf("%d requests sent, want 1 (no retries)", n)
	}
	if mon.IPAllowlistRefusals() != 1 || !strings.Contains(logs.String(), "IP allowlist") {
		t.Fatalf("refusals = %d, log:\n%s", mon.IPAllowlistRefusals(), logs.String())
	}
	if strings.Contains(err.Error(), f.token) {
		t.Fatal("the token leaked into the error")
	}
	// Other 4xx are not mistaken for the allowlist.
	if errors.Is(&admin.HTTPError{Status: http.StatusUnauthorized}, admin.ErrIPNotAllowed) {
		t.Fatal("401 matched ErrIPNotAllowed")
	}
}
