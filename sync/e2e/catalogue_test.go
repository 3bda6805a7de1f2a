package e2e_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// catalogueMaxMedia is the largest gallery of the catalogue run: 30 by
// default, so CI stays quick; E2E_CATALOGUE_MAX_MEDIA=250 runs Shopify's
// limit (one product's images are written back one after another, so that
// run takes several minutes).
func catalogueMaxMedia(t *testing.T) int {
	if v := os.Getenv("E2E_CATALOGUE_MAX_MEDIA"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 250 {
			t.Fatalf("E2E_CATALOGUE_MAX_MEDIA=%q: want 1 to 250", v)
		}
		return n
	}
	return 30
}

// A shop of the catalogue run: its settings, and its products as created,
// as the merchant left them before the app touched them, and after.
type catalogueShop struct {
	domain, mode, template string
	review                 bool
	recs                   []*shopifytest.ProductRecord
	before, edited         []shopifytest.ProductSnapshot
}

// The whole pipeline over a catalogue like a real store's — every extension
// spelling, CJK, RTL and emoji text, images without alt, galleries from none
// to 250 media, variants sharing images — in four shops at once: replace
// mode with results in the original's format (in place, or converted) and
// with transparent results (a new media for JPEG originals), add mode, and
// publishing after review. The merchant edits some products while their
// images are away (or held for review). Afterwards every gallery holds
// each processed image exactly once, in the merchant's order, with the
// merchant's alt text and variant links — in add mode right after its
// original — and nothing was lost. Then every job is reverted, and each
// gallery is back exactly as the merchant left it.
func TestCatalogueGalleriesSurviveTheWriteBack(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		shops := []*catalogueShop{
			{domain: shopDomain, mode: "replace"},
			{domain: "catalogue-transparent.myshopify.com", mode: "replace", template: transparentTemplate()},
			{domain: "catalogue-add.myshopify.com", mode: "add"},
			{domain: "catalogue-review.myshopify.com", mode: "replace", template: transparentTemplate(), review: true},
		}
		h, release := heldHarness(t, db, harnessOptions{restoreRate: 2000, noStart: true, tune: func(o *imgsync.Options) { o.Workers = 8 }})
		for _, s := range shops[1:] {
			h.installShop(s.domain)
		}
		for _, s := range shops {
			settings := map[string]any{"writeMode": s.mode, "publish": "auto"}
			if s.template != "" {
				settings["templateId"] = s.template
			}
			if s.review {
				settings["publish"] = "review"
			}
			if status, body := h.apiAs(s.domain, "PUT", "/api/settings", settings); status != 200 {
				t.Fatalf("%s settings: %d %s", s.domain, status, body)
			}
		}
		h.start()
		cat := shopifytest.Catalogue(shopifytest.CatalogueOptions{Seed: 7, MaxMedia: catalogueMaxMedia(t)})
		images := 0
		for _, s := range shops {
			for _, np := range cat {
				rec, err := h.store.CreateProduct(s.domain, np)
				must(t, err)
				s.recs = append(s.recs, rec)
				images += len(np.Images)
			}
		}
		for _, s := range shops {
			for _, rec := range s.recs {
				s.before = append(s.before, waitReadyIn(t, h, s.domain, rec.ID))
				h.webhookAs(s.domain, "products/create", rec.ID)
			}
		}
		start := time.Now()
		h.waitJobsFor(2*time.Minute, "submitted", allIn(images, models.JobAwaitingRTB))
		t.Logf("%d images of %d shops submitted in %s", images, len(shops), time.Since(start).Round(time.Millisecond))

		// The merchants edit while the images are away.
		for _, s := range shops {
			if !s.review {
				s.editCatalogue(t, h)
			}
		}
		release()
		start = time.Now()
		h.waitJobsFor(4*time.Minute, "written back or held", allIn(images, models.JobDone, models.JobFailed, models.JobAwaitingReview))
		review := shops[3]
		for i, rec := range review.recs {
			assertHeld(t, h, review.before[i], h.store.Product(review.domain, rec.ID))
		}
		// The reviewing merchant edits while the images wait, then approves them all.
		review.editCatalogue(t, h)
		status, body := h.apiAs(review.domain, "POST", "/api/jobs/approve", map[string]any{"all": true})
		if want := fmt.Sprintf(`"count":%d`, review.images()); status != 202 || !strings.Contains(string(body), want) {
			t.Fatalf("approve all: %d %s, want 202 with %s", status, body, want)
		}
		h.waitJobsFor(4*time.Minute, "finished", allIn(images, models.JobDone, models.JobFailed))
		t.Logf("%d images written back in %s", images, time.Since(start).Round(time.Millisecond))
		for _, s := range shops {
			for i, rec := range s.recs {
				assertCatalogueGallery(t, h, s.mode, s.edited[i], h.store.Product(s.domain, rec.ID))
			}
			assertCatalogueFiles(t, h, s)
			inPlace, added := s.paths(h)
			t.Logf("%s (%s): %d images replaced in place, %d by a new media", s.domain, s.mode, inPlace, added)
			if s.template != "" && (inPlace == 0 || added == 0) {
				t.Errorf("%s: transparent results must take both paths (in place for PNG originals, a new media for JPEG ones)", s.domain)
			}
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != images {
			t.Errorf("%d submissions, want one per image (%d)", n, images)
		}

		// Revert every job: each gallery is back as the merchant left it.
		start = time.Now()
		reverted := 0
		for _, s := range shops {
			for _, snap := range s.edited {
				for _, m := range snap.Media {
					j := h.jobFor(m.ID)
					if j.State != models.JobDone {
						continue // add mode on a full gallery: nothing was added
					}
					if status, body := h.apiAs(s.domain, "POST", "/api/jobs/"+itoa(j.ID)+"/revert", nil); status != 202 {
						t.Fatalf("revert job %d: %d %s", j.ID, status, body)
					}
					reverted++
				}
			}
		}
		h.waitJobsFor(4*time.Minute, "reverted", func(js []models.ImageJob) bool {
			for _, j := range js {
				if j.Step == imgsync.StepRevertRequested {
					return false
				}
			}
			return true
		})
		n := 0
		for _, j := range h.jobs() {
			switch {
			case j.State == models.JobReverted:
				n++
			case j.State == models.JobDone:
				t.Errorf("job %d not reverted: %q", j.ID, j.Error)
			}
		}
		if n != reverted {
			t.Errorf("%d jobs reverted, want %d", n, reverted)
		}
		t.Logf("%d images reverted in %s", reverted, time.Since(start).Round(time.Millisecond))
		for _, s := range shops {
			for i, rec := range s.recs {
				assertRestored(t, s.edited[i], h.store.Product(s.domain, rec.ID))
			}
		}
	})
}

