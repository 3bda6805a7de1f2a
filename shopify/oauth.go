package shopify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	goshopify "github.com/bold-commerce/go-shopify/v4"
	"github.com/gofiber/fiber/v2"
)

// The authorization-code grant is the fallback install path for a shop
// that reaches the app outside the Shopify admin; embedded loads use
// token exchange instead.

const (
	stateCookie = "shopify_oauth_state"
	// stateTTL bounds how long a merchant may sit on the consent screen.
	stateTTL = 10 * time.Minute
	// callbackMaxSkew is how old (or early) a callback's timestamp may be.
	callbackMaxSkew = 90 * time.Second
)

// handleAuth starts the code grant: a state nonce in a signed cookie,
// then the redirect to the shop's consent screen.
func (a *App) handleAuth(c *fiber.Ctx) error {
	shop := strings.ToLower(strings.TrimSpace(c.Query("shop")))
	if !ValidShop(shop) {
		return c.Status(fiber.StatusBadRequest).SendString("Missing or invalid shop: open the app from your Shopify admin, or use ?shop=your-store.myshopify.com.")
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return c.Status(fiber.StatusInternalServerError).SendString("Could not start the installation; try again.")
	}
	nonce := hex.EncodeToString(b)
	exp := a.now().Add(stateTTL).Unix()
	c.Cookie(&fiber.Cookie{
		Name:     stateCookie,
		Value:    a.signState(nonce, shop, exp),
		Path:     "/auth",
		MaxAge:   int(stateTTL.Seconds()),
		HTTPOnly: true,
		Secure:   strings.HasPrefix(a.cfg.AppURL, "https://"),
		SameSite: fiber.CookieSameSiteLaxMode,
	})
	consent, err := a.goshopifyApp("").AuthorizeUrl(shop, nonce)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).SendString("Invalid shop.")
	}
	return c.Redirect(consent, fiber.StatusFound)
}

// signState makes the cookie value nonce.shop.expiry.mac: the MAC keeps a
// forged cookie from choosing its own nonce, and the shop inside binds the
// nonce to the shop the install started for.
func (a *App) signState(nonce, shop string, exp int64) string {
	msg := nonce + "." + shop + "." + strconv.FormatInt(exp, 10)
	return msg + "." + hex.EncodeToString(stateMAC(a.cfg.ShopifyAPISecret, msg))
}

func stateMAC(secret, msg string) []byte {
	m := hmac.New(sha256.New, []byte("oauth-state:"+secret))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// checkState verifies the cookie's MAC (current or previous secret), its
// expiry, and that it carries this state and shop.
func (a *App) checkState(cookie, state, shop string) bool {
	// nonce.shop.expiry.mac, where the shop itself contains dots.
	nonce, rest, ok1 := strings.Cut(cookie, ".")
	i := strings.LastIndexByte(rest, '.')
	if !ok1 || i < 0 || state == "" {
		return false
	}
	rest, macHex := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return false
	}
	cshop, expS := rest[:j], rest[j+1:]
	mac, err := hex.DecodeString(macHex)
	if err != nil {
		return false
	}
	msg := nonce + "." + cshop + "." + expS
	ok := false
	for _, s := range []string{a.cfg.ShopifyAPISecret, a.cfg.ShopifyAPISecretPrevious} {
		if s != "" && hmac.Equal(mac, stateMAC(s, msg)) {
			ok = true
		}
	}
	exp, err := strconv.ParseInt(expS, 10, 64)
	if !ok || err != nil || a.now().Unix() > exp {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(nonce), []byte(state)) == 1 && cshop == shop
}

// goshopifyApp describes the app to go-shopify's OAuth helpers.
func (a *App) goshopifyApp(secret string) goshopify.App {
	return goshopify.App{
		ApiKey: a.cfg.ShopifyAPIKey, ApiSecret: secret,
		RedirectUrl: a.cfg.AppURL + "/auth/callback", Scope: strings.Join(a.cfg.ShopifyScopes, ","),
	}
}

