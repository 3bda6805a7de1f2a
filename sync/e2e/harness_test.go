// Package e2e_test drives the whole app — webhooks, workers, callbacks,
// write-back — against the fake Shopify store and the fake Remove The
// Background service, on SQLite and, when TEST_MYSQL_DSN is set, MariaDB.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify"
	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
	"rtbshopify/sync/web"
)

const (
	shopDomain = "demo-shop.myshopify.com"
	rtbEmail   = "merchant@example.com"
	rtbKey     = "44979dfe-5aa7-44ea-b3dd-7fae33bc37e9"
)

type harness struct {
	t      testing.TB
	db     *gorm.DB
	store  *shopifytest.Store
	rtb    *rtbtest.Server
	app    *web.App
	url    string
	cfg    config.Config
	log    *slog.Logger
	cancel context.CancelFunc
}

type harnessOptions struct {
	writeMode string
	budget    string
	template  string
	tune      func(*imgsync.Options)
	rtb       func(*rtbtest.Options)
	// rtbHTTP, when set, is the HTTP client the app calls Remove The
	// Background with.
	rtbHTTP *http.Client
	noStart bool
	// restoreRate is the fake store's cost restore rate in points per
	// second (0: Shopify's Standard 100); large catalogues raise it so the
	// rate limit does not set their pace.
	restoreRate float64
	scope       string // imageScope; "" means all
	// guardedDownloads refuses downloads from loopback and private
	// addresses, as in production (the fake services are on loopback).
	guardedDownloads bool
	store            func(*shopifytest.Options) // adjusts the fake store
	admin            func(*admin.Options)       // adjusts the Admin API client
}

