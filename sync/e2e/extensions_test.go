package e2e_test

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"path"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// gifPhoto is a small paletted photo: a dark square on a light background.
func gifPhoto(bg color.RGBA) []byte {
	pal := color.Palette{bg, color.RGBA{40, 40, 40, 255}}
	img := image.NewPaletted(image.Rect(0, 0, 64, 48), pal)
	for y := 16; y < 32; y++ {
		for x := 24; x < 40; x++ {
			img.SetColorIndex(x, y, 1)
		}
	}
	var buf bytes.Buffer
	_ = gif.Encode(&buf, img, nil)
	return buf.Bytes()
}

// Shopify keeps a file's extension exactly as the merchant uploaded it and
// swaps bytes in place only from a source with that very extension, so the
// kept copy and the staged upload must carry it unchanged.
func TestReplaceInPlaceKeepsEveryExtensionSpelling(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		rec := h.createProduct(shopifytest.NewProduct{
			Title: "Spellings", ProductType: "Shirts", Vendor: "Acme",
			Images: []shopifytest.NewImage{
				{Filename: "front.jpeg", Data: photo("jpeg", sand), Alt: "Front"},
				{Filename: "BLUE.JPG", Data: photo("jpeg", sky), Alt: "Blue"},
				{Filename: "back.Png", Data: photo("png", mint), Alt: "Back"},
				{Filename: "loop.gif", Data: gifPhoto(sand), Alt: ""},
				{Filename: "no-extension", Data: photo("jpeg", mint), Alt: "Bare"},
				{Filename: "multi.dot.name.jpg", Data: photo("jpeg", sky), Alt: "Dots"},
			},
			Variants: []shopifytest.NewVariant{{Title: "Front", ImageIndex: 0}, {Title: "Blue", ImageIndex: 1}},
		})
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("all finished", allIn(6, models.JobDone, models.JobFailed))
		for _, j := range jobs {
			if j.State != models.JobDone {
				t.Errorf("job for %s: %s %q", j.OriginalFilename, j.State, j.Error)
			}
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != len(before.Media) {
			t.Fatalf("product has %d media, want %d", len(after.Media), len(before.Media))
		}
		for i, m := range after.Media {
			b := before.Media[i]
			if m.ID != b.ID || m.Filename != b.Filename || m.Alt != b.Alt {
				t.Errorf("position %d is %s %q %q, want %s %q %q in place", i, m.ID, m.Filename, m.Alt, b.ID, b.Filename, b.Alt)
			}
			if bytes.Equal(m.Data, b.Data) || !borderIsWhiteOrClear(t, m.Data) {
				t.Errorf("position %d (%s) was not replaced by the processed image", i, b.Filename)
			}
			if m.MimeType != b.MimeType {
				t.Errorf("position %d (%s) is %s now, was %s", i, b.Filename, m.MimeType, b.MimeType)
			}
			j := h.jobFor(b.ID)
			kept := fileByID(after, j.OriginalFileID)
			if kept == nil || !bytes.Equal(kept.Data, b.Data) {
				t.Errorf("original of %s not kept in Files", b.Filename)
				continue
			}
			if path.Ext(kept.Filename) != path.Ext(b.Filename) {
				t.Errorf("kept copy of %s is named %s", b.Filename, kept.Filename)
			}
		}
		assertVariants(t, before, after)
	})
}

// Remove The Background may deliver another format than the original's.
// The image is converted where nothing is lost, so it still replaces the
// original in place (here: a transparent PNG into a .webp original, kept
// lossless); where converting would lose the transparency (a JPEG
// original) it becomes a new media. The job's events say which and why.
func TestDeliveredFormatIsFittedToTheOriginal(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate()})
		rec := h.createProduct(shopifytest.NewProduct{
			Title: "Formats",
			Images: []shopifytest.NewImage{
				{Filename: "front.webp", Data: shopifytest.SamplePhoto("webp", sand), Alt: "Front"},
				{Filename: "back.jpg", Data: photo("jpeg", sky), Alt: "Back"},
			},
			Variants: []shopifytest.NewVariant{{Title: "A", ImageIndex: 0}, {Title: "B", ImageIndex: 1}},
		})
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("all done", allIn(2, models.JobDone))
		after := h.store.Product(shopDomain, rec.ID)

		webp, jpg := h.jobFor(rec.MediaIDs[0]), h.jobFor(rec.MediaIDs[1])
		if m := after.Media[0]; m.ID != rec.MediaIDs[0] || m.Filename != "front.webp" || m.MimeType != "image/webp" || bytes.Equal(m.Data, before.Media[0].Data) {
			t.Errorf("the .webp original was not replaced in place by WEBP bytes: %s %s %s", m.ID, m.Filename, m.MimeType)
		}
		if m := after.Media[1]; m.ID != jpg.ResultMediaID || m.ID == rec.MediaIDs[1] || m.MimeType != "image/png" || m.Alt != "Back" {
			t.Errorf("the JPEG original should give way to a new PNG media: %s %s %q", m.ID, m.MimeType, m.Alt)
		}
		if v := after.Variants[1].MediaIDs; len(v) != 1 || v[0] != jpg.ResultMediaID {
			t.Errorf("variant B links %v, want the new media", v)
		}
		for _, c := range []struct {
			job  models.ImageJob
			want string
		}{{webp, "replaced in place: delivered as PNG, converted to lossless WEBP"}, {jpg, "transparency, which a JPEG original cannot keep"}} {
			var n int64
			h.db.Model(&models.JobEvent{}).Where("job_id = ? AND message LIKE ?", c.job.ID, "%"+c.want+"%").Count(&n)
			if n == 0 {
				t.Errorf("job %d has no event saying %q", c.job.ID, c.want)
			}
		}
	})
}
