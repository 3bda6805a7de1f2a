package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

func oneImage(name string) shopifytest.NewProduct {
	return shopifytest.NewProduct{Title: "Mug " + name, Images: []shopifytest.NewImage{{Filename: name + ".jpg", Data: photo("jpeg", sand), Alt: "A mug"}}}
}

func TestDuplicateAndLateCallbacksChangeNothing(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		h.rtb.SetCallbackFaults(rtbtest.CallbackFaults{Duplicate: true})
		rec := h.createProduct(oneImage("dup"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("done", allIn(1, models.JobDone))
		// A late callback for the finished job, and one with another ticket.
		tok := h.app.Signer.Token(jobs[0].ID)
		for _, tc := range []struct {
			ticket string
			want   int
		}{{*jobs[0].Ticket, 200}, {"a37a1f55-7cd4-4474-db19-ac03e85538a7", 404}} {
			if got := postCallback(t, h.url+"/rtb/callback/"+tok, tc.ticket); got != tc.want {
				t.Errorf("callback with ticket %s: %d, want %d", tc.ticket, got, tc.want)
			}
		}
		if got := postCallback(t, h.url+"/rtb/callback/"+tok+"x", *jobs[0].Ticket); got != 404 {
			t.Errorf("altered token: %d, want 404", got)
		}
		after := h.jobs()
		if after[0].State != models.JobDone || !after[0].UpdatedAt.Equal(jobs[0].UpdatedAt) {
			t.Errorf("late callbacks changed the job: %s", describe(after))
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 1 {
			t.Errorf("billed %d times, want 1", n)
		}
		if media := h.store.Product(shopDomain, rec.ID).Media; len(media) != 1 {
			t.Errorf("product has %d media, want 1", len(media))
		}
	})
}

func postCallback(t *testing.T, u, ticket string) int {
	t.Helper()
	form := url.Values{"imageTicket": {ticket}, "ProcessedImageURL": {"http://169.254.169.254/evil.png"}}
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDroppedCallbackIsRecoveredByThePollCron(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{tune: func(o *imgsync.Options) { o.Schedule.PollInterval = time.Millisecond }})
		h.rtb.SetCallbackFaults(rtbtest.CallbackFaults{Drop: 100})
		rec := h.createProduct(oneImage("dropped"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("submitted", allIn(1, models.JobAwaitingRTB))
		// Let the fake finish the image; no callback arrives.
		for {
			if j, ok := h.rtb.Job(*jobs[0].Ticket); ok && j.StatusID == rtbtest.StatusDelivered {
				break
			}
			sleep()
		}
		time.Sleep(5 * time.Millisecond)
		if err := h.app.Pipeline.WakeStalePolls(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.waitJobs("done after polling", allIn(1, models.JobDone))
	})
}

func TestMissedWebhookIsRecoveredByReconciliation(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		if status, body := h.api("GET", "/api/reconciliation", nil); status != 200 || !strings.Contains(string(body), `"lastRunAt":null`) {
			t.Fatalf("reconciliation before it ran: %d %s", status, body)
		}
		rec := h.createProduct(oneImage("missed")) // no webhook arrives
		waitReady(t, h, rec.ID)
		before := time.Now()
		res, err := h.app.Pipeline.Reconcile(context.Background())
		if err != nil || res.Queued != 1 {
			t.Fatalf("reconcile queued %d, err %v; want 1", res.Queued, err)
		}
		h.waitJobs("done", allIn(1, models.JobDone))
		// The dashboard's API says when it ran and what it caught, and
		// /metrics counts the images no webhook had announced.
		var view struct {
			Reconciliation struct {
				LastRunAt   *time.Time `json:"lastRunAt"`
				LastCaught  int        `json:"lastCaught"`
				CaughtTotal int64      `json:"caughtTotal"`
			} `json:"reconciliation"`
		}
		status, body := h.api("GET", "/api/reconciliation", nil)
		if err := json.Unmarshal(body, &view); status != 200 || err != nil {
			t.Fatalf("reconciliation: %d %s %v", status, body, err)
		}
		r := view.Reconciliation
		if r.LastRunAt == nil || r.LastRunAt.Before(before.Add(-time.Second)) || r.LastCaught != 1 || r.CaughtTotal != 1 {
			t.Fatalf("reconciliation after catching one image: %s", body)
		}
		if m := h.metrics(); !strings.Contains(m, "rtbshopify_reconcile_caught_images_total 1\n") {
			t.Fatalf("/metrics lacks the caught image:\n%s", grepLines(m, "rtbshopify_reconcile"))
		}
		// A second pass finds nothing new: the last pass caught nothing,
		// the total stays.
		if res, err := h.app.Pipeline.Reconcile(context.Background()); err != nil || res.Queued != 0 {
			t.Fatalf("second reconcile queued %d, err %v", res.Queued, err)
		}
		_, body = h.api("GET", "/api/reconciliation", nil)
		json.Unmarshal(body, &view)
		if view.Reconciliation.LastCaught != 0 || view.Reconciliation.CaughtTotal != 1 {
			t.Fatalf("reconciliation after a pass that caught nothing: %s", body)
		}
	})
}

