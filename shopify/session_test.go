package shopify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://" + testShop + "/admin", "dest": "https://" + testShop, "aud": testKey,
		"sub": "42", "exp": now.Add(60 * time.Second).Unix(), "nbf": now.Add(-time.Second).Unix(),
		"iat": now.Add(-time.Second).Unix(), "jti": "j1", "sid": "s1",
	}
}

func hs(method jwt.SigningMethod, c jwt.MapClaims, secret string) string {
	s, err := jwt.NewWithClaims(method, c).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

// rawJWT signs header.payload with HMAC-SHA256 whatever the header says:
// the key-confusion attack on a verifier that trusts alg.
func rawJWT(header map[string]any, c jwt.MapClaims, secret string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	msg := enc(header) + "." + enc(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestSessionVerifier(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	v := SessionVerifier{APIKey: testKey, Secrets: []string{testSecret, oldSecret}, Now: func() time.Time { return now }}
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := validClaims(now)
		mod(c)
		return c
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", hs(jwt.SigningMethodHS256, validClaims(now), testSecret), true},
		{"previous secret", hs(jwt.SigningMethodHS256, validClaims(now), oldSecret), true},
		{"expired within leeway", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-5 * time.Second).Unix() }), testSecret), true},
		{"expired", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-11 * time.Second).Unix() }), testSecret), false},
		{"no exp", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { delete(c, "exp") }), testSecret), false},
		{"not yet valid", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(30 * time.Second).Unix() }), testSecret), false},
		{"nbf within leeway", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Second).Unix() }), testSecret), true},
		{"wrong audience", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["aud"] = "other-app" }), testSecret), false},
		{"no audience", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { delete(c, "aud") }), testSecret), false},
		{"wrong secret", hs(jwt.SigningMethodHS256, validClaims(now), "not-the-secret"), false},
		{"alg none", none, false},
		{"HS512", hs(jwt.SigningMethodHS512, validClaims(now), testSecret), false},
		{"RS256 header, HMAC body", rawJWT(map[string]any{"alg": "RS256", "typ": "JWT"}, validClaims(now), testSecret), false},
		{"none header, HMAC body", rawJWT(map[string]any{"alg": "none", "typ": "JWT"}, validClaims(now), testSecret), false},
		{"dest http", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) {
			c["dest"], c["iss"] = "http://"+testShop, "http://"+testShop+"/admin"
		}), testSecret), false},
		{"dest not a shop", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) {
			c["dest"], c["iss"] = "https://evil.example.com", "https://evil.example.com/admin"
		}), testSecret), false},
		{"dest shop suffix trick", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) {
			c["dest"], c["iss"] = "https://x.myshopify.com.evil.com", "https://x.myshopify.com.evil.com/admin"
		}), testSecret), false},
		{"dest with path", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) {
			c["dest"], c["iss"] = "https://"+testShop+"/x", "https://"+testShop+"/x/admin"
		}), testSecret), false},
		{"dest with userinfo", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) {
			c["dest"], c["iss"] = "https://a@"+testShop, "https://a@"+testShop+"/admin"
		}), testSecret), false},
		{"no dest", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { delete(c, "dest") }), testSecret), false},
		{"iss of another shop", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["iss"] = "https://other.myshopify.com/admin" }), testSecret), false},
		{"iss without /admin", hs(jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["iss"] = "https://" + testShop }), testSecret), false},
		{"garbage", "not.a.jwt", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if c.Shop != testShop || c.User != "42" || c.SessionID != "s1" || c.Raw != tc.token {
					t.Fatalf("claims = %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidSession) {
				t.Fatalf("error %v does not wrap ErrInvalidSession", err)
			}
		})
	}
}

func TestSessionVerifierNeedsSecret(t *testing.T) {
	now := time.Now()
	v := SessionVerifier{APIKey: testKey, Secrets: []string{""}}
	if _, err := v.Verify(hs(jwt.SigningMethodHS256, validClaims(now), "")); err == nil {
		t.Fatal("a token signed with an empty secret was accepted by a verifier without secrets")
	}
}

func TestValidShop(t *testing.T) {
	for s, want := range map[string]bool{
		"cool-shop.myshopify.com":                   true,
		"A1.myshopify.com":                          true,
		"-bad.myshopify.com":                        false,
		"cool.shop.myshopify.com":                   false,
		"cool-shop.myshopify.com.evil":              false,
		"cool-shop.myshopify.com/x":                 false,
		"evil.com?x.myshopify.com":                  false,
		"":                                          false,
		strings.Repeat("a", 300) + ".myshopify.com": false,
	} {
		if got := ValidShop(s); got != want {
			t.Errorf("ValidShop(%q) = %v", s, got)
		}
	}
}
