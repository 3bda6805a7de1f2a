package e2e_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"gorm.io/gorm"

	"rtbshopify/models"
)

const victimShop = "victim-shop.myshopify.com"

// sessionClaims are an App Bridge session token's claims for shop, valid now.
func sessionClaims(shop string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": "https://" + shop + "/admin", "dest": "https://" + shop, "aud": "test-key",
		"sub": "42", "exp": now.Add(time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
		"jti": uuid.NewString(), "sid": uuid.NewString(),
	}
}

func signSession(t *testing.T, m jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawJWT assembles a token from a header and claims, signed with
// HMAC-SHA256 under secret whatever the header says ("" leaves it unsigned).
func rawJWT(header map[string]any, claims jwt.MapClaims, secret string) string {
	enc := base64.RawURLEncoding
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signing := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	if secret == "" {
		return signing + "."
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func attackSessions(t *testing.T, db *gorm.DB, tally *attackTally) {
	h := newHarness(t, db, harnessOptions{})
	h.store.AddShop(victimShop)
	secret := h.cfg.ShopifyAPISecret
	hs := func(c jwt.MapClaims) string { return signSession(t, jwt.SigningMethodHS256, c, []byte(secret)) }
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := sessionClaims(victimShop)
	now := time.Now()
	good := hs(valid)
	parts := strings.Split(good, ".")
	other := strings.Split(hs(with(valid, "sub", "43")), ".")

	tokens := []struct{ name, header string }{
		{"expired an hour ago", "Bearer " + hs(with(valid, "exp", now.Add(-time.Hour).Unix(), "nbf", now.Add(-2*time.Hour).Unix()))},
		{"expired beyond the leeway", "Bearer " + hs(with(valid, "exp", now.Add(-15*time.Second).Unix()))},
		{"not valid for an hour", "Bearer " + hs(with(valid, "nbf", now.Add(time.Hour).Unix(), "iat", now.Add(time.Hour).Unix()))},
		{"no expiry", "Bearer " + hs(with(valid, "exp", nil))},
		{"expiry as a string", "Bearer " + hs(with(valid, "exp", "never"))},
		{"signature changed", "Bearer " + parts[0] + "." + parts[1] + "." + flipFirst(parts[2])},
		{"signature of other claims", "Bearer " + parts[0] + "." + parts[1] + "." + other[2]},
		{"claims swapped under a signature", "Bearer " + parts[0] + "." + other[1] + "." + parts[2]},
		{"signature removed", "Bearer " + parts[0] + "." + parts[1] + "."},
		{"another app's secret and key", "Bearer " + signSession(t, jwt.SigningMethodHS256, with(valid, "aud", "other-app-key"), []byte("other-app-secret"))},
		{"another app's secret", "Bearer " + signSession(t, jwt.SigningMethodHS256, valid, []byte("other-app-secret"))},
		{"another app's audience", "Bearer " + hs(with(valid, "aud", "other-app-key"))},
		{"audience list without this app", "Bearer " + hs(with(valid, "aud", []string{"other-app-key"}))},
		{"no audience", "Bearer " + hs(with(valid, "aud", nil))},
		{"alg none", "Bearer " + signSession(t, jwt.SigningMethodNone, valid, jwt.UnsafeAllowNoneSignatureType)},
		{"alg None", "Bearer " + rawJWT(map[string]any{"alg": "None", "typ": "JWT"}, valid, "")},
		{"alg NONE with a signature", "Bearer " + rawJWT(map[string]any{"alg": "NONE", "typ": "JWT"}, valid, secret)},
		{"HS512 with the app secret", "Bearer " + signSession(t, jwt.SigningMethodHS512, valid, []byte(secret))},
		{"HS384 with the app secret", "Bearer " + signSession(t, jwt.SigningMethodHS384, valid, []byte(secret))},
		{"RS256 with an attacker's key", "Bearer " + signSession(t, jwt.SigningMethodRS256, valid, rsaKey)},
		{"RS256 header, HMAC signature (key confusion)", "Bearer " + rawJWT(map[string]any{"alg": "RS256", "typ": "JWT"}, valid, secret)},
		{"ES256 header, HMAC signature", "Bearer " + rawJWT(map[string]any{"alg": "ES256", "typ": "JWT"}, valid, secret)},
		{"a kid naming a file", "Bearer " + rawJWT(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "../../dev/null"}, valid, "")},
		{"dest of another shop than iss", "Bearer " + hs(with(valid, "dest", "https://"+shopDomain))},
		{"dest not a shop", "Bearer " + hs(with(valid, "dest", "https://evil.example.com", "iss", "https://evil.example.com/admin"))},
		{"dest over http", "Bearer " + hs(with(valid, "dest", "http://"+victimShop, "iss", "http://"+victimShop+"/admin"))},
		{"dest with a suffix", "Bearer " + hs(with(valid, "dest", "https://"+victimShop+".evil.com", "iss", "https://"+victimShop+".evil.com/admin"))},
		{"dest with user info", "Bearer " + hs(with(valid, "dest", "https://"+shopDomain+"@evil.example.com", "iss", "https://"+shopDomain+"@evil.example.com/admin"))},
		{"dest with a port", "Bearer " + hs(with(valid, "dest", "https://"+victimShop+":8443", "iss", "https://"+victimShop+":8443/admin"))},
		{"dest with a path", "Bearer " + hs(with(valid, "dest", "https://"+victimShop+"/x", "iss", "https://"+victimShop+"/x/admin"))},
		{"dest with SQL", "Bearer " + hs(with(valid, "dest", "https://x'or'1'='1.myshopify.com", "iss", "https://x'or'1'='1.myshopify.com/admin"))},
		{"no dest", "Bearer " + hs(with(valid, "dest", nil))},
		{"no iss", "Bearer " + hs(with(valid, "iss", nil))},
		{"not a JWT", "Bearer not-a-token"},
		{"two parts", "Bearer " + parts[0] + "." + parts[1]},
		{"empty bearer", "Bearer "},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("test-key:"+secret))},
		{"token without a scheme", good},
		{"no Authorization", ""},
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/api/settings", ""},
		{"PUT", "/api/settings", `{"enabled": false}`},
		{"GET", "/api/jobs", ""},
		{"GET", "/api/templates", ""},
		{"POST", "/api/backfill", `{"confirmAmount": "1000.00"}`},
	}
	shops := rowCount(t, db, &models.Shop{})
	exchanges := h.store.Exchanges(shopDomain)
	settings := settingsJSON(t, h)
	for i, tk := range tokens {
		r := routes[i%len(routes)]
		for _, r := range []struct{ method, path, body string }{r, routes[(i+2)%len(routes)]} {
			tally.try(t, "session tokens", tk.name+" on "+r.method+" "+r.path, func() string {
				req, _ := http.NewRequest(r.method, h.url+r.path, strings.NewReader(r.body))
				req.Header.Set("Content-Type", "application/json")
				if tk.header != "" {
					req.Header.Set("Authorization", tk.header)
				}
				c := &http.Client{Timeout: 10 * time.Second}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var answer struct {
					Error struct{ Code, Message string }
				}
				var raw bytes.Buffer
				raw.ReadFrom(resp.Body)
				json.Unmarshal(raw.Bytes(), &answer)
				if resp.StatusCode != 401 || resp.Header.Get("X-Shopify-Retry-Invalid-Session-Request") != "1" || answer.Error.Code == "" {
					return fmt.Sprintf("answered %d (retry header %q) %s", resp.StatusCode, resp.Header.Get("X-Shopify-Retry-Invalid-Session-Request"), raw.Bytes())
				}
				if s := leaksSecret(raw.Bytes()); s != "" {
					return s
				}
				if n := rowCount(t, db, &models.Shop{}); n != shops {
					return fmt.Sprintf("%d shops created", n-shops)
				}
				if n := h.store.Exchanges(victimShop); n != 0 {
					return fmt.Sprintf("%d token exchanges for %s", n, victimShop)
				}
				if n := h.store.Exchanges(shopDomain); n != exchanges {
					return fmt.Sprintf("%d token exchanges for %s", n-exchanges, shopDomain)
				}
				return ""
			})
		}
	}
	tally.effect(t, "session tokens", func() string {
		if s := settingsJSON(t, h); s != settings {
			return "settings changed: " + s
		}
		if n := rowCount(t, db, &models.Backfill{}); n != 0 {
			return "a backfill started"
		}
		return ""
	}())

	// The genuine token for the new shop installs it: the checks above
	// could have seen an exchange.
	req, _ := http.NewRequest("GET", h.url+"/api/settings", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	if status, body := attackSend(t, req); status != 200 || h.store.Exchanges(victimShop) != 1 || rowCount(t, db, &models.Shop{}) != shops+1 {
		t.Errorf("the genuine token: %d %s, %d exchanges", status, body, h.store.Exchanges(victimShop))
	}
}

// flipFirst changes a base64 text's first character, which, unlike the
// last, carries no padding bits.
func flipFirst(s string) string {
	c := "A"
	if s[0] == 'A' {
		c = "Q"
	}
	return c + s[1:]
}

// settingsJSON is what GET /api/settings answers, but for the month's
// spend, which the jobs change.
func settingsJSON(t *testing.T, h *harness) string {
	t.Helper()
	status, body := h.api("GET", "/api/settings", nil)
	if status != 200 {
		t.Fatalf("read settings: %d %s", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("read settings: %v", err)
	}
	delete(m, "spentThisMonth")
	out, _ := json.Marshal(m)
	return string(out)
}
