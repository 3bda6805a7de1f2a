package e2e_test

import (
	"bytes"
	"image/color"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/shopifytest"
)

var (
	sand = color.RGBA{220, 200, 160, 255}
	sky  = color.RGBA{150, 190, 230, 255}
	mint = color.RGBA{170, 220, 190, 255}
)

// threeImages is a product whose second image is a variant's image.
func threeImages(ext string) shopifytest.NewProduct {
	format := "jpeg"
	if ext == ".png" {
		format = "png"
	}
	return shopifytest.NewProduct{
		Title: "Linen shirt", ProductType: "Shirts", Vendor: "Acme", Tags: []string{"summer"},
		Images: []shopifytest.NewImage{
			{Filename: "front" + ext, Data: photo(format, sand), Alt: "Front"},
			{Filename: "blue" + ext, Data: photo(format, sky), Alt: "Blue shirt"},
			{Filename: "back" + ext, Data: photo(format, mint), Alt: "Back"},
		},
		Variants: []shopifytest.NewVariant{{Title: "Sand", ImageIndex: 0}, {Title: "Blue", ImageIndex: 1}, {Title: "Plain", ImageIndex: -1}},
	}
}

func TestReplaceInPlaceKeepsIDsPositionsAltsAndVariants(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("all done", allIn(3, models.JobDone))

		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 3 {
			t.Fatalf("product has %d media, want 3", len(after.Media))
		}
		for i, m := range after.Media {
			if m.ID != before.Media[i].ID || m.Alt != before.Media[i].Alt {
				t.Errorf("media %d is %s %q, want %s %q", i, m.ID, m.Alt, before.Media[i].ID, before.Media[i].Alt)
			}
			if bytes.Equal(m.Data, before.Media[i].Data) || !borderIsWhiteOrClear(t, m.Data) {
				t.Errorf("media %d was not replaced by the processed image", i)
			}
		}
		assertVariants(t, before, after)
		// Each original is kept, unattached, in Files, with its bytes.
		for _, orig := range before.Media {
			j := h.jobFor(orig.ID)
			if j.OriginalFileID == "" || j.ResultMediaID != orig.ID {
				t.Fatalf("job %d: original file %q, result %q", j.ID, j.OriginalFileID, j.ResultMediaID)
			}
			kept := fileByID(after, j.OriginalFileID)
			if kept == nil || !bytes.Equal(kept.Data, orig.Data) || len(kept.ProductIDs) != 0 {
				t.Errorf("original of %s not kept intact in Files: %+v", orig.ID, kept)
			}
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 3 {
			t.Errorf("Remove The Background billed %d submissions, want 3", n)
		}
	})
}

func TestReplaceWithNewMediaWhenTheFormatChanges(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		// The transparent template delivers PNG for JPEG originals, which
		// Shopify cannot swap in place.
		h := newHarness(t, db, harnessOptions{template: transparentTemplate()})
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("all done", allIn(3, models.JobDone))

		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 3 {
			t.Fatalf("product has %d media, want 3: %+v", len(after.Media), after.Media)
		}
		for i, m := range after.Media {
			j := h.jobFor(before.Media[i].ID)
			if m.ID != j.ResultMediaID || m.ID == before.Media[i].ID {
				t.Errorf("position %d holds %s, want the processed %s", i, m.ID, j.ResultMediaID)
			}
			if m.Alt != before.Media[i].Alt || m.MimeType != "image/png" || !borderIsWhiteOrClear(t, m.Data) {
				t.Errorf("position %d: alt %q type %s", i, m.Alt, m.MimeType)
			}
			kept := fileByID(after, before.Media[i].ID)
			if kept == nil || len(kept.ProductIDs) != 0 || !bytes.Equal(kept.Data, before.Media[i].Data) {
				t.Errorf("original %s should be detached but kept in Files", before.Media[i].ID)
			}
		}
		// The variants now point at the processed images.
		for vi, v := range after.Variants {
			want := []string{}
			for _, old := range before.Variants[vi].MediaIDs {
				want = append(want, h.jobFor(old).ResultMediaID)
			}
			if !equal(v.MediaIDs, want) {
				t.Errorf("variant %s links %v, want %v", v.Title, v.MediaIDs, want)
			}
		}
	})
}

func TestAddModePutsEachProcessedImageAfterItsOriginal(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{writeMode: "add"})
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("all done", allIn(3, models.JobDone))
		// The app's own uploads fire products/update: no new jobs from it.
		h.webhook("products/update", rec.ID)

		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 6 {
			t.Fatalf("product has %d media, want 6", len(after.Media))
		}
		for i, orig := range before.Media {
			if after.Media[2*i].ID != orig.ID {
				t.Errorf("position %d: %s, want original %s", 2*i, after.Media[2*i].ID, orig.ID)
			}
			added := after.Media[2*i+1]
			if added.ID != h.jobFor(orig.ID).ResultMediaID || added.Alt != orig.Alt || !borderIsWhiteOrClear(t, added.Data) {
				t.Errorf("position %d: %+v is not the processed copy of %s", 2*i+1, added.ID, orig.ID)
			}
		}
		assertVariants(t, before, after)
		// The app's own images are recorded as skipped, never submitted.
		for _, j := range h.jobs()[3:] {
			if j.State != models.JobSkipped || j.Error != "This is an image the app uploaded." {
				t.Errorf("the app's own image became job %s", describe([]models.ImageJob{j}))
			}
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 3 {
			t.Errorf("billed %d, want 3", n)
		}
	})
}

func transparentTemplate() string {
	for _, tm := range rtbtest.DefaultTemplates() {
		if tm.Name == "Transparent PNG" {
			return tm.ID
		}
	}
	panic("no transparent template in the fake")
}

// waitReady waits for the fake store to finish processing the product's
// media and returns its snapshot.
func waitReady(t *testing.T, h *harness, productID string) shopifytest.ProductSnapshot {
	t.Helper()
	return waitReadyIn(t, h, shopDomain, productID)
}

func assertVariants(t *testing.T, before, after shopifytest.ProductSnapshot) {
	t.Helper()
	for i, v := range after.Variants {
		if !equal(v.MediaIDs, before.Variants[i].MediaIDs) {
			t.Errorf("variant %s links %v, want %v", v.Title, v.MediaIDs, before.Variants[i].MediaIDs)
		}
	}
}

func fileByID(s shopifytest.ProductSnapshot, id string) *shopifytest.FileSnapshot {
	for i := range s.Files {
		if s.Files[i].ID == id {
			return &s.Files[i]
		}
	}
	return nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
