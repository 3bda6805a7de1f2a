package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify"
	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/ui"
	imgsync "rtbshopify/sync"
)

// App is the whole app wired together: the HTTP routes, the pipeline and
// the Shopify side. serve, the demo and end-to-end tests all build it here.
type App struct {
	HTTP     *fiber.App
	Pipeline *imgsync.Pipeline
	Shopify  *shopify.App
	Signer   *rtb.TokenSigner
}

// CallbackKeys derives the callback-token keys from ENCRYPTION_KEYS, one per
// key id, so rotating the encryption keys rotates them too.
func CallbackKeys(keys []config.Key) []rtb.TokenKey {
	out := make([]rtb.TokenKey, len(keys))
	for i, k := range keys {
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte("rtbshopify callback token key"))
		out[i] = rtb.TokenKey{ID: k.ID, Secret: m.Sum(nil)}
	}
	return out
}

// BuildOption adjusts what Build wires.
type BuildOption func(*buildOptions)

type buildOptions struct {
	devTokens func(shop string) string
}

// WithDevTokens serves GET /dev/session-token with tokens from mint, so the
// admin page opens in a plain browser. Only the demo uses it: it hands a
// session token to anyone who asks.
func WithDevTokens(mint func(shop string) string) BuildOption {
	return func(o *buildOptions) { o.devTokens = mint }
}

// Build wires the app from its configuration. tune, when not nil, adjusts
// the pipeline's options (tests and the demo shorten its intervals).
func Build(cfg config.Config, db *gorm.DB, log *slog.Logger, tune func(*imgsync.Options), options ...BuildOption) (*App, error) {
	var bo buildOptions
	for _, o := range options {
		o(&bo)
	}
	sealer, err := models.NewSealer(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	signer, err := rtb.NewTokenSigner(CallbackKeys(cfg.EncryptionKeys))
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	rtbClient, err := rtb.NewClient(cfg.RTBBaseURL, cfg.RTBFilesBaseURL, nil)
	if err != nil {
		return nil, fmt.Errorf("RTB_BASE_URL: %w", err)
	}
	budgets := &admin.Budgets{}
	var shop *shopify.App
	opts := imgsync.Options{
		DB: db, Sealer: sealer, RTB: rtbClient, Fetcher: rtb.NewDownloader(cfg.AllowPrivateDownloads),
		Admin: func(domain string) *admin.Client {
			o := shop.AdminOptions(domain)
			o.Budget = budgets.For(domain)
			return admin.New(o)
		},
		Signer: signer, AppURL: cfg.AppURL, Log: log, Workers: cfg.Workers,
	}
	if tune != nil {
		tune(&opts)
	}
	pipeline := imgsync.New(opts)
	shop = shopify.New(cfg, db, sealer, pipeline, log)
	pipeline.SetTokens(shop.Tokens())

	srv := NewServer(ServerOptions{DB: db, Log: log, Registry: NewRegistry(db, log)})
	shop.Register(srv)
	ui.Register(srv, ui.Options{APIKey: cfg.ShopifyAPIKey, Secrets: []string{cfg.ShopifyAPISecret, cfg.ShopifyAPISecretPrevious}, Sessions: shop.Sessions(), Log: log, DevTokens: bo.devTokens})
	callbacks := &rtb.CallbackHandler{Signer: signer, Store: pipeline, Logger: log}
	srv.Post("/rtb/callback/:token", func(c *fiber.Ctx) error {
		return c.SendStatus(callbacks.Handle(c.UserContext(), c.Params("token"), c.Get(fiber.HeaderContentType), c.BodyRaw()))
	})
	api := &API{Pipeline: pipeline, DB: db, Sealer: sealer, RTB: rtbClient, Log: log}
	api.Register(srv.Group("/api", shop.RequireSession()))
	return &App{HTTP: srv, Pipeline: pipeline, Shopify: shop, Signer: signer}, nil
}
