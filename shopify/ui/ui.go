// Package ui is the embedded admin page merchants see inside the Shopify
// admin: status, the images dashboard, settings and the existing catalogue.
// It is one HTML page of Polaris web components, one script and one
// stylesheet, embedded in the binary. The page talks only to the JSON API
// under /api. In production it loads App Bridge and Polaris from Shopify's
// CDN and nothing else; in tests and the demo, where the CDN is out of
// reach, a small shim defines the same elements with native controls, and
// the page finds its session token in the launch URL or, in the demo only,
// at a development token endpoint.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"rtbshopify/shopify"
)

//go:embed static
var static embed.FS

// SessionVerifier checks an App Bridge session token; shopify.SessionVerifier
// is the real one.
type SessionVerifier interface {
	Verify(token string) (shopify.SessionClaims, error)
}

// Options configures the page.
type Options struct {
	// APIKey is the app's client id, put in the page for App Bridge.
	APIKey string
	// Secrets verify the hmac on Shopify's admin launch URL: the current
	// secret first, then the previous one during a rotation.
	Secrets []string
	// Sessions verifies the launch URL's id_token.
	Sessions SessionVerifier
	// DevTokens, when set, mints a session token for a shop and serves it
	// at GET /dev/session-token. Only the demo sets it: it hands a token to
	// anyone who asks, so serve never does.
	DevTokens func(shop string) string
	// Shim serves and loads the stand-in for Polaris and App Bridge (tests
	// and the demo only: Shopify's CDN is out of reach there). Production
	// pages load Shopify's own scripts and nothing else.
	Shim bool
	Log  *slog.Logger
}

// asset is one embedded file with the headers it is served with.
type asset struct {
	body        []byte
	contentType string
	version     string // short content hash, part of the URL the page uses
}

type page struct {
	opts            Options
	tmpl            *template.Template
	js, css         asset
	shimJS, shimCSS asset
}

// load reads embedded files, served as one (the page's script is its
// parts one after another, so the page loads a single script).
func load(contentType string, names ...string) asset {
	var b []byte
	for _, name := range names {
		part, err := static.ReadFile("static/" + name)
		if err != nil {
			panic("ui: embedded file missing: " + name) // a build defect, not a runtime condition
		}
		b = append(append(b, part...), '\n')
	}
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType, version: hex.EncodeToString(sum[:6])}
}

func newPage(o Options) *page {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &page{
		opts:    o,
		tmpl:    template.Must(template.ParseFS(static, "static/index.html")),
		js:      load("text/javascript; charset=utf-8", "app.js", "catalogue.js", "review.js"),
		css:     load("text/css; charset=utf-8", "app.css"),
		shimJS:  load("text/javascript; charset=utf-8", "shim.js"),
		shimCSS: load("text/css; charset=utf-8", "shim.css"),
	}
}

// Register mounts GET / (the page), its script and stylesheet under /ui,
// the shim only when o.Shim is set, and — only when o.DevTokens is set —
// GET /dev/session-token.
func Register(r fiber.Router, o Options) {
	p := newPage(o)
	r.Get("/", p.handlePage)
	r.Get("/ui/app.js", p.serveAsset(p.js))
	r.Get("/ui/app.css", p.serveAsset(p.css))
	if o.Shim {
		r.Get("/ui/shim.js", p.serveAsset(p.shimJS))
		r.Get("/ui/shim.css", p.serveAsset(p.shimCSS))
	}
	if o.DevTokens != nil {
		RegisterDevTokens(r, o.DevTokens)
	}
}

// errLaunch is a launch the page refuses: status and the plain-text
// message the merchant sees.
type errLaunch struct {
	status  int
	message string
}

func (e *errLaunch) Error() string { return e.message }