func TestMediaThatBecomesReadyLateIsProcessed(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		rec := h.createProduct(oneImage("late")) // webhook sent before the media is READY
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("done", allIn(1, models.JobDone))
		if jobs[0].Attempts != 0 {
			t.Errorf("waiting for Shopify counted as %d failed attempts", jobs[0].Attempts)
		}
	})
}

func TestOverBudgetWaitsAndResumesWhenRaised(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		// T-shirts costs 0.95: 1.00 pays for one image of two.
		h := newHarness(t, db, harnessOptions{budget: "1.00"})
		rec := h.createProduct(shopifytest.NewProduct{Title: "Two", Images: []shopifytest.NewImage{
			{Filename: "a.jpg", Data: photo("jpeg", sand)}, {Filename: "b.jpg", Data: photo("jpeg", sky)}}})
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("one done, one over budget", func(js []models.ImageJob) bool {
			return len(js) == 2 && ((js[0].State == models.JobDone && js[1].State == models.JobOverBudget) ||
				(js[1].State == models.JobDone && js[0].State == models.JobOverBudget))
		})
		if n := h.rtb.Submissions()[rtbEmail]; n != 1 {
			t.Fatalf("billed %d, want 1 within budget", n)
		}
		_ = jobs
		status, body := h.api("PUT", "/api/settings", map[string]any{
			"enabled": true, "rtb": map[string]any{"contactEmail": rtbEmail, "contactApiKey": "…e9"},
			"templateId": rtbtest.DefaultTemplates()[0].ID, "imageScope": "all", "writeMode": "replace", "deliveryHours": 24, "monthlyBudget": "5.00",
		})
		if status != 200 {
			t.Fatalf("raise budget: %d %s", status, body)
		}
		h.waitJobs("both done", allIn(2, models.JobDone))
	})
}

// TestUninstallMidFlightCancelsAndWritesNothing: the merchant uninstalls
// while the image is at Remove The Background; the image is delivered and
// called back afterwards, and the product is left exactly as it was.
func TestUninstallMidFlightCancelsAndWritesNothing(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		clock := rtbtest.NewClock(time.Now())
		h := newHarness(t, db, harnessOptions{rtb: func(o *rtbtest.Options) { o.Now = clock.Now; o.ProductionFor = time.Hour }})
		rec := h.createProduct(oneImage("uninstall"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("submitted", allIn(1, models.JobAwaitingRTB))
		resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", shopDomain, "app/uninstalled", map[string]any{"domain": shopDomain})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("uninstall webhook: %v %v", resp, err)
		}
		h.waitJobs("cancelled", allIn(1, models.JobCancelled))
		h.store.ResetRequests()
		// The editors finish: the image is delivered and its callback
		// reaches the app, mid-flight of a cancelled job.
		clock.Advance(2 * time.Hour)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if j, ok := h.rtb.Job(*jobs[0].Ticket); ok && j.StatusID == rtbtest.StatusDelivered && j.CallbackDelivered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the image was never delivered and called back")
			}
			sleep()
		}
		time.Sleep(300 * time.Millisecond) // the workers keep running
		if j := h.jobs()[0]; j.State != models.JobCancelled || j.CallbackAt == nil {
			t.Errorf("after the delivery the job is %s (callback %v), want cancelled with the callback noted", j.State, j.CallbackAt)
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 1 || !bytes.Equal(after.Media[0].Data, before.Media[0].Data) {
			t.Error("the product changed after uninstall")
		}
		for _, r := range h.store.Requests() {
			if r.Operation != "" {
				t.Errorf("the app called Shopify (%s) after the merchant uninstalled it", r.Operation)
			}
		}
	})
}

