package shopifytest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func postToken(t *testing.T, s *Store, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/admin/oauth/access_token", strings.NewReader(form.Encode()))
	req.Host = testShop
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func exchangeForm(subject string) url.Values {
	return url.Values{
		"client_id": {"key123"}, "client_secret": {"secret456"},
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {tokenTypeIDToken},
		"requested_token_type": {tokenTypeOffline},
		"expiring":             {"1"},
	}
}

func TestTokenExchangeAndRefreshRotation(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := newStore(t, Options{Now: clock.Now})

	// Bad session tokens are refused.
	forged := signJWT(map[string]any{"dest": "https://" + testShop, "iss": "https://" + testShop + "/admin", "aud": "key123",
		"exp": clock.Now().Add(time.Minute).Unix(), "nbf": clock.Now().Unix()}, "wrong-secret")
	for name, tok := range map[string]string{
		"forged":     forged,
		"expired":    s.SessionToken(testShop, -time.Minute),
		"garbage":    "a.b.c",
		"other shop": s.SessionToken("other.myshopify.com", time.Minute),
	} {
		if code, body := postToken(t, s, exchangeForm(tok)); code != 400 || body["error"] != "invalid_subject_token" {
			t.Fatalf("%s: %d %v", name, code, body)
		}
	}
	bad := exchangeForm(s.SessionToken(testShop, time.Minute))
	bad.Set("client_secret", "nope")
	if code, _ := postToken(t, s, bad); code != 400 {
		t.Fatalf("bad client secret accepted: %d", code)
	}

	code, tok := postToken(t, s, exchangeForm(s.SessionToken(testShop, time.Minute)))
	if code != 200 || tok["expires_in"] != float64(3600) || tok["refresh_token_expires_in"] != float64(7776000) || tok["scope"] == "" {
		t.Fatalf("exchange: %d %v", code, tok)
	}
	access1, refresh1 := tok["access_token"].(string), tok["refresh_token"].(string)
	if r := gql(t, s, access1, `{ products(first: 1) { nodes { id } } }`, nil); r.Status != 200 {
		t.Fatalf("fresh token refused: %s", r.Raw)
	}

	refresh := url.Values{"client_id": {"key123"}, "client_secret": {"secret456"}, "grant_type": {"refresh_token"}, "refresh_token": {refresh1}}
	code, tok2 := postToken(t, s, refresh)
	if code != 200 || tok2["refresh_token"] == refresh1 || tok2["access_token"] == access1 {
		t.Fatalf("refresh: %d %v", code, tok2)
	}
	// The old refresh token died with the rotation.
	if code, body := postToken(t, s, refresh); code != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", code, body)
	}
	// The old access token works until it expires, then nothing does.
	if r := gql(t, s, access1, `{ products(first: 1) { nodes { id } } }`, nil); r.Status != 200 {
		t.Fatalf("old access token refused before expiry: %d", r.Status)
	}
	clock.Add(time.Hour + time.Second)
	if r := gql(t, s, access1, `{ products(first: 1) { nodes { id } } }`, nil); r.Status != 401 {
		t.Fatalf("expired token accepted: %d", r.Status)
	}
	if s.Exchanges(testShop) != 1 || s.Refreshes(testShop) != 1 {
		t.Fatalf("counters: %d exchanges, %d refreshes", s.Exchanges(testShop), s.Refreshes(testShop))
	}
}

func TestAuthorizationCodeGrant(t *testing.T) {
	s := newStore(t, Options{})
	code := s.IssueAuthCode(testShop)
	form := url.Values{"client_id": {"key123"}, "client_secret": {"secret456"}, "code": {code}}
	if st, body := postToken(t, s, form); st != 200 || body["access_token"] == nil {
		t.Fatalf("code grant: %d %v", st, body)
	}
	if st, _ := postToken(t, s, form); st != 400 {
		t.Fatalf("code reused: %d", st)
	}
}

func TestSendWebhook(t *testing.T) {
	s := newStore(t, Options{WebhookRetryInterval: time.Millisecond})
	rec := sampleProduct(t, s)
	waitReady(t, s, rec.ID)
	var mu sync.Mutex
	var ids []string
	calls := 0
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("secret456"))
		mac.Write(body)
		if r.Header.Get("X-Shopify-Hmac-Sha256") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			t.Error("bad signature")
		}
		for _, h := range []string{"X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-API-Version", "X-Shopify-Event-Id", "X-Shopify-Triggered-At"} {
			if r.Header.Get(h) == "" {
				t.Errorf("missing %s", h)
			}
		}
		var p map[string]any
		if err := json.Unmarshal(body, &p); err != nil || p["admin_graphql_api_id"] != rec.ID {
			t.Errorf("payload %s", body)
		}
		if m := dig(p, "media", 1); dig(m, "admin_graphql_api_id") != rec.MediaIDs[1] || dig(m, "position") != float64(2) ||
			dig(m, "status") != "READY" || dig(m, "preview_image", "src") == nil || dig(m, "variant_ids", 0) == nil {
			t.Errorf("media payload %v", m)
		}
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.Header.Get("X-Shopify-Webhook-Id"))
		calls++
		if calls < 3 {
			w.WriteHeader(500)
		}
	}))
	defer app.Close()
	resp, err := s.SendWebhook(context.Background(), app.URL+"/webhooks", testShop, "products/update", s.ProductWebhookPayload(testShop, rec.ID))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("delivery: %v %v", resp, err)
	}
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("webhook ids across retries: %v", ids)
	}
}