// verifyLaunch checks what Shopify's admin put on the URL and returns the
// shop it proves, or "" when the URL proves none (a direct visit).
//
// hmac present: the shop must be well formed and the hmac must verify.
// id_token present: it must verify and name the same shop. A shop without
// either is accepted unverified: the page may use it to ask for a token,
// but the API checks every token, and the page is not framed for it.
func (p *page) verifyLaunch(rawQuery string) (string, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", &errLaunch{fiber.StatusBadRequest, "The address is malformed. Open the app from your Shopify admin."}
	}
	shop := strings.ToLower(q.Get("shop"))
	if shop != "" && !shopify.ValidShop(shop) {
		return "", &errLaunch{fiber.StatusBadRequest, "Invalid shop domain. Open the app from your Shopify admin."}
	}
	verified := ""
	if q.Has("hmac") {
		if shop == "" {
			return "", &errLaunch{fiber.StatusBadRequest, "The address is missing the shop. Open the app from your Shopify admin."}
		}
		if !shopify.VerifyQueryHMAC(rawQuery, p.opts.Secrets...) {
			return "", &errLaunch{fiber.StatusUnauthorized, "The address's signature is invalid. Open the app again from your Shopify admin."}
		}
		verified = shop
	}
	if tok := q.Get("id_token"); tok != "" {
		if p.opts.Sessions == nil {
			return "", errors.New("ui: no session verifier configured")
		}
		claims, err := p.opts.Sessions.Verify(tok)
		if err != nil {
			p.opts.Log.Debug("launch id_token rejected", "err", err)
			return "", &errLaunch{fiber.StatusUnauthorized, "The session in the address is invalid or expired. Open the app again from your Shopify admin."}
		}
		if shop != "" && claims.Shop != shop {
			return "", &errLaunch{fiber.StatusUnauthorized, "The session in the address belongs to another shop. Open the app again from your Shopify admin."}
		}
		verified = claims.Shop
	}
	return verified, nil
}

type pageData struct {
	APIKey          string
	JS, CSS         string
	Shim            bool
	ShimJS, ShimCSS string
}

func (p *page) handlePage(c *fiber.Ctx) error {
	// string() copies the query out of fasthttp's reused buffer.
	shop, err := p.verifyLaunch(string(c.Request().URI().QueryString()))
	setPageHeaders(c, "")
	var le *errLaunch
	switch {
	case errors.As(err, &le):
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		return c.Status(le.status).SendString(le.message)
	case err != nil:
		return err
	}
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, pageData{
		APIKey: p.opts.APIKey,
		JS:     "/ui/app.js?v=" + p.js.version,
		CSS:    "/ui/app.css?v=" + p.css.version,
		Shim:   p.opts.Shim, ShimJS: "/ui/shim.js?v=" + p.shimJS.version, ShimCSS: "/ui/shim.css?v=" + p.shimCSS.version,
	}); err != nil {
		return err
	}
	setPageHeaders(c, shop)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(fiber.StatusOK).Send(buf.Bytes())
}

// setPageHeaders sets the headers of an HTML answer. Only a shop the
// launch proved may frame the page; otherwise nobody may.
func setPageHeaders(c *fiber.Ctx, shop string) {
	csp := "frame-ancestors 'none'"
	if shop != "" {
		csp = "frame-ancestors https://" + shop + " https://admin.shopify.com"
	}
	c.Set(fiber.HeaderContentSecurityPolicy, csp)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	// The launch URL carries an id_token: never send it on as a referrer.
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
}

// serveAsset serves an embedded file. The page asks for it with its
// content hash in the query, so a matching request may be cached for good.
func (p *page) serveAsset(a asset) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Query("v") == a.version {
			c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
		} else {
			c.Set(fiber.HeaderCacheControl, "no-cache")
		}
		c.Set(fiber.HeaderContentType, a.contentType)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		return c.Send(a.body)
	}
}

// RegisterDevTokens mounts GET /dev/session-token?shop=…, answering
// {"token": "…"} minted by mint. For the demo and tests only: the page
// asks for it when it has neither App Bridge nor a usable URL token.
func RegisterDevTokens(r fiber.Router, mint func(shop string) string) {
	r.Get("/dev/session-token", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		shop := strings.ToLower(c.Query("shop"))
		if !shopify.ValidShop(shop) {
			return shopify.WriteError(c, fiber.StatusBadRequest, "bad_request", "shop must be a your-store.myshopify.com domain.")
		}
		tok := mint(shop)
		if tok == "" {
			return shopify.WriteError(c, fiber.StatusNotFound, "not_found", "No development session for this shop.")
		}
		return c.JSON(fiber.Map{"token": tok})
	})
}
