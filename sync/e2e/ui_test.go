package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
			DevTokens: func(shop string) string { return store.SessionToken(shop, time.Minute) }, Shim: true,
		})
	}, nil, nil)
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

// waitJS polls a JavaScript condition in the page; a failure names the condition.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := poll(ctx, t)
		if err != nil {
			err = fmt.Errorf("%w waiting for %s", err, expr)
		}
		return v, err
	}
}

// focusOn puts the keyboard on the element sel finds, from inside the page, and waits until it is
// there. chromedp.Focus looks the node up and focuses it in two steps, and the jobs table, drawn
// anew every few seconds while images are on their way, can replace the node in between.
func focusOn(sel string) chromedp.Action[chromedp.Void] {
	return waitJS(`(function () { var e = document.querySelector(` + strconv.Quote(sel) + `);
  if (e && document.activeElement !== e) e.focus();
  return !!e && document.activeElement === e; })()`)
}

// browser is a headless Chromium on a page of the app, for the tests below.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     gosync.Mutex
	errors []string
}

// newBrowser starts Chromium. Without it the test is skipped, except in CI (CI=true), where a
// missing browser is a failure: the page's tests must run there.
func newBrowser(t *testing.T, timeout time.Duration) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium at %s: CI must run the browser tests (apt-get install chromium)", chromiumPath)
		}
		t.Skipf("browser test skipped: no Chromium at %s (apt-get install chromium)", chromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Shopify's CDN is unreachable whatever the machine's network: the page must work
		// with the shim.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.errors = append(b.errors, msg)
		}
	}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return b
}

func (b *browser) scriptErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		msg, _ := chromedp.Run(context.WithoutCancel(b.ctx), chromedp.Evaluate[string](`(document.getElementById("banner-text")||{}).textContent||""`))
		fields, _ := chromedp.Run(context.WithoutCancel(b.ctx), chromedp.Evaluate[string](`Array.prototype.map.call(document.querySelectorAll(".shim-error"), function (e) { return e.textContent ? e.id + ": " + e.textContent : ""; }).filter(Boolean).join("; ")`))
		b.t.Fatalf("%s: %v (banner %q, field messages %q, script errors %q)", what, err, msg, fields, b.scriptErrors())
	}
}

