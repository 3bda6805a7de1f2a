package shopify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
)

func TestVerifyQueryHMACDocsExample(t *testing.T) {
	// The example from Shopify's OAuth documentation (secret "hush").
	q := "code=0907a61c0c8d55e99db179b68161bc00&hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173"
	if !VerifyQueryHMAC(q, "hush") {
		t.Fatal("the documented example does not verify")
	}
	if VerifyQueryHMAC(q, "other") || VerifyQueryHMAC(strings.Replace(q, "code=0", "code=1", 1), "hush") {
		t.Fatal("a wrong secret or altered query verifies")
	}
	if VerifyQueryHMAC("shop=x.myshopify.com", "hush") {
		t.Fatal("a query without hmac verifies")
	}
}

// signQuery adds Shopify's hex hmac over the sorted query.
func signQuery(v url.Values, secret string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+v.Get(k))
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strings.Join(parts, "&")))
	out := url.Values{}
	for k := range v {
		out.Set(k, v.Get(k))
	}
	out.Set("hmac", hex.EncodeToString(m.Sum(nil)))
	return out.Encode()
}

// startAuth runs GET /auth and returns the state nonce and the cookie.
func (e *env) startAuth(shop string) (state string, cookie *http.Cookie) {
	e.t.Helper()
	resp, body := e.do(httptest.NewRequest(http.MethodGet, "/auth?shop="+shop, nil))
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("/auth: %d %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == stateCookie {
			cookie = c
		}
	}
	if cookie == nil {
		e.t.Fatal("no state cookie")
	}
	return loc.Query().Get("state"), cookie
}

func (e *env) callback(query string, cookie *http.Cookie) (*http.Response, string) {
	req := httptest.NewRequest(http.MethodGet, "/auth/callback?"+query, nil)
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	return e.do(req)
}

func (e *env) callbackParams(shop, state string) url.Values {
	return url.Values{
		"code": {e.stub.issueCode(shop)}, "host": {"YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvY29vbA"},
		"shop": {shop}, "state": {state}, "timestamp": {strconv.FormatInt(e.clock.Now().Unix(), 10)},
	}
}

func TestAuthRedirect(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		for _, bad := range []string{"", "evil.com", "x.myshopify.com.evil.com", "-x.myshopify.com"} {
			resp, _ := e.do(httptest.NewRequest(http.MethodGet, "/auth?shop="+url.QueryEscape(bad), nil))
			if resp.StatusCode != 400 || len(resp.Cookies()) != 0 {
				t.Errorf("shop %q: %d", bad, resp.StatusCode)
			}
		}
		resp, _ := e.do(httptest.NewRequest(http.MethodGet, "/auth?shop="+testShop, nil))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		q := loc.Query()
		if resp.StatusCode != 302 || loc.Scheme != "https" || loc.Host != testShop || loc.Path != "/admin/oauth/authorize" ||
			q.Get("client_id") != testKey || q.Get("scope") != "read_products,write_products,write_files" ||
			q.Get("redirect_uri") != "https://app.example.com/auth/callback" || len(q.Get("state")) < 32 {
			t.Fatalf("redirect = %d %s", resp.StatusCode, loc)
		}
		setCookie := resp.Header.Get("Set-Cookie")
		for _, attr := range []string{"HttpOnly", "secure", "SameSite=Lax", "path=/auth"} {
			if !strings.Contains(strings.ToLower(setCookie), strings.ToLower(attr)) {
				t.Errorf("state cookie lacks %s: %s", attr, setCookie)
			}
		}
		if strings.Contains(setCookie, testSecret) {
			t.Fatal("the secret is in the cookie")
		}
	})
}

