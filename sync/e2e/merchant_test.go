package e2e_test

import (
	"bytes"
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

// heldHarness is a harness whose Remove The Background holds every image
// until release is called, so a test can act as the merchant meanwhile.
func heldHarness(t *testing.T, db *gorm.DB, ho harnessOptions) (*harness, func()) {
	clock := rtbtest.NewClock(time.Now())
	inner := ho.rtb
	ho.rtb = func(o *rtbtest.Options) {
		o.Now = clock.Now
		if inner != nil {
			inner(o)
		}
	}
	h := newHarness(t, db, ho)
	return h, func() { clock.Advance(3 * time.Hour) }
}

// The merchant relinks variants, edits alt text and reorders the gallery
// during the hours the images are at Remove The Background. The write-back
// follows the product as it is then: every processed image takes its
// original's current place, alt text and variants, and no variant is left
// without its image or refused as already having one.
func TestWriteBackFollowsTheMerchantsEditsMeanwhile(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		// Transparent PNG results for JPEG originals take the new-media path.
		h, release := heldHarness(t, db, harnessOptions{template: transparentTemplate()})
		rec := h.createProduct(threeImages(".jpg"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitted", allIn(3, models.JobAwaitingRTB))

		sand, blue, plain := rec.VariantIDs[0], rec.VariantIDs[1], rec.VariantIDs[2]
		must(t, h.store.LinkVariant(shopDomain, rec.ID, plain, rec.MediaIDs[0])) // a second variant on image 0
		must(t, h.store.LinkVariant(shopDomain, rec.ID, blue, rec.MediaIDs[2]))  // Blue moves from image 1 to 2
		must(t, h.store.SetAlt(shopDomain, rec.MediaIDs[0], "正面 — واجهة 👕"))
		must(t, h.store.MoveMedia(shopDomain, rec.ID, rec.MediaIDs[2], 0))
		edited := h.store.Product(shopDomain, rec.ID)
		release()

		jobs := h.waitJobs("finished", allIn(3, models.JobDone, models.JobFailed))
		for _, j := range jobs {
			if j.State != models.JobDone {
				t.Errorf("job %d: %s %q", j.ID, j.State, j.Error)
			}
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != len(edited.Media) {
			t.Fatalf("product has %d media, want %d", len(after.Media), len(edited.Media))
		}
		processed := map[string]string{} // original → processed
		for i, m := range after.Media {
			orig := edited.Media[i]
			want := h.jobFor(orig.ID).ResultMediaID
			processed[orig.ID] = want
			if m.ID != want || m.ID == orig.ID {
				t.Errorf("position %d holds %s, want the processed copy %s of %s", i, m.ID, want, orig.ID)
			}
			if m.Alt != orig.Alt {
				t.Errorf("position %d alt %q, want the merchant's current %q", i, m.Alt, orig.Alt)
			}
		}
		wantLinks := map[string]string{sand: processed[rec.MediaIDs[0]], plain: processed[rec.MediaIDs[0]], blue: processed[rec.MediaIDs[2]]}
		for _, v := range after.Variants {
			if len(v.MediaIDs) != 1 || v.MediaIDs[0] != wantLinks[v.ID] {
				t.Errorf("variant %s links %v, want [%s]", v.Title, v.MediaIDs, wantLinks[v.ID])
			}
		}
	})
}

// An original the merchant deleted while it was away is not put back: the
// job ends with the reason, the rest of the gallery is written back, and the
// paid-for processed image waits in Files.
func TestDeletedOriginalIsNotResurrected(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h, release := heldHarness(t, db, harnessOptions{})
		rec := h.createProduct(threeImages(".jpg"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitted", allIn(3, models.JobAwaitingRTB))
		// Remove The Background fetches the original when it delivers, so
		// the merchant deletes it just after: Shopify's answers are slowed
		// so the deletion lands before the write-back reads the product.
		h.store.SetLatency(300 * time.Millisecond)
		release()
		h.waitJobs("image 2 delivered", func(js []models.ImageJob) bool {
			return h.jobFor(rec.MediaIDs[1]).DeliveredAt != nil
		})
		must(t, h.store.DeleteMedia(shopDomain, rec.ID, rec.MediaIDs[1]))
		h.store.SetLatency(0)

		h.waitJobs("finished", allIn(3, models.JobDone, models.JobFailed))
		gone := h.jobFor(rec.MediaIDs[1])
		if gone.State != models.JobFailed || !strings.Contains(gone.Error, "removed from the product") {
			t.Fatalf("job of the deleted image: %s %q", gone.State, gone.Error)
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 2 || after.Media[0].ID != rec.MediaIDs[0] || after.Media[1].ID != rec.MediaIDs[2] {
			t.Fatalf("gallery is %+v, want the two remaining originals in place", after.Media)
		}
		// The file was just made: Shopify processes it in the background.
		var kept *shopifytest.FileSnapshot
		for range 200 {
			if kept = fileByID(h.store.Product(shopDomain, rec.ID), gone.ResultMediaID); kept == nil || kept.Status != "UPLOADED" && kept.Status != "PROCESSING" {
				break
			}
			sleep()
		}
		if kept == nil || kept.Status != "READY" || len(kept.ProductIDs) != 0 || !borderIsWhiteOrClear(t, kept.Data) || !strings.Contains(gone.Error, kept.Filename) {
			t.Fatalf("the processed image of the deleted original should wait in Files, named in the reason: %+v", kept)
		}
	})
}

// A media Shopify never finishes processing does not pin a worker: the
// write-back gives up its wait, backs off, tries again and then fails with
// a clear reason.
func TestMediaThatNeverBecomesReadyEndsInRetryThenFailure(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h, release := heldHarness(t, db, harnessOptions{tune: func(o *imgsync.Options) {
			o.MediaWait = 200 * time.Millisecond
			o.MaxAttempts = 2
		}})
		rec := h.createProduct(oneImage("stuck"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitted", allIn(1, models.JobAwaitingRTB))
		h.store.StallProcessing(true)
		release()

		jobs := h.waitJobs("failed", allIn(1, models.JobFailed))
		if !strings.Contains(jobs[0].Error, "Shopify has not finished processing") || !strings.Contains(jobs[0].Error, "2 attempts") {
			t.Fatalf("error %q does not say what happened", jobs[0].Error)
		}
		var events []models.JobEvent
		h.db.Where("job_id = ?", jobs[0].ID).Order("id").Find(&events)
		retried := false
		for _, e := range events {
			retried = retried || strings.Contains(e.Message, "attempt 1 failed, next try at")
		}
		if !retried {
			t.Fatalf("no retry with backoff before the failure: %+v", events)
		}
	})
}

// A kept copy of the original that Shopify failed to process is made again
// instead of failing every attempt, in place mode.
func TestFailedKeptCopyIsMadeAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h, release := heldHarness(t, db, harnessOptions{})
		rec := h.createProduct(oneImage("copy"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitted", allIn(1, models.JobAwaitingRTB))
		h.store.FailNextProcessing(1) // the next processing is the kept copy's
		release()

		jobs := h.waitJobs("finished", allIn(1, models.JobDone, models.JobFailed))
		if jobs[0].State != models.JobDone {
			t.Fatalf("job %s %q", jobs[0].State, jobs[0].Error)
		}
		after := h.store.Product(shopDomain, rec.ID)
		kept := fileByID(after, jobs[0].OriginalFileID)
		if kept == nil || kept.Status != "READY" || !bytes.Equal(kept.Data, before.Media[0].Data) {
			t.Fatalf("no READY copy of the original: %+v", kept)
		}
		failed := 0
		for _, f := range after.Files {
			if f.Status == "FAILED" {
				failed++
			}
		}
		if failed != 0 {
			t.Errorf("%d failed copies left in Files", failed)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A product that holds Shopify's maximum of 250 media can take no other
// one: when the processed image must be a new media, the original makes
// room first, and the processed image still lands in its place with its
// variants and alt text.
func TestFullGalleryReplacesWithNewMedia(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), scope: "featured"})
		np := shopifytest.NewProduct{Title: "Full gallery", Variants: []shopifytest.NewVariant{{Title: "A", ImageIndex: 0}, {Title: "B", ImageIndex: 0}, {Title: "C", ImageIndex: 7}}}
		for i := range 250 {
			np.Images = append(np.Images, shopifytest.NewImage{Filename: "shot-" + itoa(uint64(i)) + ".jpg", Data: photo("jpeg", sand), Alt: "Shot " + itoa(uint64(i))})
		}
		rec := h.createProduct(np)
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("featured image done", func(js []models.ImageJob) bool {
			j := h.jobFor(rec.MediaIDs[0])
			return j.State == models.JobDone || j.State == models.JobFailed
		})
		j := h.jobFor(rec.MediaIDs[0])
		if j.State != models.JobDone {
			t.Fatalf("job %s %q (%s)", j.State, j.Error, describe(jobs))
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 250 || after.Media[0].ID != j.ResultMediaID || after.Media[0].Alt != "Shot 0" {
			t.Fatalf("gallery has %d media, first %s %q; want 250 with the processed %s first", len(after.Media), after.Media[0].ID, after.Media[0].Alt, j.ResultMediaID)
		}
		for i := 1; i < 250; i++ {
			if after.Media[i].ID != before.Media[i].ID {
				t.Fatalf("position %d holds %s, want %s", i, after.Media[i].ID, before.Media[i].ID)
			}
		}
		want := [][]string{{j.ResultMediaID}, {j.ResultMediaID}, {rec.MediaIDs[7]}}
		for i, v := range after.Variants {
			if !equal(v.MediaIDs, want[i]) {
				t.Errorf("variant %s links %v, want %v", v.Title, v.MediaIDs, want[i])
			}
		}

		// Revert on the full product: the processed image makes room for the original, which
		// takes back its place and its variants.
		if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/revert", nil); status != 202 {
			t.Fatalf("revert: %d %s", status, body)
		}
		h.waitJobs("reverted", func([]models.ImageJob) bool {
			r := h.jobFor(rec.MediaIDs[0])
			return r.State == models.JobReverted || r.Error != ""
		})
		if r := h.jobFor(rec.MediaIDs[0]); r.State != models.JobReverted {
			t.Fatalf("revert on a full gallery: %s %q", r.State, r.Error)
		}
		reverted := h.store.Product(shopDomain, rec.ID)
		if len(reverted.Media) != 250 {
			t.Fatalf("after the revert the gallery has %d media, want 250", len(reverted.Media))
		}
		for i := range 250 {
			if reverted.Media[i].ID != before.Media[i].ID || reverted.Media[i].Alt != before.Media[i].Alt {
				t.Fatalf("after the revert position %d holds %s %q, want %s %q", i, reverted.Media[i].ID, reverted.Media[i].Alt, before.Media[i].ID, before.Media[i].Alt)
			}
		}
		for i, v := range reverted.Variants {
			if !equal(v.MediaIDs, before.Variants[i].MediaIDs) {
				t.Errorf("after the revert variant %s links %v, want %v", v.Title, v.MediaIDs, before.Variants[i].MediaIDs)
			}
		}
	})
}

// A write-back that fails after moving the variants is undone from the
// product as it is then: every variant on a processed image (including
// one the merchant linked to an original meanwhile) goes back to the
// original, none is refused as already having an image, and Retry then
// finishes the jobs.
func TestRollbackGivesBackTheCurrentVariantLinks(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h, release := heldHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.MaxAttempts = 1 }})
		rec := h.createProduct(threeImages(".jpg"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitted", allIn(3, models.JobAwaitingRTB))
		sand, blue, plain := rec.VariantIDs[0], rec.VariantIDs[1], rec.VariantIDs[2]
		must(t, h.store.LinkVariant(shopDomain, rec.ID, plain, rec.MediaIDs[0])) // Plain joins Sand on image 0
		must(t, h.store.LinkVariant(shopDomain, rec.ID, blue, rec.MediaIDs[2]))  // Blue leaves image 1
		edited := h.store.Product(shopDomain, rec.ID)
		h.store.LockNextDetach(1) // the first write-back fails at its last step
		release()

		// The write-back that fails is of one image, or of several written
		// back together: each of them is undone.
		jobs := h.waitJobs("finished", allIn(3, models.JobDone, models.JobFailed))
		failed := map[string]models.ImageJob{}
		for _, j := range jobs {
			if j.State == models.JobFailed {
				failed[j.MediaID] = j
			}
		}
		if len(failed) == 0 {
			t.Fatalf("no write-back failed: %s", describe(jobs))
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 3 {
			t.Fatalf("gallery has %d media after the rollback, want 3", len(after.Media))
		}
		// The failed jobs' originals are back as they were, the others processed.
		counterpart := map[string]string{}
		for i, orig := range edited.Media {
			want := h.jobFor(orig.ID).ResultMediaID
			if _, ok := failed[orig.ID]; ok {
				want = orig.ID
			}
			if after.Media[i].ID != want {
				t.Errorf("position %d holds %s, want %s", i, after.Media[i].ID, want)
			}
			counterpart[orig.ID] = want
		}
		want := map[string]string{sand: counterpart[rec.MediaIDs[0]], plain: counterpart[rec.MediaIDs[0]], blue: counterpart[rec.MediaIDs[2]]}
		for _, v := range after.Variants {
			if len(v.MediaIDs) != 1 || v.MediaIDs[0] != want[v.ID] {
				t.Errorf("variant %s links %v, want [%s]", v.Title, v.MediaIDs, want[v.ID])
			}
		}
		for _, j := range failed {
			var undone int64
			h.db.Model(&models.JobEvent{}).Where("job_id = ? AND message LIKE ?", j.ID, "%half-done write-back undone%").Count(&undone)
			if undone == 0 {
				t.Errorf("no event says job %d's half-done write-back was undone", j.ID)
			}
			if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/retry", nil); status != 202 {
				t.Fatalf("retry: %d %s", status, body)
			}
		}
		h.waitJobs("all done", allIn(3, models.JobDone))
		assertGallery(t, h, edited, h.store.Product(shopDomain, rec.ID))
	})
}
