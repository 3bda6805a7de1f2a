package ui_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"rtbshopify/shopify"
	"rtbshopify/shopify/ui"
)

const (
	apiKey = `key"<&>`
	secret = "test-secret"
	shop   = "demo-shop.myshopify.com"
)

// signedQuery is Shopify's admin launch query for q: hex HMAC over the
// sorted pairs with the app secret.
func signedQuery(q url.Values, key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(q.Encode()))
	out := url.Values{}
	for k, v := range q {
		out[k] = v
	}
	out.Set("hmac", hex.EncodeToString(m.Sum(nil)))
	return out.Encode()
}

func sessionToken(t *testing.T, shop string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://" + shop + "/admin", "dest": "https://" + shop, "aud": apiKey,
		"sub": "42", "exp": now.Add(ttl).Unix(), "nbf": now.Add(-time.Second).Unix(), "iat": now.Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newApp(devTokens func(string) string) *fiber.App { return newAppWith(devTokens, false) }

func newAppWith(devTokens func(string) string, shim bool) *fiber.App {
	app := fiber.New()
	ui.Register(app, ui.Options{
		APIKey:    apiKey,
		Secrets:   []string{secret, ""},
		Sessions:  shopify.SessionVerifier{APIKey: apiKey, Secrets: []string{secret}},
		DevTokens: devTokens,
		Shim:      shim,
	})
	return app
}

func get(t *testing.T, app *fiber.App, target string) (*http.Response, string) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", target, nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func launch(extra url.Values) url.Values {
	q := url.Values{"embedded": {"1"}, "host": {"YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtby1zaG9w"},
		"shop": {shop}, "timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}}
	for k, v := range extra {
		q[k] = v
	}
	return q
}

func TestPage(t *testing.T) {
	app := newApp(nil)
	framed := "frame-ancestors https://" + shop + " https://admin.shopify.com"
	tests := []struct {
		name   string
		query  string
		status int
		csp    string
		body   string
	}{
		{"admin launch", signedQuery(launch(nil), secret), 200, framed, ""},
		{"admin launch with id_token", signedQuery(launch(url.Values{"id_token": {sessionToken(t, shop, time.Minute)}}), secret), 200, framed, ""},
		{"previous secret is not configured", signedQuery(launch(nil), "old-secret"), 401, "frame-ancestors 'none'", "signature is invalid"},
		{"tampered hmac", strings.Replace(signedQuery(launch(nil), secret), "embedded=1", "embedded=0", 1), 401, "frame-ancestors 'none'", "signature is invalid"},
		{"hmac not hex", launch(url.Values{"hmac": {"zz"}}).Encode(), 401, "frame-ancestors 'none'", ""},
		{"bad shop", signedQuery(launch(url.Values{"shop": {"evil.com?x.myshopify.com"}}), secret), 400, "frame-ancestors 'none'", "Invalid shop"},
		{"hmac without shop", "hmac=00&timestamp=1", 400, "frame-ancestors 'none'", "missing the shop"},
		{"id_token of another shop", signedQuery(launch(url.Values{"id_token": {sessionToken(t, "other.myshopify.com", time.Minute)}}), secret), 401, "frame-ancestors 'none'", "another shop"},
		{"expired id_token", signedQuery(launch(url.Values{"id_token": {sessionToken(t, shop, -time.Minute)}}), secret), 401, "frame-ancestors 'none'", "expired"},
		{"id_token alone proves its shop", "id_token=" + sessionToken(t, shop, time.Minute), 200, framed, ""},
		{"no query", "", 200, "frame-ancestors 'none'", ""},
		{"unverified shop is not framed", "shop=" + shop, 200, "frame-ancestors 'none'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, app, "/?"+tt.query)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != tt.csp {
				t.Errorf("CSP %q, want %q", got, tt.csp)
			}
			for h, want := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s %q, want %q", h, got, want)
				}
			}
			if !strings.Contains(body, tt.body) {
				t.Errorf("body %q does not say %q", body, tt.body)
			}
			if tt.status != 200 {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("error Content-Type %q, want text/plain", ct)
				}
				return
			}
			for _, want := range []string{
				`<meta name="shopify-api-key" content="key&#34;&lt;&amp;&gt;">`,
				`<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js"></script>`,
				`https://cdn.shopify.com/shopifycloud/polaris.js`,
				`<script src="/ui/app.js?v=`,
				`<s-email-field id="f-email"`,
				`<form id="settings" data-save-bar`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			// App Bridge must come before any other script.
			if strings.Index(body, "<script") != strings.Index(body, `<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js">`) {
				t.Error("app-bridge.js is not the first script")
			}
		})
	}
}

func TestAssets(t *testing.T) {
	app := newApp(nil)
	_, page := get(t, app, "/")
	for _, a := range []struct{ path, ctype, contains string }{
		{"/ui/app.js", "text/javascript", "textContent"},
		{"/ui/app.css", "text/css", ":focus-visible"},
	} {
		i := strings.Index(page, a.path+"?v=")
		if i < 0 {
			t.Fatalf("page does not link %s", a.path)
		}
		versioned := page[i : i+strings.IndexByte(page[i:], '"')]
		resp, body := get(t, app, versioned)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), a.ctype) || !strings.Contains(body, a.contains) {
			t.Errorf("%s: %d %q", versioned, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q, want immutable for the versioned URL", versioned, cc)
		}
		if resp, _ := get(t, app, a.path); resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s without version: Cache-Control %q, want no-cache", a.path, resp.Header.Get("Cache-Control"))
		}
	}
}

// The page's script must never build markup from data.
func TestScriptHasNoHTMLSinks(t *testing.T) {
	app := newApp(nil)
	_, js := get(t, app, "/ui/app.js")
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}

func TestDevTokens(t *testing.T) {
	t.Run("absent without DevTokens", func(t *testing.T) {
		resp, _ := get(t, newApp(nil), "/dev/session-token?shop="+shop)
		if resp.StatusCode != 404 {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
	})
	t.Run("served with DevTokens", func(t *testing.T) {
		var asked string
		app := newApp(func(s string) string { asked = s; return "tok-" + s })
		resp, body := get(t, app, "/dev/session-token?shop="+shop)
		var got struct{ Token string }
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if got.Token != "tok-"+shop || asked != shop || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("token %q for %q, Cache-Control %q", got.Token, asked, resp.Header.Get("Cache-Control"))
		}
		if resp, _ := get(t, app, "/dev/session-token?shop=evil.com"); resp.StatusCode != 400 {
			t.Errorf("bad shop: status %d, want 400", resp.StatusCode)
		}
	})
}
