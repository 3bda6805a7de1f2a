package e2e_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rtbshopify/models"
)

// The catalogue is processed only after the merchant saw its cost and
// confirmed it, with the keyboard alone; the month's spend and the images
// processed then show per day.
func TestBackfillConfirmationInHeadlessChromium(t *testing.T) {
	b := newBrowser(t, 60*time.Second)
	h := newUIHarness(t)
	h.turnOn(map[string]any{"monthlyBudget": "10.00"})
	for _, name := range []string{"one", "two"} {
		waitReady(t, h, h.createProduct(oneImage(name)).ID)
	}
	b.do("open the page",
		chromedp.Navigate(launchURL(h)),
		waitJS(`document.body.dataset.loaded === "1"`),
	)
	b.do("ask for the cost",
		focusOn(`#backfill-start button`),
		key("\r"),
		waitJS(`document.getElementById("estimate").textContent.includes("2 images would be sent now at 0.95 each: 1.90")`),
		waitJS(`document.getElementById("estimate").textContent.includes("10.00 left")`),
		waitJS(`document.activeElement === document.querySelector("#backfill-confirm button")`),
		waitJS(`document.activeElement.textContent === "Confirm and spend up to 1.90"`),
	)
	if n := len(h.rtb.Jobs()); n != 0 {
		t.Fatalf("%d images sent before the merchant confirmed", n)
	}
	b.do("cancel, then ask again",
		focusOn(`#backfill-cancel button`),
		key("\r"),
		waitJS(`!document.querySelector("#backfill-confirm")`),
		waitJS(`document.activeElement === document.querySelector("#backfill-start button")`),
		key("\r"),
		waitJS(`document.activeElement === document.querySelector("#backfill-confirm button")`),
		waitJS(`document.activeElement.textContent === "Confirm and spend up to 1.90"`),
	)
	// A save of the settings while the confirmation is open works the estimate out again: the
	// button then shows, and sends, the new amount.
	waitReady(t, h, h.createProduct(oneImage("three")).ID)
	b.do("save the settings while confirming",
		focusOn(`#save button`),
		key("\r"),
		toastSays("Settings saved"),
		waitJS(`document.getElementById("estimate").textContent.includes("3 images would be sent now at 0.95 each: 2.85")`),
		waitJS(`document.querySelector("#backfill-confirm button").textContent === "Confirm and spend up to 2.85"`),
	)
	b.do("confirm the new amount",
		focusOn(`#backfill-confirm button`),
		key("\r"),
		toastSays("Processing the existing catalogue, up to 2.85"),
	)
	var run models.Backfill
	if err := h.db.Take(&run).Error; err != nil || run.ConfirmAmount != "2.85" {
		t.Fatalf("backfill confirmed %q (%v), want the 2.85 shown", run.ConfirmAmount, err)
	}
	h.waitJobs("all three done", allIn(3, models.JobDone))
	today := time.Now().UTC().Format("2006-01-02")
	b.do("see the month's charts",
		chromedp.Reload(),
		waitJS(`document.body.dataset.loaded === "1"`),
		waitJS(`document.getElementById("chart-spend").getAttribute("aria-label").includes("`+today+` 2.85")`),
		waitJS(`document.getElementById("chart-processed").getAttribute("aria-label").includes("`+today+` 3")`),
		focusOn(`#backfill-start button`),
		key("\r"),
		waitJS(`document.getElementById("estimate").textContent.startsWith("No image would be sent now")`),
	)
	if n := b.value("count bars", chromedp.Evaluate[string](`String(document.querySelectorAll("#chart-spend rect").length)`)); n != strings.TrimLeft(time.Now().UTC().Format("02"), "0") {
		t.Errorf("%s bars in the spend chart, want one per day so far", n)
	}
	b.screenshot("catalogue.png")

	// Shopify's IP allowlist refuses the app: the page says what to change, not "something went wrong".
	h.store.SetIPAllowlist(netip.MustParsePrefix("203.0.113.0/24"))
	b.do("ask for the cost while Shopify refuses the app",
		focusOn(`#backfill-cancel button`),
		key("\r"),
		waitJS(`document.activeElement === document.querySelector("#backfill-start button")`),
		key("\r"),
		waitJS(`!document.getElementById("notice").hidden`),
		waitJS(`document.getElementById("notice-text").textContent.includes("IP allowlist in Shopify's Dev Dashboard")`),
		waitJS(`!document.querySelector("#backfill-confirm")`),
	)
	if txt := b.value("read the banner", chromedp.Evaluate[string](`document.getElementById("banner").hidden ? "" : document.getElementById("banner-text").textContent`)); txt != "" {
		t.Errorf("a second banner shows %q", txt)
	}
	if errs := b.scriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}
}

// turnOn saves settings that turn processing on, with extra on top.
func (h *harness) turnOn(extra map[string]any) {
	h.t.Helper()
	body := map[string]any{
		"enabled": true, "rtb": map[string]any{"contactEmail": rtbEmail, "contactApiKey": rtbKey},
		"templateId": "2000045", "imageScope": "all", "writeMode": "replace", "deliveryHours": 24,
	}
	for k, v := range extra {
		body[k] = v
	}
	if status, raw := h.api("PUT", "/api/settings", body); status != 200 {
		h.t.Fatalf("settings: %d %s", status, raw)
	}
}