// VerifyQueryHMAC checks the hex HMAC-SHA256 Shopify puts on OAuth
// callbacks and admin launches: over the query without hmac (and the
// legacy signature), keys sorted, pairs joined with '&'. Shopify's
// libraries differ on whether values are percent-encoded in the message:
// go-shopify checks the decoded form, and the encoded form is checked here;
// either needs the secret.
func VerifyQueryHMAC(rawQuery string, secrets ...string) bool {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return false
	}
	got, err := hex.DecodeString(q.Get("hmac"))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	u := &url.URL{RawQuery: rawQuery}
	q.Del("hmac")
	q.Del("signature")
	encoded := q.Encode() // sorted by key
	ok := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if plain, err := (goshopify.App{ApiSecret: s}).VerifyAuthorizationURL(u); err == nil && plain {
			ok = true
		}
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte(encoded))
		if hmac.Equal(got, m.Sum(nil)) {
			ok = true
		}
	}
	return ok
}

func (a *App) handleAuthCallback(c *fiber.Ctx) error {
	ctx := c.UserContext()
	rawQuery := string(c.Request().URI().QueryString()) // string() copies out of fasthttp's buffer
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).SendString("Malformed callback query.")
	}
	shop := strings.ToLower(q.Get("shop"))
	if !ValidShop(shop) {
		return c.Status(fiber.StatusBadRequest).SendString("Invalid shop domain in the callback.")
	}
	if !VerifyQueryHMAC(rawQuery, a.cfg.ShopifyAPISecret, a.cfg.ShopifyAPISecretPrevious) {
		return c.Status(fiber.StatusUnauthorized).SendString("The callback's signature is invalid. Start the installation again from your Shopify admin.")
	}
	ts, err := strconv.ParseInt(q.Get("timestamp"), 10, 64)
	if err != nil {
		return c.Status(fiber.StatusBadRequest).SendString("The callback has no valid timestamp.")
	}
	if skew := a.now().Sub(time.Unix(ts, 0)); skew > callbackMaxSkew || skew < -callbackMaxSkew {
		return c.Status(fiber.StatusBadRequest).SendString("The callback is too old. Start the installation again.")
	}
	if !a.checkState(c.Cookies(stateCookie), q.Get("state"), shop) {
		return c.Status(fiber.StatusUnauthorized).SendString("The installation state does not match this browser. Start the installation again.")
	}
	code := q.Get("code")
	if code == "" {
		return c.Status(fiber.StatusBadRequest).SendString("The callback carries no authorization code.")
	}
	tr, err := a.tokens.post(ctx, shop, map[string]string{
		"client_id":     a.cfg.ShopifyAPIKey,
		"client_secret": a.cfg.ShopifyAPISecret,
		"code":          code,
		"expiring":      "1",
	})
	var oe *OAuthError
	switch {
	case errors.As(err, &oe) && oe.Refused():
		a.log.WarnContext(ctx, "authorization code refused", "shop", shop, "status", oe.Status, "code", oe.Code)
		return c.Status(fiber.StatusUnauthorized).SendString("Shopify refused the authorization code. Start the installation again.")
	case err != nil:
		a.log.ErrorContext(ctx, "authorization code exchange failed", "shop", shop, "err", err)
		return c.Status(fiber.StatusBadGateway).SendString("Could not reach Shopify to finish the installation. Try again in a moment.")
	}
	if _, err := a.tokens.install(ctx, shop, tr); err != nil {
		a.log.ErrorContext(ctx, "storing the installation failed", "shop", shop, "err", err)
		return c.Status(fiber.StatusInternalServerError).SendString("Could not save the installation. Try again.")
	}
	a.log.InfoContext(ctx, "shop authorized by code grant", "shop", shop, "scopes", tr.Scope)
	// The nonce is single-use: expire the cookie on the path it was set for.
	c.Cookie(&fiber.Cookie{Name: stateCookie, Path: "/auth", MaxAge: -1, Expires: time.Unix(0, 0),
		HTTPOnly: true, Secure: strings.HasPrefix(a.cfg.AppURL, "https://"), SameSite: fiber.CookieSameSiteLaxMode})
	return c.Redirect("https://"+shop+"/admin/apps/"+url.PathEscape(a.cfg.ShopifyAPIKey), fiber.StatusFound)
}