func (b *browser) value(what string, a chromedp.Action[string]) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the page as name under UI_SCREENSHOT_DIR (kept for a person to look at) or
// the test's temporary folder, and logs the path.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("UI_SCREENSHOT_DIR")
	if dir == "" {
		dir = b.t.TempDir()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// key presses one key on whatever has the focus: the flow below uses no mouse.
func key(k string) chromedp.Action[chromedp.Void] { return chromedp.KeyEvent(k) }

// toastSays waits for the confirmation App Bridge's toast (the shim's, here) shows.
func toastSays(text string) chromedp.Action[chromedp.Void] {
	return waitJS(`(document.querySelector(".shim-toast:not([hidden])")||{}).textContent === ` + strconv.Quote(text))
}

func TestAdminPageInHeadlessChromium(t *testing.T) {
	b := newBrowser(t, 40*time.Second)
	h := newUIHarness(t)

	b.do("open the page",
		chromedp.Navigate(launchURL(h)),
		waitJS(`document.body.dataset.loaded === "1"`),
	)
	if got := b.value("look for App Bridge", chromedp.Evaluate[string](`typeof (window.shopify && window.shopify.idToken)`)); got != "undefined" {
		t.Fatalf("App Bridge loaded (shopify.idToken is %s): the test meant the CDN to be unreachable", got)
	}
	if got := b.value("look for the shim", chromedp.Evaluate[string](`customElements.get("s-text-field") ? "defined" : "missing"`)); got != "defined" {
		t.Fatalf("Polaris elements are %s: the shim did not load", got)
	}

	// Every control has an accessible name and shows where the focus is.
	unlabelled := b.value("find unlabelled controls", chromedp.Evaluate[string](`(function () {
  var bad = [];
  document.querySelectorAll("input, select, button, a[href], textarea").forEach(function (el) {
    var name = el.getAttribute("aria-label") || (el.labels && Array.prototype.map.call(el.labels, function (l) { return l.textContent; }).join(" ")) || el.textContent;
    if (!String(name || "").trim()) bad.push(el.outerHTML.slice(0, 80));
  });
  return bad.join("\n");
})()`))
	if unlabelled != "" {
		t.Errorf("controls without an accessible name:\n%s", unlabelled)
	}
	b.do("reach the email field by keyboard",
		focusOn(`#f-enabled input`),
		key("\t"),
		waitJS(`document.activeElement === document.querySelector("#f-email input")`),
	)
	if outline := b.value("read the focus ring", chromedp.Evaluate[string](`getComputedStyle(document.activeElement).outlineStyle + " " + getComputedStyle(document.activeElement).outlineWidth`)); strings.HasPrefix(outline, "none") || strings.HasSuffix(outline, " 0px") {
		t.Errorf("the focused field shows no focus ring: outline %q", outline)
	}

	// First save: the credentials alone, so the template list can load. Enter submits the form,
	// and the save bar shows while there are unsaved changes.
	b.do("save the credentials",
		chromedp.SendKeys(chromedp.CSS(`#f-email input`), rtbEmail),
		waitJS(`!document.querySelector(".shim-save-bar").hidden`),
		chromedp.SendKeys(chromedp.CSS(`#f-contact-key input`), rtbKey),
		key("\r"),
		toastSays("Settings saved"),
		waitJS(`document.querySelector(".shim-save-bar").hidden`),
		waitJS(`document.querySelector("#f-template select").options.length > 1`),
	)
	ph := b.value("read the masked key", chromedp.Evaluate[string](`document.querySelector("#f-contact-key input").placeholder`))
	if ph != "…"+rtbKey[len(rtbKey)-2:] {
		t.Errorf("contact key placeholder %q, want the masked key", ph)
	}

	// A refused field shows its message on the field, which gets the focus.
	b.do("an invalid budget",
		chromedp.SendKeys(chromedp.CSS(`#f-budget input`), "lots"),
		key("\r"),
		waitJS(`document.querySelector("#f-budget .shim-error").textContent.includes("amount")`),
		waitJS(`document.activeElement === document.querySelector("#f-budget input")`),
		waitJS(`document.querySelector("#f-budget input").getAttribute("aria-describedby").includes(document.querySelector("#f-budget .shim-error").id)`),
	)
	// Discard in the save bar puts the saved settings back.
	b.do("discard the change",
		chromedp.SendKeys(chromedp.CSS(`#f-budget input`), "!"),
		waitJS(`!document.querySelector(".shim-save-bar").hidden`),
		focusOn(`.shim-save-bar button`),
		key(" "),
		waitJS(`document.querySelector("#f-budget input").value === ""`),
		waitJS(`document.querySelector(".shim-save-bar").hidden`),
		// The page puts the saved settings back after the form's own reset, and clears the
		// field messages then: once the budget's message is gone, nothing of the discard is
		// left to overwrite the next step's choices.
		waitJS(`document.querySelector("#f-budget .shim-error").textContent === ""`),
	)

	b.do("turn processing on",
		chromedp.SetValue(chromedp.CSS(`#f-template select`), rtbtest.DefaultTemplates()[0].ID),
		focusOn(`#f-enabled input`),
		key(" "),
		focusOn(`#save button`),
		key("\r"),
		waitJS(`document.getElementById("ready").dataset.ready === "yes"`),
		toastSays("Settings saved"),
	)

	rec := h.createProduct(shopifytest.NewProduct{Title: "Blue <b>mug</b>", Images: []shopifytest.NewImage{
		{Filename: "mug.jpg", Data: photo("jpg", color.RGBA{200, 220, 240, 255}), Alt: "A mug"}}})
	waitReady(t, h, rec.ID)
	h.webhook("products/create", rec.ID)
	doneRow := `#jobs-body s-table-row[data-state="done"]`
	b.do("see the job done",
		focusOn(`#jobs-refresh button`),
		key("\r"),
		chromedp.WaitVisible(chromedp.CSS(doneRow+` s-thumbnail img`)),
		waitJS(`Array.prototype.every.call(document.querySelectorAll('`+doneRow+` s-thumbnail img'), function (i) { return i.complete && i.naturalWidth > 0; })`),
	)
	if n := b.value("count thumbnails", chromedp.Evaluate[string](`String(document.querySelectorAll('`+doneRow+` .pair s-thumbnail').length)`)); n != "2" {
		t.Errorf("%s thumbnails in the row, want before and after side by side", n)
	}
	if title := b.value("read the row", chromedp.Text(chromedp.CSS(doneRow+` .product a`))); title != "Blue <b>mug</b>" {
		t.Errorf("product cell %q: the title must show as text", title)
	}
	href := b.value("read the product link", chromedp.Evaluate[string](`document.querySelector('`+doneRow+` .product a').href`))
	if want := "https://admin.shopify.com/store/demo-shop/products/" + strings.TrimPrefix(rec.ID, "gid://shopify/Product/"); href != want {
		t.Errorf("product link %q, want %q", href, want)
	}
	b.screenshot("dashboard.png")

	b.do("revert",
		focusOn(doneRow+` .row-actions button`),
		key("\r"),
		toastSays("Restoring the original image"),
		chromedp.WaitVisible(chromedp.CSS(`#jobs-body s-table-row[data-state="reverted"]`)),
	)
	if jobs := h.jobs(); len(jobs) != 1 || jobs[0].State != models.JobReverted {
		t.Errorf("jobs after revert: %s", describe(jobs))
	}

	// A job held by Shopify's IP allowlist puts a banner above everything.
	held := h.jobs()[0]
	held.ID, held.State, held.Error, held.MediaID = 0, models.JobRetrying, imgsync.AllowlistMessage, held.MediaID+"-2"
	if err := h.db.Create(&held).Error; err != nil {
		t.Fatal(err)
	}
	b.do("see the IP allowlist banner",
		focusOn(`#jobs-refresh button`),
		key("\r"),
		waitJS(`!document.getElementById("notice").hidden && document.getElementById("notice-text").textContent.includes("IP allowlist")`),
		waitJS(`document.getElementById("notice").getAttribute("role") === "status"`),
	)
	if errs := b.scriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}
}
