package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/shopifytest"
)

// injections are text a merchant, a staff member or an app could put in a
// product or a setting. Every one is stored and shown exactly as written.
var injections = []string{
	`<img src=x onerror="window.__pwned=1;alert(1)">`,
	`</script><script>window.__pwned=1</script>`,
	`<svg onload="window.__pwned=1">`,
	`<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>`,
	`" onmouseover="window.__pwned=1" data-x="`,
	`javascript:window.__pwned=1`,
	`{{constructor.constructor('window.__pwned=1')()}}`,
	`'; DROP TABLE image_jobs; --`,
	`Robert'); DELETE FROM shops WHERE ('1'='1`,
	`" OR "1"="1`,
	`\'; UPDATE shop_settings SET enabled = 0; -- \`,
	`%' OR '%'='`,
	`1; SELECT SLEEP(10)`,
}

func attackInjection(t *testing.T, db *gorm.DB, tally *attackTally) {
	h := newHarness(t, db, harnessOptions{})
	base := map[string]any{
		"enabled": true, "rtb": map[string]any{"contactEmail": rtbEmail, "contactApiKey": rtbKey},
		"templateId": "2000045", "imageScope": "all", "writeMode": "replace", "deliveryHours": 24,
	}
	put := func(extra map[string]any) (int, []byte) {
		body := map[string]any{}
		for k, v := range base {
			body[k] = v
		}
		for k, v := range extra {
			body[k] = v
		}
		return h.api("PUT", "/api/settings", body)
	}
	// The filter lists hold anything: every injection goes into one list.
	filters := map[string][]string{"productTypes": {}, "vendors": {}, "tagsInclude": {}, "tagsExclude": append([]string(nil), injections...)}
	if status, body := put(map[string]any{"filters": filters}); status != 200 {
		t.Fatalf("save filters: %d %s", status, body)
	}
	saved := settingsJSON(t, h)
	var got struct{ Filters map[string][]string }
	json.Unmarshal([]byte(saved), &got)
	for i, p := range injections {
		tally.try(t, "injection: settings", "filter "+p, func() string {
			if got.Filters["tagsExclude"][i] != p {
				return fmt.Sprintf("stored as %q", got.Filters["tagsExclude"][i])
			}
			return ""
		})
	}
	// Fields with a format refuse the text and keep what was saved.
	for _, p := range injections {
		for _, f := range []string{"templateId", "monthlyBudget", "imageScope", "writeMode", "publish", "rtb.contactEmail"} {
			tally.try(t, "injection: settings", f+" "+p, func() string {
				extra := map[string]any{f: p}
				if f == "rtb.contactEmail" {
					extra = map[string]any{"rtb": map[string]any{"contactEmail": p, "contactApiKey": rtbKey}}
				}
				status, body := put(extra)
				if status != 400 && status != 422 {
					return fmt.Sprintf("answered %d %s", status, body)
				}
				if now := settingsJSON(t, h); now != saved {
					return "settings changed: " + now
				}
				return ""
			})
		}
	}

	// Products whose title, type, vendor and alt texts are the injections.
	var recs []*shopifytest.ProductRecord
	for i, p := range injections {
		recs = append(recs, h.createProduct(shopifytest.NewProduct{Title: p, ProductType: p, Vendor: p,
			Images: []shopifytest.NewImage{{Filename: fmt.Sprintf("inj-%d.jpg", i), Data: photo("jpeg", sand), Alt: p}}}))
	}
	// One tagged with an injection the filter excludes, compared verbatim.
	excluded := h.createProduct(shopifytest.NewProduct{Title: "Tagged", Tags: []string{injections[7]},
		Images: []shopifytest.NewImage{{Filename: "tagged.jpg", Data: photo("jpeg", sand)}}})
	for _, r := range append(slices.Clone(recs), excluded) {
		waitReady(t, h, r.ID)
		h.webhook("products/create", r.ID)
	}
	h.waitJobs("every injected product done", func(js []models.ImageJob) bool {
		return allIn(len(recs), models.JobDone)(js) || allIn(len(recs)+1, models.JobDone, models.JobSkipped)(js)
	})
	time.Sleep(100 * time.Millisecond)
	status, body := h.api("GET", "/api/jobs?limit=200", nil)
	if status != 200 {
		t.Fatalf("jobs: %d %s", status, body)
	}
	var listed struct {
		Jobs []struct{ ProductID, ProductTitle, State string }
	}
	json.Unmarshal(body, &listed)
	titles := map[string]string{}
	for _, j := range listed.Jobs {
		titles[j.ProductID] = j.ProductTitle
	}
	for i, p := range injections {
		rec := recs[i]
		tally.try(t, "injection: titles and alt texts", "title "+p, func() string {
			j := jobOf(h, rec.ID)
			if j.ProductTitle != p || titles[rec.ID] != p {
				return fmt.Sprintf("title stored %q, listed %q", j.ProductTitle, titles[rec.ID])
			}
			return ""
		})
		tally.try(t, "injection: titles and alt texts", "alt "+p, func() string {
			j := jobOf(h, rec.ID)
			media := h.store.Product(shopDomain, rec.ID).Media
			if j.OriginalAlt != p || len(media) != 1 || media[0].Alt != p {
				return fmt.Sprintf("alt stored %q, on the product %v", j.OriginalAlt, media)
			}
			return ""
		})
	}
	if j := jobOf(h, excluded.ID); j.ID != 0 && j.State != models.JobSkipped {
		t.Errorf("the product tagged %q was processed: %s", injections[7], j.State)
	}
	// Query parameters reach no SQL either.
	for _, p := range injections {
		for _, q := range []string{"state", "cursor", "limit"} {
			tally.try(t, "injection: API queries", q+"="+p, func() string {
				status, body := h.api("GET", "/api/jobs?"+q+"="+url.QueryEscape(p), nil)
				if status != 400 {
					return fmt.Sprintf("answered %d %s", status, body)
				}
				return ""
			})
		}
		tally.try(t, "injection: API queries", "job id "+p, func() string {
			if status, body := h.api("POST", "/api/jobs/"+url.PathEscape(p)+"/retry", nil); status != 400 && status != 404 {
				return fmt.Sprintf("answered %d %s", status, body)
			}
			return ""
		})
	}
	// Every table still holds every row.
	tally.effect(t, "injection: API queries", func() string {
		if n := rowCount(t, db, &models.ImageJob{}); n != int64(len(recs)) && n != int64(len(recs)+1) {
			return fmt.Sprintf("%d jobs, want %d", n, len(recs))
		}
		if n := rowCount(t, db, &models.ImageJob{}, "state = ?", models.JobDone); n != int64(len(recs)) {
			return fmt.Sprintf("%d jobs done, want %d", n, len(recs))
		}
		if n := rowCount(t, db, &models.Shop{}); n != 1 {
			return fmt.Sprintf("%d shops", n)
		}
		if n := rowCount(t, db, &models.JobEvent{}); n < int64(len(recs)) {
			return fmt.Sprintf("%d job events", n)
		}
		if now := settingsJSON(t, h); now != saved {
			return "settings changed: " + now
		}
		return shopIntact(t, h)
	}())
}

func jobOf(h *harness, productID string) models.ImageJob {
	var j models.ImageJob
	h.db.Where("product_id = ?", productID).Limit(1).Find(&j)
	return j
}

// attackBrowser shows the injections in the dashboard in headless
// Chromium: every title shows as text, and no script of theirs runs.
func attackBrowser(t *testing.T, tally *attackTally) {
	b := newBrowser(t, 60*time.Second)
	h := newUIHarness(t)
	h.turnOn(map[string]any{"filters": map[string]any{"productTypes": []string{}, "vendors": []string{},
		"tagsInclude": []string{}, "tagsExclude": injections}})
	for i, p := range injections {
		rec := h.createProduct(shopifytest.NewProduct{Title: p, Vendor: p,
			Images: []shopifytest.NewImage{{Filename: fmt.Sprintf("inj-%d.jpg", i), Data: photo("jpeg", sand), Alt: p}}})
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
	}
	h.waitJobs("every injected product done", allIn(len(injections), models.JobDone))

	var mu gosync.Mutex
	var dialogs []string
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			mu.Lock()
			dialogs = append(dialogs, string(e.Type)+": "+e.Message)
			mu.Unlock()
			go chromedp.Run(context.WithoutCancel(b.ctx), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				return err
			}))
		}
	}); err != nil {
		t.Fatal(err)
	}
	rows := fmt.Sprintf(`document.querySelectorAll("#jobs-body s-table-row[data-state='done']").length === %d`, len(injections))
	b.do("open the dashboard",
		chromedp.Navigate(launchURL(h)),
		waitJS(`document.body.dataset.loaded === "1"`),
		waitJS(rows),
		waitJS(`document.getElementById("f-tags-out").value !== ""`),
	)
	// Let the rows render fully, then refresh them once more.
	b.do("refresh the jobs",
		focusOn(`#jobs-refresh button`),
		key("\r"),
		waitJS(rows),
		chromedp.Sleep(300*time.Millisecond),
	)
	shown := b.value("read the titles", chromedp.Evaluate[string](`JSON.stringify(Array.prototype.map.call(document.querySelectorAll("#jobs-body s-table-row .product"), function (c) { return c.textContent; }))`))
	var texts []string
	json.Unmarshal([]byte(shown), &texts)
	filter := b.value("read the filter", chromedp.Evaluate[string](`document.getElementById("f-tags-out").value`))
	for _, p := range injections {
		tally.try(t, "injection: shown in Chromium", "title "+p, func() string {
			if !slices.Contains(texts, p) {
				return fmt.Sprintf("not shown as text; titles shown: %q", texts)
			}
			return ""
		})
		tally.try(t, "injection: shown in Chromium", "filter "+p, func() string {
			if !strings.Contains(filter, p) {
				return fmt.Sprintf("filter field shows %q", filter)
			}
			return ""
		})
	}
	pwned := b.value("look for the payloads' marks", chromedp.Evaluate[string](`typeof window.__pwned`))
	injected := b.value("look for injected elements", chromedp.Evaluate[string](`String(document.querySelectorAll('img[src="x"], [onerror], [onload], [onmouseover], iframe[srcdoc], #jobs-body script').length)`))
	mu.Lock()
	opened := slices.Clone(dialogs)
	mu.Unlock()
	tally.try(t, "browser script runs", "the dashboard with every injection", func() string {
		switch {
		case pwned != "undefined":
			return "window.__pwned is " + pwned
		case len(opened) > 0:
			return fmt.Sprintf("dialogs opened: %q", opened)
		case injected != "0":
			return injected + " injected elements in the page"
		}
		return ""
	})
	if errs := b.scriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}
}
