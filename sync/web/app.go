package web

import (
	"fmt"
	"log/slog"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify"
	"rtbshopify/shopify/admin"
	imgsync "rtbshopify/sync"
)

// App is the pipeline and its HTTP routes put together from Parts.
type App struct {
	HTTP     *fiber.App
	Pipeline *imgsync.Pipeline
	Shopify  *shopify.App
	Signer   *rtb.TokenSigner
}

// Parts are what the caller (the composition root) built from its
// configuration; Build only connects them.
type Parts struct {
	DB      *gorm.DB
	Log     *slog.Logger
	Sealer  *models.Sealer
	Signer  *rtb.TokenSigner
	RTB     *rtb.Client
	Fetcher imgsync.Fetcher
	// Shopify builds the Shopify side around the pipeline, which receives
	// its webhooks' jobs.
	Shopify func(enq shopify.Enqueuer) *shopify.App
	// Pipeline is the pipeline's options; Build fills in the database,
	// clients, signer and logger.
	Pipeline imgsync.Options
	// AdminOptions, when set, adjusts every Admin API client's options
	// (tests shorten the polling of Shopify's processing).
	AdminOptions func(*admin.Options)
	// Pages, when set, mounts pages on the server before the API (the
	// embedded admin UI).
	Pages func(srv *fiber.App, shop *shopify.App)
}

// Build connects the parts: the pipeline, the Shopify routes, the Remove
// The Background callback route and the JSON API under /api.
func Build(p Parts) (*App, error) {
	if p.DB == nil || p.Sealer == nil || p.Signer == nil || p.RTB == nil || p.Shopify == nil {
		return nil, fmt.Errorf("build app: database, sealer, signer, Remove The Background client and Shopify are required")
	}
	budgets := &admin.Budgets{}
	monitor := admin.NewMonitor(p.Log)
	var shop *shopify.App
	opts := p.Pipeline
	opts.DB, opts.Sealer, opts.RTB, opts.Signer, opts.Log = p.DB, p.Sealer, p.RTB, p.Signer, p.Log
	if p.Fetcher != nil {
		opts.Fetcher = p.Fetcher
	}
	opts.Admin = func(domain string) *admin.Client {
		o := shop.AdminOptions(domain)
		o.Budget = budgets.For(domain)
		o.Monitor = monitor
		if p.AdminOptions != nil {
			p.AdminOptions(&o)
		}
		return admin.New(o)
	}
	pipeline := imgsync.New(opts)
	shop = p.Shopify(pipeline)
	pipeline.SetTokens(shop.Tokens())
	pipeline.SetInbox(shop)
	shop.OnDelivery(pipeline.NotifyInbox)

	reg := NewRegistry(p.DB, p.Log)
	RegisterAdminMetrics(reg, monitor)
	if opts.ClockSync > 0 {
		registerClockMetric(reg, pipeline)
	}
	srv := NewServer(ServerOptions{DB: p.DB, Log: p.Log, Registry: reg})
	shop.Register(srv)
	if p.Pages != nil {
		p.Pages(srv, shop)
	}
	callbacks := &rtb.CallbackHandler{Signer: p.Signer, Store: pipeline, Logger: p.Log}
	srv.Post("/rtb/callback/:token", func(c *fiber.Ctx) error {
		return c.SendStatus(callbacks.Handle(c.UserContext(), c.Params("token"), c.Get(fiber.HeaderContentType), c.BodyRaw()))
	})
	api := &API{Pipeline: pipeline, DB: p.DB, Sealer: p.Sealer, RTB: p.RTB, Log: p.Log}
	api.Register(srv.Group("/api", shop.RequireSession()))
	return &App{HTTP: srv, Pipeline: pipeline, Shopify: shop, Signer: p.Signer}, nil
}
