package e2e_test

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
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

// The whole pipeline over a catalogue like a real store's — every extension
// spelling, CJK, RTL and emoji text, images without alt, galleries from none
// to 250 media, variants sharing images — while the merchant edits some
// products during the wait. Afterwards every gallery holds each processed
// image exactly once, in the merchant's order, with the merchant's alt text
// and variant links, and nothing was lost.
func TestCatalogueGalleriesSurviveTheWriteBack(t *testing.T) {
	for _, tc := range []struct{ name, template string }{
		{"white", ""},                          // same format back: in place, or converted
		{"transparent", transparentTemplate()}, // PNG with transparency: new media for JPEG originals
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				h, release := heldHarness(t, db, harnessOptions{template: tc.template, restoreRate: 2000})
				cat := shopifytest.Catalogue(shopifytest.CatalogueOptions{Seed: 7, MaxMedia: catalogueMaxMedia(t)})
				var recs []*shopifytest.ProductRecord
				images := 0
				for _, np := range cat {
					rec := h.createProduct(np)
					recs = append(recs, rec)
					images += len(np.Images)
				}
				for _, rec := range recs {
					waitReady(t, h, rec.ID)
					h.webhook("products/create", rec.ID)
				}
				start := time.Now()
				h.waitJobsFor(2*time.Minute, "submitted", allIn(images, models.JobAwaitingRTB))
				t.Logf("%d images submitted in %s", images, time.Since(start).Round(time.Millisecond))

				// The merchant edits while the images are away.
				for i, rec := range recs {
					if len(rec.MediaIDs) < 3 || i%2 == 1 {
						continue
					}
					last := rec.MediaIDs[len(rec.MediaIDs)-1]
					must(t, h.store.MoveMedia(shopDomain, rec.ID, last, 0))
					must(t, h.store.SetAlt(shopDomain, rec.MediaIDs[0], "تم التعديل ✏️ 编辑"))
					if len(rec.VariantIDs) > 0 {
						must(t, h.store.LinkVariant(shopDomain, rec.ID, rec.VariantIDs[0], rec.MediaIDs[1]))
					}
				}
				edited := make([]shopifytest.ProductSnapshot, len(recs))
				for i, rec := range recs {
					edited[i] = h.store.Product(shopDomain, rec.ID)
				}
				release()
				start = time.Now()
				h.waitJobsFor(4*time.Minute, "finished", allIn(images, models.JobDone, models.JobFailed))
				t.Logf("%d images written back in %s", images, time.Since(start).Round(time.Millisecond))
				for i, rec := range recs {
					assertGallery(t, h, edited[i], h.store.Product(shopDomain, rec.ID))
				}
			})
		})
	}
}

// assertGallery checks a product after write-back against the gallery the
// merchant left: each image replaced by its processed copy in the same
// place, alt text and variant links, none lost, none twice.
func assertGallery(t *testing.T, h *harness, edited, after shopifytest.ProductSnapshot) {
	t.Helper()
	if len(after.Media) != len(edited.Media) {
		t.Errorf("%q: %d media, want %d", edited.Title, len(after.Media), len(edited.Media))
		return
	}
	counterpart := map[string]string{}
	seen := map[string]bool{}
	for i, orig := range edited.Media {
		j := h.jobFor(orig.ID)
		m := after.Media[i]
		if j.State != models.JobDone {
			t.Errorf("%q image %d (%s): job %s %q", edited.Title, i, orig.Filename, j.State, j.Error)
			continue
		}
		if m.ID != j.ResultMediaID {
			t.Errorf("%q position %d holds %s, want %s (processed %s)", edited.Title, i, m.ID, j.ResultMediaID, orig.Filename)
		}
		if seen[m.ID] {
			t.Errorf("%q: %s twice", edited.Title, m.ID)
		}
		seen[m.ID] = true
		if m.Alt != orig.Alt {
			t.Errorf("%q position %d alt %q, want %q", edited.Title, i, m.Alt, orig.Alt)
		}
		if m.Status != "READY" || bytes.Equal(m.Data, orig.Data) || !borderIsWhiteOrClear(t, m.Data) {
			t.Errorf("%q position %d (%s) is not the processed image", edited.Title, i, orig.Filename)
		}
		if m.ID == orig.ID && m.Filename != orig.Filename {
			t.Errorf("%q position %d renamed %s → %s", edited.Title, i, orig.Filename, m.Filename)
		}
		counterpart[orig.ID] = m.ID
	}
	for vi, v := range after.Variants {
		var want []string
		for _, id := range edited.Variants[vi].MediaIDs {
			want = append(want, counterpart[id])
		}
		if !equal(v.MediaIDs, want) {
			t.Errorf("%q variant %s links %v, want %v", edited.Title, v.Title, v.MediaIDs, want)
		}
	}
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
