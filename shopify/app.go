// Package shopify owns everything between the app and Shopify: installs
// (token exchange, with the OAuth code grant as a fallback), App Bridge
// session tokens, the shops' offline tokens and their refresh, and the
// webhook receiver. The GraphQL Admin client lives in shopify/admin and the
// fake store in shopify/shopifytest.
package shopify

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/shopify/admin"
)

// App serves the Shopify-facing routes and the session middleware.
type App struct {
	cfg      config.Config
	db       *gorm.DB
	sealer   *models.Sealer
	enq      Enqueuer
	log      *slog.Logger
	hc       *http.Client
	hcSet    bool // WithHTTPClient was given: Admin clients use it too
	now      func() time.Time
	tokens   *Tokens
	inbox    *inbox
	sessions SessionVerifier
	// exchanges collapses concurrent first requests of one shop in this
	// process into one token exchange.
	exchanges singleflight.Group
}

// Option adjusts an App.
type Option func(*App)

// WithHTTPClient sets the client for Shopify's token endpoint and for the
// Admin clients built from AdminOptions.
func WithHTTPClient(hc *http.Client) Option {
	return func(a *App) { a.hc, a.hcSet = hc, hc != nil }
}

// WithClock sets the clock used for token expiry, session tokens and
// OAuth timestamps.
func WithClock(now func() time.Time) Option { return func(a *App) { a.now = now } }