func TestAuthCallbackInstalls(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		state, cookie := e.startAuth(testShop)
		e.clock.Advance(20 * time.Second) // the merchant reads the consent screen
		resp, body := e.callback(signQuery(e.callbackParams(testShop, state), testSecret), cookie)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://"+testShop+"/admin/apps/"+testKey {
			t.Fatalf("callback: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		s := e.shop(testShop)
		if s.State != models.ShopInstalled || !strings.HasPrefix(e.open(s, s.AccessToken), "shpat_") || s.AccessTokenExpiresAt == nil {
			t.Fatalf("shop = %+v", s)
		}
		// The installed shop serves /api without a token exchange.
		if resp, _ := e.api(e.sessionToken(testShop, nil)); resp.StatusCode != 200 {
			t.Fatalf("/api after install: %d", resp.StatusCode)
		}
		if x, _ := e.stub.counts(testShop); x != 0 {
			t.Fatal("token exchange after a code-grant install")
		}
	})
}

func TestAuthCallbackRejects(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		state, cookie := e.startAuth(testShop)
		otherState, otherCookie := e.startAuth("other.myshopify.com")
		forged := &http.Cookie{Name: stateCookie, Value: state + "." + testShop + "." + strconv.FormatInt(e.clock.Now().Add(time.Hour).Unix(), 10) + "." + strings.Repeat("ab", 32)}
		type tc struct {
			name   string
			query  func() string
			cookie *http.Cookie
			status int
		}
		params := func(mod func(url.Values)) url.Values {
			v := e.callbackParams(testShop, state)
			if mod != nil {
				mod(v)
			}
			return v
		}
		cases := []tc{
			{"bad hmac", func() string { return signQuery(params(nil), "wrong") }, cookie, 401},
			{"no hmac", func() string { return params(nil).Encode() }, cookie, 401},
			{"altered after signing", func() string {
				return strings.Replace(signQuery(params(nil), testSecret), "code=", "code=x", 1)
			}, cookie, 401},
			{"bad state", func() string { return signQuery(params(func(v url.Values) { v.Set("state", otherState) }), testSecret) }, cookie, 401},
			{"no cookie", func() string { return signQuery(params(nil), testSecret) }, nil, 401},
			{"forged cookie", func() string { return signQuery(params(nil), testSecret) }, forged, 401},
			{"cookie of another shop", func() string {
				return signQuery(params(func(v url.Values) { v.Set("state", otherState) }), testSecret)
			}, otherCookie, 401},
			{"stale timestamp", func() string {
				return signQuery(params(func(v url.Values) {
					v.Set("timestamp", strconv.FormatInt(e.clock.Now().Add(-91*time.Second).Unix(), 10))
				}), testSecret)
			}, cookie, 400},
			{"future timestamp", func() string {
				return signQuery(params(func(v url.Values) {
					v.Set("timestamp", strconv.FormatInt(e.clock.Now().Add(91*time.Second).Unix(), 10))
				}), testSecret)
			}, cookie, 400},
			{"no timestamp", func() string { return signQuery(params(func(v url.Values) { v.Del("timestamp") }), testSecret) }, cookie, 400},
			{"bad shop", func() string {
				return signQuery(params(func(v url.Values) { v.Set("shop", "evil.com") }), testSecret)
			}, cookie, 400},
			{"code refused", func() string { return signQuery(params(func(v url.Values) { v.Set("code", "unknown") }), testSecret) }, cookie, 401},
		}
		for _, c := range cases {
			resp, body := e.callback(c.query(), c.cookie)
			if resp.StatusCode != c.status || body == "" {
				t.Errorf("%s: %d %q, want %d", c.name, resp.StatusCode, body, c.status)
			}
		}
		// An expired state cookie.
		e.clock.Advance(11 * time.Minute)
		if resp, _ := e.callback(signQuery(params(nil), testSecret), cookie); resp.StatusCode != 401 {
			t.Errorf("expired cookie: %d", resp.StatusCode)
		}
		if n := e.count(&models.Shop{}, ""); n != 0 {
			t.Fatalf("%d shops stored by rejected callbacks", n)
		}
		// Signed with the previous secret during a rotation: accepted.
		state, cookie = e.startAuth(testShop)
		if resp, body := e.callback(signQuery(e.callbackParams(testShop, state), oldSecret), cookie); resp.StatusCode != 302 {
			t.Fatalf("previous secret: %d %s", resp.StatusCode, body)
		}
	})
}
