package e2e_test

import (
	"regexp"
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// extFor is the extension Shopify's MIME type calls for.
var extFor = map[string][]string{"image/jpeg": {".jpg", ".jpeg", ".JPG"}, "image/png": {".png"}, "image/webp": {".webp"}, "image/gif": {".gif"}}

// Files the app makes are named after the original, never after a job:
// the processed image added in add mode, and the kept copy of an original
// replaced in place; the replaced media keeps its own name and alt text.
func TestFilesAreNamedAfterTheOriginal(t *testing.T) {
	for _, mode := range []string{"add", "replace"} {
		t.Run(mode, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				h := newHarness(t, db, harnessOptions{writeMode: mode})
				rec := h.createProduct(shopifytest.NewProduct{Title: "Mug", Images: []shopifytest.NewImage{
					{Filename: "Blue Mug 2026.jpg", Data: photo("jpeg", sand), Alt: "A blue mug"}}})
				before := waitReady(t, h, rec.ID)
				h.webhook("products/create", rec.ID)
				j := h.waitJobs("done", allIn(1, models.JobDone))[0]
				after := h.store.Product(shopDomain, rec.ID)
				byID := map[string]shopifytest.FileSnapshot{}
				for _, f := range after.Files {
					byID[f.ID] = f
				}
				id := strings.TrimPrefix(j.ResultMediaID, "gid://shopify/MediaImage/")
				check := func(what string, f shopifytest.FileSnapshot, suffix string) {
					t.Helper()
					re := regexp.MustCompile(`^Blue-Mug-2026-` + suffix + `-[a-z2-7]{6}(\.[A-Za-z]+)$`)
					m := re.FindStringSubmatch(f.Filename)
					if m == nil || strings.Contains(f.Filename, itoa(j.ID)+".") || strings.Contains(f.Filename, id) {
						t.Fatalf("%s is named %q, want the original's stem, %q, a tag and its extension", what, f.Filename, suffix)
					}
					if exts := extFor[f.MimeType]; !strings.Contains(strings.Join(exts, " "), m[1]) {
						t.Errorf("%s %q holds %s", what, f.Filename, f.MimeType)
					}
				}
				switch mode {
				case "add":
					added := byID[j.ResultMediaID]
					check("the added image", added, "background-removed")
					if added.Alt != "A blue mug" || len(after.Media) != 2 || after.Media[1].ID != j.ResultMediaID || after.Media[1].Alt != "A blue mug" {
						t.Errorf("the added image lost the alt text or its place: %+v", after.Media)
					}
				case "replace":
					if j.ResultMediaID != before.Media[0].ID {
						t.Fatalf("an opaque image was not replaced in place: the job's result is media %s, the original %s", j.ResultMediaID, before.Media[0].ID)
					}
					if after.Media[0].Filename != before.Media[0].Filename || after.Media[0].Alt != "A blue mug" {
						t.Errorf("in place, the media is now %q alt %q, want its own name and alt", after.Media[0].Filename, after.Media[0].Alt)
					}
					check("the kept original", byID[j.OriginalFileID], "original")
				}
			})
		})
	}
}