// New builds the App. A nil log discards.
func New(cfg config.Config, db *gorm.DB, sealer *models.Sealer, enq Enqueuer, log *slog.Logger, opts ...Option) *App {
	a := &App{cfg: cfg, db: db, sealer: sealer, enq: enq, log: log}
	for _, o := range opts {
		o(a)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.hc == nil {
		a.hc = &http.Client{Timeout: 20 * time.Second}
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.tokens = NewTokens(cfg, db, sealer, a.hc, a.now, a.log)
	a.inbox = newInbox(db, a.log)
	a.sessions = SessionVerifier{
		APIKey:  cfg.ShopifyAPIKey,
		Secrets: []string{cfg.ShopifyAPISecret, cfg.ShopifyAPISecretPrevious},
		Now:     a.now,
	}
	return a
}

// Tokens is the shops' access-token store.
func (a *App) Tokens() *Tokens { return a.tokens }

// Sessions is the App Bridge session-token verifier (also for the
// embedded page's id_token).
func (a *App) Sessions() SessionVerifier { return a.sessions }

// AdminOptions fills admin.Options for one shop: version, base URL, HTTP
// client, logger and a token source that refreshes. The caller adds the
// shop's shared Budget.
func (a *App) AdminOptions(shop string) admin.Options {
	o := admin.Options{
		Shop:       shop,
		Token:      a.tokens.Source(shop),
		APIVersion: a.cfg.ShopifyAPIVersion,
		BaseURL:    a.cfg.ShopifyAdminBaseURL,
		Logger:     a.log,
	}
	if a.hcSet {
		o.HTTPClient = a.hc
	}
	return o
}

// Register mounts the install and webhook routes.
func (a *App) Register(r fiber.Router) {
	r.Get("/auth", a.handleAuth)
	r.Get("/auth/callback", a.handleAuthCallback)
	r.Post("/webhooks", a.handleWebhook)
}

const (
	localShop    = "shopify.shop"
	localSession = "shopify.session"
	// RetryInvalidSessionHeader tells App Bridge to fetch a new session
	// token and retry the request.
	RetryInvalidSessionHeader = "X-Shopify-Retry-Invalid-Session-Request"
)

// ShopFrom returns the shop RequireSession stored, or nil outside it.
func ShopFrom(c *fiber.Ctx) *models.Shop {
	s, _ := c.Locals(localShop).(*models.Shop)
	return s
}

// SessionFrom returns the verified session claims, or nil outside RequireSession.
func SessionFrom(c *fiber.Ctx) *SessionClaims {
	s, _ := c.Locals(localSession).(*SessionClaims)
	return s
}

// WriteError answers with the contract's JSON error shape.
func WriteError(c *fiber.Ctx, status int, code, message string) error {
	return c.Status(status).JSON(fiber.Map{"error": fiber.Map{"code": code, "message": message}})
}

func invalidSession(c *fiber.Ctx, message string) error {
	c.Set(RetryInvalidSessionHeader, "1")
	return WriteError(c, fiber.StatusUnauthorized, "invalid_session", message)
}

// RequireSession guards /api/*: it verifies the bearer session token,
// loads the shop, and performs token exchange when the app holds no usable
// token for it (first visit, reinstall, tokens cleared or dead).
func (a *App) RequireSession() fiber.Handler {
	return func(c *fiber.Ctx) error {
		raw, ok := bearer(c.Get(fiber.HeaderAuthorization))
		if !ok {
			return invalidSession(c, "Missing session token: send Authorization: Bearer <session token>.")
		}
		claims, err := a.sessions.Verify(strings.Clone(raw))
		if err != nil {
			a.log.DebugContext(c.UserContext(), "session token rejected", "err", err)
			return invalidSession(c, "The session token is invalid or expired. Reload the app.")
		}
		ctx := c.UserContext()
		shop, err := a.shopForSession(ctx, &claims)
		var oe *OAuthError
		switch {
		case errors.As(err, &oe) && oe.Refused():
			a.log.WarnContext(ctx, "token exchange refused", "shop", claims.Shop, "status", oe.Status, "code", oe.Code)
			return invalidSession(c, "Shopify refused the session token. Reload the app.")
		case err != nil:
			a.log.ErrorContext(ctx, "install via token exchange failed", "shop", claims.Shop, "err", err)
			return WriteError(c, fiber.StatusServiceUnavailable, "shopify_unavailable",
				"Could not reach Shopify to authorize the app. Try again in a moment.")
		}
		c.Locals(localShop, shop)
		c.Locals(localSession, &claims)
		return c.Next()
	}
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// usable reports whether the app can get an access token for the shop
// without the merchant: installed, and a token that is valid or can be
// refreshed.
func (a *App) usable(s *models.Shop) bool {
	if s.State != models.ShopInstalled || s.AccessToken == "" {
		return false
	}
	now := a.now()
	if s.AccessTokenExpiresAt == nil || s.AccessTokenExpiresAt.After(now) {
		return true
	}
	return s.RefreshToken != "" && (s.RefreshTokenExpiresAt == nil || s.RefreshTokenExpiresAt.After(now))
}

func (a *App) findShop(ctx context.Context, domain string) (*models.Shop, error) {
	var s models.Shop
	err := a.db.WithContext(ctx).Where("domain = ?", domain).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// shopForSession returns the session's shop, exchanging the session token
// for an offline token first when the app has no usable one.
func (a *App) shopForSession(ctx context.Context, claims *SessionClaims) (*models.Shop, error) {
	s, err := a.findShop(ctx, claims.Shop)
	if err != nil {
		return nil, err
	}
	if s != nil && a.usable(s) {
		return s, nil
	}
	v, err, _ := a.exchanges.Do(claims.Shop, func() (any, error) {
		// The exchange is shared by every waiting request: one client
		// hanging up must not cancel it for the others.
		xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		// A request that just finished the same exchange (here or on
		// another replica) makes a second one unnecessary.
		if s, err := a.findShop(xctx, claims.Shop); err != nil {
			return nil, err
		} else if s != nil && a.usable(s) {
			return s, nil
		}
		tr, err := a.tokens.post(xctx, claims.Shop, map[string]string{
			"client_id":            a.cfg.ShopifyAPIKey,
			"client_secret":        a.cfg.ShopifyAPISecret,
			"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
			"subject_token":        claims.Raw,
			"subject_token_type":   "urn:ietf:params:oauth:token-type:id_token",
			"requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
			"expiring":             "1",
		})
		if err != nil {
			return nil, err
		}
		shop, err := a.tokens.install(xctx, claims.Shop, tr)
		if err != nil {
			return nil, err
		}
		a.log.InfoContext(xctx, "shop authorized by token exchange", "shop", claims.Shop, "scopes", tr.Scope)
		return shop, nil
	})
	if err != nil {
		return nil, err
	}
	// Each request gets its own copy: handlers may modify the shop.
	cp := *v.(*models.Shop)
	return &cp, nil
}
