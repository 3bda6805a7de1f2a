package shopifytest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantRefresh         = "refresh_token"
	tokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeOffline     = "urn:shopify:params:oauth:token-type:offline-access-token"
	tokenTypeOnline      = "urn:shopify:params:oauth:token-type:online-access-token"
	accessTokenTTL       = time.Hour
	refreshTokenTTL      = 90 * 24 * time.Hour
	sessionTokenLeeway   = 10 * time.Second
	expiresInSeconds     = int(accessTokenTTL / time.Second)
	refreshExpiresInSecs = int(refreshTokenTTL / time.Second)
)

type accessToken struct {
	expires time.Time // zero: never (non-expiring offline token)
}

type refreshToken struct {
	expires time.Time
	used    bool
}

func randToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// validToken is called without s.mu held.
func (s *Store) validToken(sh *shopState, tok string) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := sh.tokens[tok]
	return ok && (t.expires.IsZero() || s.opts.Now().Before(t.expires))
}

// IssueAccessToken mints an access token for shop directly (tests that don't exercise OAuth).
// ttl 0 means a non-expiring offline token.
func (s *Store) IssueAccessToken(shop string, ttl time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.addShopLocked(shop)
	tok := randToken("shpat_")
	t := &accessToken{}
	if ttl > 0 {
		t.expires = s.opts.Now().Add(ttl)
	}
	sh.tokens[tok] = t
	return tok
}

// IssueAuthCode returns a one-time authorization code for the OAuth authorization-code grant.
func (s *Store) IssueAuthCode(shop string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.addShopLocked(shop)
	code := randToken("")
	sh.codes[code] = true
	return code
}

// Exchanges and Refreshes count successful token exchanges and refreshes for a shop.
func (s *Store) Exchanges(shop string) int {
	return s.counter(shop, func(sh *shopState) int { return sh.exchanges })
}

// Refreshes counts successful refresh-token grants for a shop.
func (s *Store) Refreshes(shop string) int {
	return s.counter(shop, func(sh *shopState) int { return sh.refreshN })
}

func (s *Store) counter(shop string, f func(*shopState) int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh := s.shops[shop]; sh != nil {
		return f(sh)
	}
	return 0
}

// SessionToken mints an App Bridge ID token for shop, signed with the API secret, valid for ttl.
func (s *Store) SessionToken(shop string, ttl time.Duration) string {
	now := s.opts.Now()
	claims := map[string]any{
		"iss": "https://" + shop + "/admin", "dest": "https://" + shop, "aud": s.opts.APIKey,
		"sub": "42", "exp": now.Add(ttl).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
		"jti": uuid.NewString(), "sid": uuid.NewString(),
	}
	return signJWT(claims, s.opts.APISecret)
}

func signJWT(claims map[string]any, secret string) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(m.Sum(nil))
}

// verifySessionToken checks an ID token like Shopify does for token exchange and returns its
// shop (the host of dest).
func (s *Store) verifySessionToken(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("malformed token")
	}
	enc := base64.RawURLEncoding
	var hdr struct{ Alg string }
	hb, err := enc.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil || hdr.Alg != "HS256" {
		return "", errors.New("bad header")
	}
	sig, err := enc.DecodeString(parts[2])
	m := hmac.New(sha256.New, []byte(s.opts.APISecret))
	m.Write([]byte(parts[0] + "." + parts[1]))
	if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
		return "", errors.New("bad signature")
	}
	var c struct {
		Iss, Dest string
		Aud       any
		Exp, Nbf  int64
	}
	cb, err := enc.DecodeString(parts[1])
	if err != nil || json.Unmarshal(cb, &c) != nil {
		return "", errors.New("bad claims")
	}
	if aud, _ := c.Aud.(string); aud != s.opts.APIKey {
		return "", errors.New("wrong audience")
	}
	now := s.opts.Now()
	if c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(sessionTokenLeeway)) {
		return "", errors.New("expired")
	}
	if now.Add(sessionTokenLeeway).Before(time.Unix(c.Nbf, 0)) {
		return "", errors.New("not yet valid")
	}
	u, err := url.Parse(c.Dest)
	if err != nil || u.Scheme != "https" || !shopRe.MatchString(u.Host) || c.Iss != c.Dest+"/admin" {
		return "", errors.New("bad dest or iss")
	}
	return u.Host, nil
}

