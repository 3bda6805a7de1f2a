package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"image/color"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gofiber/fiber/v2"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify"
	"rtbshopify/shopify/shopifytest"
	"rtbshopify/shopify/ui"
	imgsync "rtbshopify/sync"
)

const chromiumPath = "/usr/bin/chromium"

// newUIHarness stands the app up like newHarness, but leaves the settings
// to the browser and serves the demo's development token endpoint, since
// the page runs outside the Shopify admin.
func newUIHarness(t *testing.T) *harness {
	t.Helper()
	db := modelstest.Open(t, "sqlite").DB
	store := shopifytest.New(shopifytest.Options{APIKey: "test-key", APISecret: "test-secret", MediaProcessingDelay: 30 * time.Millisecond})
	t.Cleanup(store.Close)
	store.AddShop(shopDomain)
	fakeRTB := rtbtest.New(rtbtest.Options{
		Accounts: map[string]string{rtbEmail: rtbKey},
		NewFor:   20 * time.Millisecond, ProductionFor: 20 * time.Millisecond, QualityCheckFor: 20 * time.Millisecond,
		TickInterval: 10 * time.Millisecond, CallbackRetry: []time.Duration{100 * time.Millisecond},
	})
	t.Cleanup(fakeRTB.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{
		AppURL: "http://" + ln.Addr().String(), ShopifyAPIKey: "test-key", ShopifyAPISecret: "test-secret", ShopifyAPIVersion: "2026-10",
		ShopifyScopes: []string{"read_products", "write_products", "write_files"}, ShopifyAdminBaseURL: store.URL(),
		RTBBaseURL: fakeRTB.BaseURL(), RTBFilesBaseURL: fakeRTB.URL() + "/", AllowPrivateDownloads: true, Workers: 2,
		EncryptionKeys: []config.Key{{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := buildApp(t, cfg, db, log, func(o *imgsync.Options) {
		o.Idle = 20 * time.Millisecond
		o.MediaRecheck = 50 * time.Millisecond
		o.Schedule.Disabled = true
	}, func(srv *fiber.App, shop *shopify.App) {
		ui.Register(srv, ui.Options{
			APIKey: cfg.ShopifyAPIKey, Secrets: []string{cfg.ShopifyAPISecret}, Sessions: shop.Sessions(), Log: log,
			DevTokens: func(shop string) string { return store.SessionToken(shop, time.Minute) },
		})
	}, nil)
	go app.HTTP.Listener(ln)
	t.Cleanup(func() { app.HTTP.Shutdown() })
	h := &harness{t: t, db: db, store: store, rtb: fakeRTB, app: app, url: cfg.AppURL, cfg: cfg, log: log}
	h.start()
	return h
}

// launchURL is the page's address as Shopify's admin opens it, signed
// with the app secret (no id_token: the page fetches its own tokens).
func launchURL(h *harness) string {
	q := url.Values{"embedded": {"1"}, "shop": {shopDomain}, "host": {"YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtby1zaG9w"},
		"timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}}
	m := hmac.New(sha256.New, []byte(h.cfg.ShopifyAPISecret))
	m.Write([]byte(q.Encode()))
	q.Set("hmac", hex.EncodeToString(m.Sum(nil)))
	return h.url + "/?" + q.Encode()
}

// waitJS polls a JavaScript condition in the page.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
}

func TestAdminPageInHeadlessChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test skipped: no Chromium at %s (apt-get install chromium)", chromiumPath)
	}
	h := newUIHarness(t)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1400),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Shopify's CDN is unreachable whatever the machine's network:
		// the page must work on its own fallback.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var mu gosync.Mutex
	var jsErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			defer mu.Unlock()
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			jsErrors = append(jsErrors, msg)
		}
	}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	scriptErrors := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), jsErrors...)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			banner, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.getElementById("banner").innerText`))
			t.Fatalf("%s: %v (banner %q, script errors %q)", what, err, banner, scriptErrors())
		}
	}
	value := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}

	do("open the page",
		chromedp.Navigate(launchURL(h)),
		waitJS(`document.getElementById("ready").textContent !== "Loading…"`),
	)
	if got := value("look for App Bridge", chromedp.Evaluate[string](`typeof window.shopify`)); got != "undefined" {
		t.Fatalf("App Bridge loaded (window.shopify is %s): the test meant the CDN to be unreachable", got)
	}

	// First save: the credentials alone, so the template list can load.
	do("save the credentials",
		chromedp.SendKeys(chromedp.ID("f-email"), rtbEmail),
		chromedp.SendKeys(chromedp.ID("f-contact-key"), rtbKey),
		chromedp.Click(chromedp.ID("save")),
		waitJS(`document.getElementById("banner-text").textContent === "Settings saved."`),
		waitJS(`document.getElementById("f-template").options.length > 1`),
	)
	ph := value("read the masked key", chromedp.Evaluate[string](`document.getElementById("f-contact-key").placeholder`))
	if ph != "…"+rtbKey[len(rtbKey)-2:] {
		t.Errorf("contact key placeholder %q, want the masked key", ph)
	}

	// A refused field shows its message next to the field.
	do("an invalid budget",
		chromedp.SendKeys(chromedp.ID("f-budget"), "lots"),
		chromedp.Click(chromedp.ID("save")),
		waitJS(`document.getElementById("err-monthlyBudget").textContent.includes("amount")`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("f-budget").value = ""`),
	)

	do("turn processing on",
		chromedp.SetValue(chromedp.ID("f-template"), rtbtest.DefaultTemplates()[0].ID),
		chromedp.Click(chromedp.ID("f-enabled")),
		chromedp.Click(chromedp.ID("save")),
		waitJS(`document.getElementById("ready").classList.contains("ready-yes")`),
		waitJS(`document.getElementById("banner-text").textContent === "Settings saved."`),
	)

	rec := h.createProduct(shopifytest.NewProduct{Title: "Blue <b>mug</b>", Images: []shopifytest.NewImage{
		{Filename: "mug.jpg", Data: photo("jpg", color.RGBA{200, 220, 240, 255}), Alt: "A mug"}}})
	waitReady(t, h, rec.ID)
	h.webhook("products/create", rec.ID)
	doneRow := `#jobs-body tr[data-state="done"]`
	do("see the job done",
		chromedp.Click(chromedp.ID("jobs-refresh")),
		chromedp.WaitVisible(chromedp.CSS(doneRow+` td.thumb img`)),
		waitJS(`document.querySelector('`+doneRow+` td.thumb img').naturalWidth > 0`),
	)
	if title := value("read the row", chromedp.Text(chromedp.CSS(doneRow+` td.product`))); title != "Blue <b>mug</b>" {
		t.Errorf("product cell %q: the title must show as text", title)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// UI_SCREENSHOT_DIR keeps the screenshot for a person to look at.
	dir := os.Getenv("UI_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	do("revert",
		chromedp.Click(chromedp.CSS(doneRow+` .row-actions button`)),
		waitJS(`document.getElementById("banner-text").textContent.startsWith("Restoring")`),
		chromedp.WaitVisible(chromedp.CSS(`#jobs-body tr[data-state="reverted"]`)),
	)
	if jobs := h.jobs(); len(jobs) != 1 || jobs[0].State != models.JobReverted {
		t.Errorf("jobs after revert: %s", describe(jobs))
	}
	if errs := scriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}
}
