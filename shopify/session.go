package shopify

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// shopPattern is Shopify's own rule for a shop's permanent domain,
// anchored at both ends so "evil.com?x.myshopify.com" never passes.
var shopPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$`)

// ValidShop reports whether s is a well-formed x.myshopify.com domain.
func ValidShop(s string) bool { return len(s) <= 255 && shopPattern.MatchString(s) }

// sessionLeeway absorbs clock skew between Shopify, the browser and us;
// session tokens only live 60 s, so more would defeat their expiry.
const sessionLeeway = 10 * time.Second

// SessionClaims is what a verified App Bridge session token says.
type SessionClaims struct {
	Shop      string // x.myshopify.com, from dest
	User      string // sub: the staff member's id
	SessionID string // sid
	Dest      string // https://x.myshopify.com
	ExpiresAt time.Time
	// Raw is the token itself, the subject of token exchange. Never log it.
	Raw string
}

// ErrInvalidSession is wrapped by every session token rejection.
var ErrInvalidSession = errors.New("invalid session token")

// SessionVerifier checks App Bridge session tokens (HS256 JWTs signed with
// the app secret, or the previous one during a rotation).
type SessionVerifier struct {
	APIKey  string
	Secrets []string // current first; empty entries are ignored
	Now     func() time.Time
}

type sessionJWT struct {
	jwt.RegisteredClaims
	Dest string `json:"dest"`
	SID  string `json:"sid"`
}

// Verify parses and checks a session token: signature (HS256 only), aud,
// exp/nbf with leeway, dest a shop URL and iss = dest + "/admin".
func (v SessionVerifier) Verify(token string) (SessionClaims, error) {
	fail := func(why string, err error) (SessionClaims, error) {
		if err != nil {
			return SessionClaims{}, fmt.Errorf("%w: %s: %w", ErrInvalidSession, why, err)
		}
		return SessionClaims{}, fmt.Errorf("%w: %s", ErrInvalidSession, why)
	}
	if token == "" {
		return fail("missing", nil)
	}
	var keys []jwt.VerificationKey
	for _, s := range v.Secrets {
		if s != "" {
			keys = append(keys, []byte(s))
		}
	}
	if len(keys) == 0 || v.APIKey == "" {
		return fail("the app has no API key or secret configured", nil)
	}
	now := v.Now
	if now == nil {
		now = time.Now
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}), // rejects alg none, RS256 key confusion, HS512
		jwt.WithAudience(v.APIKey),
		jwt.WithLeeway(sessionLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
	)
	var c sessionJWT
	if _, err := parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		return jwt.VerificationKeySet{Keys: keys}, nil
	}); err != nil {
		return fail("rejected", err)
	}
	shop, ok := shopFromDest(c.Dest)
	if !ok {
		return fail("dest is not a shop URL", nil)
	}
	if c.Issuer != c.Dest+"/admin" {
		return fail("iss does not match dest", nil)
	}
	out := SessionClaims{
		Shop:      shop,
		User:      c.Subject,
		SessionID: c.SID,
		Dest:      c.Dest,
		Raw:       token,
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

// shopFromDest accepts exactly https://{shop} with nothing else around it.
func shopFromDest(dest string) (string, bool) {
	u, err := url.Parse(dest)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" ||
		"https://"+u.Host != strings.TrimSuffix(dest, "/") {
		return "", false
	}
	if !ValidShop(u.Host) {
		return "", false
	}
	return strings.ToLower(u.Host), true
}
