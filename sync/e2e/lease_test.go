package e2e_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
)

// TestUninstallDuringSubmitKeepsThePaidImage: the merchant uninstalls
// while the image is on its way to Remove The Background. The worker's
// ticket is kept, so when the merchant installs again the paid image is
// written back without a second submission.
func TestUninstallDuringSubmitKeepsThePaidImage(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		clock := rtbtest.NewClock(time.Now())
		h := newHarness(t, db, harnessOptions{rtb: func(o *rtbtest.Options) { o.Now = clock.Now; o.ProductionFor = time.Hour }})
		h.rtb.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{Delay: time.Second, Count: 1})
		rec := h.createProduct(oneImage("midsubmit"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitting", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].State == models.JobSubmitting && js[0].LeaseOwner != nil
		})
		resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", shopDomain, "app/uninstalled", map[string]any{"domain": shopDomain})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("uninstall webhook: %v %v", resp, err)
		}
		jobs := h.waitJobs("cancelled with its ticket", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].State == models.JobCancelled && js[0].LeaseOwner == nil && h.rtb.Submissions()[rtbEmail] == 1
		})
		if jobs[0].Ticket == nil {
			t.Fatalf("the ticket of the paid submission was dropped: %s", describe(jobs))
		}
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
