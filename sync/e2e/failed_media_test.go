package e2e_test

import (
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// A processed image that becomes a new file (the new-media path, add mode)
// and that Shopify fails to process is deleted and made again, instead of
// being found FAILED by every later attempt: each product ends with exactly
// one processed image per original, in its place, and Files holds no
// failed or duplicate copy.
func TestFailedProcessedFileIsMadeAgain(t *testing.T) {
	for _, mode := range []string{"replace", "add"} {
		t.Run(mode, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				// Transparent PNG results for JPEG originals take the new-media path.
				h := newHarness(t, db, harnessOptions{writeMode: mode, template: transparentTemplate()})
				rec := h.createProduct(threeImages(".jpg"))
				before := waitReady(t, h, rec.ID)
				h.store.FailNextProcessing(1) // the first processed file Shopify gets
				h.webhook("products/create", rec.ID)
				jobs := h.waitJobs("finished", allIn(3, models.JobDone, models.JobFailed))
				for _, j := range jobs {
					if j.State != models.JobDone {
						t.Fatalf("job %d: %s %q", j.ID, j.State, j.Error)
					}
				}
				assertOneProcessedEach(t, h, mode, before, jobs)
			})
		})
	}
}

// When the made-again file fails too, the job ends failed (here after its
// only attempt), and Retry makes the file once more instead of finding the
// failed one again.
func TestRetryMakesAFailedProcessedFileAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		// One job (the featured image), so both failures are its files.
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), scope: "featured", tune: func(o *imgsync.Options) { o.MaxAttempts = 1 }})
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.store.FailNextProcessing(2)
		h.webhook("products/create", rec.ID)
		featured := func() func([]models.ImageJob) bool {
			return func([]models.ImageJob) bool {
				j := h.jobFor(rec.MediaIDs[0])
				return j.State == models.JobDone || j.State == models.JobFailed
			}
		}
		h.waitJobs("failed", featured())
		j := h.jobFor(rec.MediaIDs[0])
		if j.State != models.JobFailed || j.ResultMediaID != "" {
			t.Fatalf("after two failed processings: %s %q, result %q; want failed with no result recorded", j.State, j.Error, j.ResultMediaID)
		}
		for _, f := range h.store.Product(shopDomain, rec.ID).Files {
			if f.Status == "FAILED" {
				t.Errorf("a failed file is left in Files: %s %q", f.ID, f.Filename)
			}
		}
		if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/retry", nil); status != 202 {
			t.Fatalf("retry: %d %s", status, body)
		}
		h.waitJobs("retried", featured())
		j = h.jobFor(rec.MediaIDs[0])
		if j.State != models.JobDone {
			t.Fatalf("job after Retry: %s %q", j.State, j.Error)
		}
		jobs := []models.ImageJob{j}
		assertOneProcessedEach(t, h, "replace", before, jobs)
	})
}

// assertOneProcessedEach checks the product after every job is done: each
// processed original's image in the original's place (replace) or right
// after it (add), with its alt text and variants, the other images as they
// were, and Files holding the originals and one processed file per job,
// all READY.
func assertOneProcessedEach(t *testing.T, h *harness, mode string, before shopifytest.ProductSnapshot, jobs []models.ImageJob) {
	t.Helper()
	after := h.store.Product(shopDomain, before.ID)
	result := map[string]string{} // original media id → processed media id
	for _, j := range jobs {
		result[j.MediaID] = j.ResultMediaID
	}
	var want, alts []string
	for _, m := range before.Media {
		if r := result[m.ID]; r == "" || mode == "add" {
			want, alts = append(want, m.ID), append(alts, m.Alt)
		}
		if r := result[m.ID]; r != "" {
			want, alts = append(want, r), append(alts, m.Alt)
		}
	}
	var got []string
	for i, m := range after.Media {
		got = append(got, m.ID)
		if i < len(alts) && (m.Alt != alts[i] || m.Status != "READY") {
			t.Errorf("media %d (%s): alt %q status %s, want %q READY", i, m.ID, m.Alt, m.Status, alts[i])
		}
	}
	if !equal(got, want) {
		t.Fatalf("gallery %v, want %v", got, want)
	}
	for i, v := range after.Variants {
		var w []string
		for _, id := range before.Variants[i].MediaIDs {
			if r := result[id]; r != "" && mode != "add" {
				id = r
			}
			w = append(w, id)
		}
		if !equal(v.MediaIDs, w) {
			t.Errorf("variant %s links %v, want %v", v.Title, v.MediaIDs, w)
		}
	}
	if len(after.Files) != len(before.Media)+len(jobs) {
		t.Errorf("Files holds %d files, want the %d originals and %d processed images", len(after.Files), len(before.Media), len(jobs))
	}
	for _, f := range after.Files {
		if f.Status != "READY" {
			t.Errorf("Files holds %s %q, %s", f.ID, f.Filename, f.Status)
		}
	}
}