// editCatalogue makes the merchant's edits on every other product with
// three images or more — the last image moved first, the first one's alt
// text changed, the first variant relinked to the second image — and
// records each product as the merchant left it.
func (s *catalogueShop) editCatalogue(t *testing.T, h *harness) {
	t.Helper()
	for i, rec := range s.recs {
		if len(rec.MediaIDs) < 3 || i%2 == 1 {
			continue
		}
		last := rec.MediaIDs[len(rec.MediaIDs)-1]
		must(t, h.store.MoveMedia(s.domain, rec.ID, last, 0))
		must(t, h.store.SetAlt(s.domain, rec.MediaIDs[0], "تم التعديل ✏️ 编辑"))
		if len(rec.VariantIDs) > 0 {
			must(t, h.store.LinkVariant(s.domain, rec.ID, rec.VariantIDs[0], rec.MediaIDs[1]))
		}
	}
	s.edited = nil
	for _, rec := range s.recs {
		s.edited = append(s.edited, h.store.Product(s.domain, rec.ID))
	}
}

// paths counts the shop's images written back in place and as a new media.
func (s *catalogueShop) paths(h *harness) (inPlace, added int) {
	for _, snap := range s.edited {
		for _, m := range snap.Media {
			switch j := h.jobFor(m.ID); {
			case j.State != models.JobDone:
			case j.ResultMediaID == m.ID:
				inPlace++
			default:
				added++
			}
		}
	}
	return inPlace, added
}

func (s *catalogueShop) images() int {
	n := 0
	for _, rec := range s.recs {
		n += len(rec.MediaIDs)
	}
	return n
}

// waitJobsFor is waitJobs with a longer deadline, for large catalogues.
func (h *harness) waitJobsFor(d time.Duration, what string, fn func([]models.ImageJob) bool) []models.ImageJob {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		jobs := h.jobs()
		if fn(jobs) {
			return jobs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: jobs now %s", what, describe(jobs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