func (s *Store) tokenParams(r *http.Request) (url.Values, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if ct == "application/json" {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		v := url.Values{}
		for k, x := range m {
			v.Set(k, fmt.Sprint(x))
		}
		return v, nil
	}
	return url.ParseQuery(string(body))
}

func (s *Store) handleAccessToken(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: s.opts.Now(), Shop: r.Host, Path: r.URL.Path}
	defer func() { s.record(rec) }()
	fail := func(status int, code, desc string) {
		rec.Status = status
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	s.mu.Lock()
	sh, ok := s.shopFromHost(r)
	s.mu.Unlock()
	if !ok {
		rec.Status = http.StatusNotFound
		writeJSON(w, rec.Status, map[string]any{"errors": "Not Found"})
		return
	}
	p, err := s.tokenParams(r)
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", "could not parse the request body")
		return
	}
	if p.Get("client_id") != s.opts.APIKey || !hmac.Equal([]byte(p.Get("client_secret")), []byte(s.opts.APISecret)) {
		fail(http.StatusBadRequest, "invalid_client", "Client authentication failed")
		return
	}
	expiring := p.Get("expiring") == "1"
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	switch grant := p.Get("grant_type"); {
	case grant == grantTokenExchange:
		rec.Operation = "token_exchange"
		if p.Get("subject_token_type") != tokenTypeIDToken {
			fail(http.StatusBadRequest, "invalid_request", "subject_token_type must be "+tokenTypeIDToken)
			return
		}
		switch p.Get("requested_token_type") {
		case tokenTypeOffline:
		case tokenTypeOnline:
			fail(http.StatusBadRequest, "unsupported_token_type", "shopifytest: online access tokens are not supported")
			return
		default:
			fail(http.StatusBadRequest, "invalid_request", "requested_token_type is invalid")
			return
		}
		shop, err := s.verifySessionToken(p.Get("subject_token"))
		if err != nil || shop != sh.name {
			fail(http.StatusBadRequest, "invalid_subject_token", "Session token is invalid")
			return
		}
		sh.exchanges++
		s.grantLocked(w, sh, now, expiring)
	case grant == grantRefresh:
		rec.Operation = "refresh_token"
		rt := sh.refreshes[p.Get("refresh_token")]
		if rt == nil || rt.used || now.After(rt.expires) {
			fail(http.StatusBadRequest, "invalid_grant", "The refresh token is invalid, expired or already used")
			return
		}
		rt.used = true // one-time: the rotation below kills it
		sh.refreshN++
		s.grantLocked(w, sh, now, true)
	case p.Get("code") != "":
		rec.Operation = "authorization_code"
		if !sh.codes[p.Get("code")] {
			fail(http.StatusBadRequest, "invalid_grant", "The authorization code is invalid or already used")
			return
		}
		delete(sh.codes, p.Get("code"))
		s.grantLocked(w, sh, now, expiring)
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type", "grant_type is not supported")
		return
	}
	rec.Status = http.StatusOK
}

// grantLocked issues a new access token (and, for expiring tokens, a new refresh token).
func (s *Store) grantLocked(w http.ResponseWriter, sh *shopState, now time.Time, expiring bool) {
	tok := randToken("shpat_")
	out := map[string]any{"access_token": tok, "scope": s.opts.Scopes}
	if !expiring {
		sh.tokens[tok] = &accessToken{}
		writeJSON(w, http.StatusOK, out)
		return
	}
	sh.tokens[tok] = &accessToken{expires: now.Add(accessTokenTTL)}
	rt := randToken("shprt_")
	sh.refreshes[rt] = &refreshToken{expires: now.Add(refreshTokenTTL)}
	out["expires_in"] = expiresInSeconds
	out["refresh_token"] = rt
	out["refresh_token_expires_in"] = refreshExpiresInSecs
	writeJSON(w, http.StatusOK, out)
}