func TestUnconfirmedSubmissionIsNeverResentAndTheCallbackResolvesIt(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		h.rtb.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{LoseAnswer: true, Count: 1})
		rec := h.createProduct(oneImage("lost"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		// The fake accepted (and billed) the image but the answer was lost;
		// its callback to the job's URL resolves the job.
		h.waitJobs("done", allIn(1, models.JobDone))
		if n := h.rtb.Submissions()[rtbEmail]; n != 1 {
			t.Fatalf("billed %d times, want exactly 1", n)
		}
	})
}

func TestUnconfirmedSubmissionWaitsForTheMerchant(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		h.rtb.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{LoseAnswer: true, Count: 1})
		h.rtb.SetCallbackFaults(rtbtest.CallbackFaults{Drop: 100})
		rec := h.createProduct(oneImage("lost2"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("uncertain", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].State == models.JobSubmitting && js[0].LeaseOwner == nil && js[0].Error != ""
		})
		time.Sleep(200 * time.Millisecond) // workers keep running: nothing may resubmit
		if n := h.rtb.Submissions()[rtbEmail]; n != 1 {
			t.Fatalf("billed %d times, want 1", n)
		}
		// The merchant chooses to resubmit.
		status, body := h.api("POST", "/api/jobs/"+itoa(jobs[0].ID)+"/retry", nil)
		if status != 202 {
			t.Fatalf("retry: %d %s", status, body)
		}
		h.rtb.SetCallbackFaults(rtbtest.CallbackFaults{})
		h.waitJobs("done", allIn(1, models.JobDone))
		if n := h.rtb.Submissions()[rtbEmail]; n != 2 {
			t.Fatalf("billed %d times, want 2 (one explicit resubmission)", n)
		}
		if spent, err := h.app.Pipeline.MonthSpend(context.Background(), jobs[0].ShopID); err != nil || spent != "1.90" {
			t.Fatalf("the budget counts %s (err %v) for two billed submissions, want 1.90", spent, err)
		}
	})
}

func TestShopRedactDeletesEverythingOfTheShop(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		rec := h.createProduct(oneImage("redact"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("done", allIn(1, models.JobDone))
		var shop models.Shop
		db.Take(&shop)
		db.Create(&models.ProductLock{ShopID: shop.ID, ProductID: rec.ID, Owner: "x", UntilMs: 1})
		db.Create(&models.JobCharge{ShopID: shop.ID, JobID: 1, Month: "2026-01", Price: "0.95", CreatedAt: time.Now()})
		resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", shopDomain, "shop/redact", map[string]any{"shop_domain": shopDomain})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("shop/redact: %v %v", resp, err)
		}
		// The redaction runs from the inbox right after the answer.
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := ""
			for _, table := range []string{"shops", "shop_settings", "image_jobs", "job_events", "job_charges", "product_locks", "backfills"} {
				var n int64
				db.Table(table).Count(&n)
				if n != 0 {
					left += fmt.Sprintf(" %s holds %d rows;", table, n)
				}
			}
			if left == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s after shop/redact:%s", left)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestReinstallFinishesAPaidImageWithoutSubmittingAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		clock := rtbtest.NewClock(time.Now())
		h := newHarness(t, db, harnessOptions{rtb: func(o *rtbtest.Options) { o.Now = clock.Now; o.ProductionFor = time.Hour }})
		rec := h.createProduct(oneImage("reinstall"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitted", allIn(1, models.JobAwaitingRTB))
		resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", shopDomain, "app/uninstalled", map[string]any{"domain": shopDomain})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("uninstall webhook: %v %v", resp, err)
		}
		h.waitJobs("cancelled", allIn(1, models.JobCancelled))
		// The merchant installs again; the image is delivered meanwhile.
		if status, body := h.api("GET", "/api/settings", nil); status != 200 {
			t.Fatalf("reinstall: %d %s", status, body)
		}
		clock.Advance(2 * time.Hour)
		h.webhook("products/update", rec.ID)
		h.waitJobs("done", allIn(1, models.JobDone))
		if n := h.rtb.Submissions()[rtbEmail]; n != 1 {
			t.Fatalf("billed %d times, want 1", n)
		}
		if media := h.store.Product(shopDomain, rec.ID).Media; len(media) != 1 || !borderIsWhiteOrClear(t, media[0].Data) {
			t.Fatal("the paid image was not written back")
		}
	})
}
