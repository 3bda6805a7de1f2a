package e2e_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// Messages of the hold step, as the job's events record them.
const (
	heldRemade = "Shopify failed to process the image held for review; it was deleted and is made again"
	heldKept   = "processed image kept in Files for review"
)

// A processed image held in Files for review that Shopify fails to
// process is deleted and made again, instead of being found FAILED by
// every later attempt: at once the first time, after a backoff when the
// second file fails too. Every image is then held once, in a READY file
// off the product, without a second submission; approving them all puts
// each on the product once, and Files keeps no failed or duplicate file.
func TestFailedHeldFileIsMadeAgain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  string
		scope string
		fails int
	}{
		{"replace", "replace", "all", 1},
		{"add", "add", "all", 1},
		{"twice", "replace", "featured", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				// Transparent PNG results for JPEG originals: approval attaches the held file.
				h := newHarness(t, db, harnessOptions{writeMode: tc.mode, template: transparentTemplate(), scope: tc.scope})
				reviewMode(t, h)
				rec := h.createProduct(threeImages(".jpg"))
				before := waitReady(t, h, rec.ID)
				h.store.FailNextProcessing(tc.fails) // the first held files Shopify gets
				h.webhook("products/create", rec.ID)
				n := 3
				if tc.scope == "featured" {
					n = 1
				}
				jobs := notSkipped(h.waitJobs("held", notSkippedIn(n, models.JobAwaitingReview, models.JobFailed)))
				assertHeldOnce(t, h, before, jobs)
				if remade, kept := eventCount(t, db, heldRemade), eventCount(t, db, heldKept); remade != int64(tc.fails) || kept != int64(n+tc.fails) {
					t.Errorf("%d held files made again of %d made, want %d of %d", remade, kept, tc.fails, n+tc.fails)
				}
				if status, body := h.api("POST", "/api/jobs/approve", map[string]any{"all": true}); status != 202 {
					t.Fatalf("approve all: %d %s", status, body)
				}
				jobs = notSkipped(h.waitJobs("approved", notSkippedIn(n, models.JobDone, models.JobFailed)))
				assertAllDone(t, jobs)
				assertOneProcessedEach(t, h, tc.mode, before, jobs)
				if got := h.rtb.Submissions()[rtbEmail]; got != n {
					t.Errorf("%d submissions, want %d", got, n)
				}
			})
		})
	}
}

// When the held file fails on every try of the job's attempts, the job
// ends failed with a clear reason and no failed file left in Files; Retry
// makes the file once more (without paying again) and holds the image.
func TestRetryMakesAFailedHeldFileAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), scope: "featured", tune: func(o *imgsync.Options) { o.MaxAttempts = 1 }})
		reviewMode(t, h)
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.store.FailNextProcessing(2) // the held file, and the one made again
		h.webhook("products/create", rec.ID)
		j := notSkipped(h.waitJobs("failed", notSkippedIn(1, models.JobFailed, models.JobAwaitingReview)))[0]
		if j.State != models.JobFailed || j.ReviewFileID != "" || !strings.Contains(j.Error, "Shopify could not process") || !strings.Contains(j.Error, "Retry") {
			t.Fatalf("after two failed held files: %s %q, held file %q; want failed, saying why and to Retry, with no file recorded", j.State, j.Error, j.ReviewFileID)
		}
		if !same(before, h.store.Product(shopDomain, rec.ID)) {
			t.Fatal("the product changed while its image was being held")
		}
		for _, f := range h.store.Product(shopDomain, rec.ID).Files {
			if f.Status != "READY" {
				t.Errorf("Files keeps %s %q, %s", f.ID, f.Filename, f.Status)
			}
		}
		if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/retry", nil); status != 202 {
			t.Fatalf("retry: %d %s", status, body)
		}
		jobs := notSkipped(h.waitJobs("held after Retry", notSkippedIn(1, models.JobAwaitingReview, models.JobFailed)))
		assertHeldOnce(t, h, before, jobs)
		if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/approve", nil); status != 202 {
			t.Fatalf("approve: %d %s", status, body)
		}
		jobs = notSkipped(h.waitJobs("approved", notSkippedIn(1, models.JobDone, models.JobFailed)))
		assertAllDone(t, jobs)
		assertOneProcessedEach(t, h, "replace", before, jobs)
		if got := h.rtb.Submissions()[rtbEmail]; got != 1 {
			t.Errorf("%d submissions, want 1: Retry of a held image must not pay again", got)
		}
	})
}

// notSkipped leaves out the jobs of images the image scope skips.
func notSkipped(jobs []models.ImageJob) []models.ImageJob {
	var out []models.ImageJob
	for _, j := range jobs {
		if j.State != models.JobSkipped {
			out = append(out, j)
		}
	}
	return out
}

// notSkippedIn is allIn for the jobs the image scope does not skip.
func notSkippedIn(n int, states ...string) func([]models.ImageJob) bool {
	return func(jobs []models.ImageJob) bool { return allIn(n, states...)(notSkipped(jobs)) }
}

func reviewMode(t *testing.T, h *harness) {
	t.Helper()
	if status, body := h.api("PUT", "/api/settings", map[string]any{"publish": "review"}); status != 200 {
		t.Fatalf("review mode: %d %s", status, body)
	}
}

// assertHeldOnce checks held jobs: each awaiting review with its image in
// one READY file off the product, recorded as the job's, the product as it
// was, and no other processed file (failed or not) in Files.
func assertHeldOnce(t *testing.T, h *harness, before shopifytest.ProductSnapshot, jobs []models.ImageJob) {
	t.Helper()
	now := h.store.Product(shopDomain, before.ID)
	if !same(before, now) {
		t.Fatal("the product changed while its images were held")
	}
	held := map[string]bool{}
	for _, j := range jobs {
		if j.State != models.JobAwaitingReview || j.ReviewFileID == "" {
			t.Fatalf("job %d: %s %q, held file %q; want awaiting review", j.ID, j.State, j.Error, j.ReviewFileID)
		}
		f := fileByID(now, j.ReviewFileID)
		if f == nil || f.Status != "READY" || len(f.ProductIDs) != 0 || j.ProcessedURL == "" {
			t.Fatalf("job %d: held file %q is %+v (url %q); want READY, off the product", j.ID, j.ReviewFileID, f, j.ProcessedURL)
		}
		held[f.ID] = true
	}
	for _, f := range now.Files {
		if f.Status != "READY" {
			t.Errorf("Files keeps %s %q, %s", f.ID, f.Filename, f.Status)
		}
		if !held[f.ID] && !isOriginal(before, f.ID) {
			t.Errorf("Files keeps %s %q, neither an original nor a held image", f.ID, f.Filename)
		}
	}
}

func isOriginal(s shopifytest.ProductSnapshot, id string) bool {
	for _, m := range s.Media {
		if m.ID == id {
			return true
		}
	}
	return false
}

func assertAllDone(t *testing.T, jobs []models.ImageJob) {
	t.Helper()
	for _, j := range jobs {
		if j.State != models.JobDone {
			t.Fatalf("job %d: %s %q", j.ID, j.State, j.Error)
		}
	}
}

// eventCount counts the job events with this message.
func eventCount(t *testing.T, db *gorm.DB, msg string) int64 {
	t.Helper()
	var n int64
	if err := db.Model(&models.JobEvent{}).Where("message = ?", msg).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
