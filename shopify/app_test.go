package shopify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"rtbshopify/models"
)

func TestRequireSessionExchangesOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		resp, body := e.api(e.sessionToken(testShop, nil))
		if resp.StatusCode != 200 || !strings.Contains(body, testShop) || !strings.Contains(body, `"user":"42"`) {
			t.Fatalf("first call: %d %s", resp.StatusCode, body)
		}
		s := e.shop(testShop)
		if s.State != models.ShopInstalled || s.InstalledAt == nil || s.Scopes != "read_products,write_products,write_files" {
			t.Fatalf("shop = %+v", s)
		}
		if s.AccessTokenExpiresAt == nil || !s.AccessTokenExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
			t.Fatalf("access expiry = %v", s.AccessTokenExpiresAt)
		}
		if s.RefreshTokenExpiresAt == nil || !s.RefreshTokenExpiresAt.Equal(e.clock.Now().Add(90*24*time.Hour)) {
			t.Fatalf("refresh expiry = %v", s.RefreshTokenExpiresAt)
		}
		access, refresh := e.open(s, s.AccessToken), e.open(s, s.RefreshToken)
		if !strings.HasPrefix(access, "shpat_") || !strings.HasPrefix(refresh, "shprt_") {
			t.Fatalf("stored tokens do not open to the issued ones")
		}
		// The columns hold ciphertext only.
		var raw struct{ AccessToken, RefreshToken string }
		db.Raw("SELECT access_token, refresh_token FROM shops WHERE domain = ?", testShop).Scan(&raw)
		if strings.Contains(raw.AccessToken, access) || strings.Contains(raw.RefreshToken, refresh) ||
			!strings.HasPrefix(raw.AccessToken, "k1:") {
			t.Fatal("a token is stored in plaintext")
		}
		if x, _ := e.stub.counts(testShop); x != 1 {
			t.Fatalf("exchanges = %d", x)
		}
		if e.stub.hosts[0] != testShop {
			t.Fatalf("token request Host = %q, want the shop", e.stub.hosts[0])
		}

		e.clock.Advance(30 * time.Minute)
		if resp, body := e.api(e.sessionToken(testShop, nil)); resp.StatusCode != 200 {
			t.Fatalf("second call: %d %s", resp.StatusCode, body)
		}
		if x, _ := e.stub.counts(testShop); x != 1 {
			t.Fatalf("second call exchanged again: exchanges = %d", x)
		}
		if n := e.count(&models.Shop{}, ""); n != 1 {
			t.Fatalf("%d shop rows", n)
		}
	})
}

func TestRequireSessionConcurrentFirstRequests(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		var wg gosync.WaitGroup
		codes := make([]int, 6)
		for i := range codes {
			tok := e.sessionToken(testShop, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := httptest.NewRequest(http.MethodGet, "/api/ping", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := e.http.Test(req, -1)
				if err != nil {
					t.Error(err)
					return
				}
				codes[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != 200 {
				t.Fatalf("request %d: %d", i, c)
			}
		}
		if x, _ := e.stub.counts(testShop); x != 1 {
			t.Fatalf("exchanges = %d, want 1", x)
		}
	})
}

func TestRequireSessionRejects(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		for name, tok := range map[string]string{
			"missing":      "",
			"garbage":      "abc",
			"expired":      e.sessionToken(testShop, func(c jwt.MapClaims) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() }),
			"wrong aud":    e.sessionToken(testShop, func(c jwt.MapClaims) { c["aud"] = "x" }),
			"bad dest/iss": e.sessionToken(testShop, func(c jwt.MapClaims) { c["iss"] = "https://other.myshopify.com/admin" }),
		} {
			resp, body := e.api(tok)
			if resp.StatusCode != 401 || resp.Header.Get(RetryInvalidSessionHeader) != "1" ||
				!strings.Contains(body, `"code":"invalid_session"`) {
				t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get(RetryInvalidSessionHeader), body)
			}
		}
		if x, _ := e.stub.counts(testShop); x != 0 || e.count(&models.Shop{}, "") != 0 {
			t.Fatal("a rejected session reached Shopify or stored a shop")
		}
	})
}

func TestRequireSessionExchangeRefused(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.stub.set(func(s *tokenStub) { s.refuseX = true })
		resp, body := e.api(e.sessionToken(testShop, nil))
		if resp.StatusCode != 401 || resp.Header.Get(RetryInvalidSessionHeader) != "1" || !strings.Contains(body, "invalid_session") {
			t.Fatalf("refused exchange: %d %s", resp.StatusCode, body)
		}
		if e.count(&models.Shop{}, "") != 0 {
			t.Fatal("shop stored after a refused exchange")
		}

		e.stub.set(func(s *tokenStub) { s.refuseX, s.fail = false, 1 })
		resp, body = e.api(e.sessionToken(testShop, nil))
		if resp.StatusCode != 503 || !strings.Contains(body, `"code":"shopify_unavailable"`) {
			t.Fatalf("5xx exchange: %d %s", resp.StatusCode, body)
		}
		if e.count(&models.Shop{}, "") != 0 {
			t.Fatal("shop stored after a failed exchange")
		}
		// Shopify is back: the next request installs.
		e.install(testShop)
	})
}

func TestRequireSessionReexchangesWhenUnusable(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		cases := []struct {
			name   string
			break_ map[string]any
		}{
			{"uninstalled", map[string]any{"state": models.ShopUninstalled, "access_token": "", "refresh_token": ""}},
			{"tokens cleared", map[string]any{"access_token": "", "refresh_token": ""}},
			{"refresh token expired", map[string]any{
				"access_token_expires_at":  e.clock.Now().Add(-time.Hour),
				"refresh_token_expires_at": e.clock.Now().Add(-time.Minute)}},
		}
		for i, tc := range cases {
			if err := db.Model(&models.Shop{}).Where("id = ?", s.ID).Updates(tc.break_).Error; err != nil {
				t.Fatal(err)
			}
			if resp, body := e.api(e.sessionToken(testShop, nil)); resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, body)
			}
			if x, _ := e.stub.counts(testShop); x != i+2 {
				t.Fatalf("%s: exchanges = %d, want %d", tc.name, x, i+2)
			}
			got := e.shop(testShop)
			if got.ID != s.ID || got.State != models.ShopInstalled || got.UninstalledAt != nil || got.AccessToken == "" {
				t.Fatalf("%s: shop after re-exchange = %+v", tc.name, got)
			}
		}
	})
}