func newHarness(t testing.TB, db *gorm.DB, ho harnessOptions) *harness {
	t.Helper()
	so := shopifytest.Options{APIKey: "test-key", APISecret: "test-secret", MediaProcessingDelay: 30 * time.Millisecond, WebhookRetryInterval: 20 * time.Millisecond,
		RestoreRate: ho.restoreRate}
	if ho.store != nil {
		ho.store(&so)
	}
	store := shopifytest.New(so)
	t.Cleanup(store.Close)
	store.AddShop(shopDomain)
	ro := rtbtest.Options{
		Accounts: map[string]string{rtbEmail: rtbKey},
		NewFor:   20 * time.Millisecond, ProductionFor: 20 * time.Millisecond, QualityCheckFor: 20 * time.Millisecond,
		TickInterval: 10 * time.Millisecond, CallbackRetry: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
	}
	if ho.rtb != nil {
		ho.rtb(&ro)
	}
	fakeRTB := rtbtest.New(ro)
	t.Cleanup(fakeRTB.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	cfg := config.Config{
		AppURL: appURL, ShopifyAPIKey: "test-key", ShopifyAPISecret: "test-secret", ShopifyAPIVersion: "2026-10",
		ShopifyScopes: []string{"read_products", "write_products", "write_files"}, ShopifyAdminBaseURL: store.URL(),
		RTBBaseURL: fakeRTB.BaseURL(), RTBFilesBaseURL: fakeRTB.URL() + "/", AllowPrivateDownloads: !ho.guardedDownloads, Workers: 2,
		EncryptionKeys: []config.Key{{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("E2E_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	app := buildApp(t, cfg, db, log, func(o *imgsync.Options) {
		o.Idle = 20 * time.Millisecond
		o.MediaRecheck = 50 * time.Millisecond
		o.Lease = 10 * time.Second
		o.Schedule.Disabled = true
		if ho.tune != nil {
			ho.tune(o)
		}
	}, nil, ho.rtbHTTP, ho.admin)
	go app.HTTP.Listener(ln)
	t.Cleanup(func() { app.HTTP.Shutdown() })
	h := &harness{t: t, db: db, store: store, rtb: fakeRTB, app: app, url: appURL, cfg: cfg, log: log}

	// Install through token exchange and save settings through the API,
	// as the merchant's browser would.
	mode := ho.writeMode
	if mode == "" {
		mode = "replace"
	}
	scope := ho.scope
	if scope == "" {
		scope = "all"
	}
	tmpl := ho.template
	if tmpl == "" {
		tmpl = rtbtest.DefaultTemplates()[0].ID
	}
	status, body := h.api("PUT", "/api/settings", map[string]any{
		"enabled": true, "rtb": map[string]any{"contactEmail": rtbEmail, "contactApiKey": rtbKey},
		"templateId": tmpl, "imageScope": scope, "writeMode": mode, "deliveryHours": 24, "monthlyBudget": ho.budget,
	})
	if status != 200 {
		t.Fatalf("save settings: %d %s", status, body)
	}
	if !ho.noStart {
		h.start()
	}
	return h
}

// buildApp connects the app's parts as the composition root in main.go
// does, from a test's configuration; tune adjusts the pipeline's options,
// pages, when set, mounts the admin UI; rtbHTTP, when set, is the client
// for Remove The Background; adminTune, when set, adjusts the Admin API
// client's options.
func buildApp(t testing.TB, cfg config.Config, db *gorm.DB, log *slog.Logger, tune func(*imgsync.Options), pages func(*fiber.App, *shopify.App), rtbHTTP *http.Client, adminTune func(*admin.Options)) *web.App {
	t.Helper()
	sealer, err := models.NewSealer(cfg.EncryptionKeys)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := rtb.NewTokenSigner([]rtb.TokenKey{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	rtbClient, err := rtb.NewClient(cfg.RTBBaseURL, cfg.RTBFilesBaseURL, rtbHTTP)
	if err != nil {
		t.Fatal(err)
	}
	// The pipeline follows the database's clock, as serve's does (read
	// more often here), unless the test runs it on a clock of its own.
	opts := imgsync.Options{AppURL: cfg.AppURL, Workers: cfg.Workers, ClockSync: time.Second}
	if tune != nil {
		tune(&opts)
	}
	if opts.Now != nil {
		opts.ClockSync = 0
	}
	app, err := web.Build(web.Parts{
		DB: db, Log: log, Sealer: sealer, Signer: signer, RTB: rtbClient,
		Fetcher:  rtb.NewDownloader(cfg.AllowPrivateDownloads),
		Shopify:  func(enq shopify.Enqueuer) *shopify.App { return shopify.New(cfg, db, sealer, enq, log) },
		Pipeline: opts, Pages: pages,
		// The fake store processes media in tens of milliseconds.
		AdminOptions: func(o *admin.Options) {
			o.PollInterval = 20 * time.Millisecond
			if adminTune != nil {
				adminTune(o)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.app.Pipeline.Start(ctx)
	h.t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		h.app.Pipeline.Stop(sctx)
		cancel()
	})
}

// api calls the JSON API with a fresh session token.
func (h *harness) api(method, path string, body any) (int, []byte) {
	h.t.Helper()
	return h.apiAs(shopDomain, method, path, body)
}

// photo makes a product photo: a dark square on a light textured
// background, so the fake editor's cut-out visibly changes the border.
func photo(format string, bg color.RGBA) []byte {
	if format == "png" {
		return shopifytest.SamplePNG(64, 48, bg)
	}
	return shopifytest.SampleJPEG(64, 48, bg)
}

func (h *harness) createProduct(np shopifytest.NewProduct) *shopifytest.ProductRecord {
	h.t.Helper()
	rec, err := h.store.CreateProduct(shopDomain, np)
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func (h *harness) webhook(topic, productID string) {
	h.t.Helper()
	h.webhookAs(shopDomain, topic, productID)
}

func (h *harness) jobs() []models.ImageJob {
	var jobs []models.ImageJob
	h.db.Order("id").Find(&jobs)
	return jobs
}

func (h *harness) jobFor(mediaID string) models.ImageJob {
	var j models.ImageJob
	h.db.Where("media_id = ?", mediaID).Take(&j)
	return j
}

// waitJobs waits until fn holds for the jobs or the deadline passes.
func (h *harness) waitJobs(what string, fn func([]models.ImageJob) bool) []models.ImageJob {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs := h.jobs()
		if fn(jobs) {
			return jobs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: jobs now %s", what, describe(jobs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allIn(n int, states ...string) func([]models.ImageJob) bool {
	return func(jobs []models.ImageJob) bool {
		if len(jobs) != n {
			return false
		}
		for _, j := range jobs {
			ok := false
			for _, s := range states {
				ok = ok || j.State == s
			}
			if !ok {
				return false
			}
		}
		return true
	}
}

func describe(jobs []models.ImageJob) string {
	s := ""
	for _, j := range jobs {
		s += fmt.Sprintf("[%d %s %s step=%q err=%q] ", j.ID, j.MediaID, j.State, j.Step, j.Error)
	}
	return s
}

// borderIsWhiteOrClear reports whether an image's corner pixel is what the
// fake editor paints the background: white or transparent.
func borderIsWhiteOrClear(t *testing.T, data []byte) bool {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	r, g, b, a := img.At(0, 0).RGBA()
	return a == 0 || (r > 0xf000 && g > 0xf000 && b > 0xf000)
}

func sleep() { time.Sleep(10 * time.Millisecond) }

func itoa(id uint64) string { return fmt.Sprint(id) }

// installShop installs another shop through token exchange and saves its
// settings through the API.
func (h *harness) installShop(domain string) {
	h.t.Helper()
	h.store.AddShop(domain)
	b, _ := json.Marshal(map[string]any{
		"enabled": true, "rtb": map[string]any{"contactEmail": rtbEmail, "contactApiKey": rtbKey},
		"templateId": rtbtest.DefaultTemplates()[0].ID, "imageScope": "all", "writeMode": "replace", "deliveryHours": 24,
	})
	req, _ := http.NewRequest("PUT", h.url+"/api/settings", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.store.SessionToken(domain, time.Minute))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("install %s: %d", domain, resp.StatusCode)
	}
}

// metrics returns the app's /metrics page.
func (h *harness) metrics() string {
	h.t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
