package e2e_test

import (
	"bytes"
	"net/http"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
)

// An approval may come days after the delivery, when Remove The
// Background's link to the result has gone: the write-back takes the image
// from the file held in Files for the review. In place, the held file is
// deleted once its bytes are on the product; on the new-media path (and in
// add mode) the held file itself goes on the product. Either way Files
// holds no stray copy.
func TestApprovalTakesTheImageHeldInFiles(t *testing.T) {
	for _, c := range []struct {
		name, mode, template string
		inPlace              bool
	}{
		{"in place", "replace", "", true},
		{"new media", "replace", transparentTemplate(), false},
		{"add", "add", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				h := newHarness(t, db, harnessOptions{writeMode: c.mode, template: c.template})
				if status, body := h.api("PUT", "/api/settings", map[string]any{"publish": "review"}); status != 200 {
					t.Fatalf("review mode: %d %s", status, body)
				}
				rec := h.createProduct(oneImage("held"))
				before := waitReady(t, h, rec.ID)
				h.webhook("products/create", rec.ID)
				held := h.waitJobs("held", allIn(1, models.JobAwaitingReview))[0]
				f := fileByID(h.store.Product(shopDomain, rec.ID), held.ReviewFileID)
				if f == nil || f.Status != "READY" {
					t.Fatalf("no READY held file %q", held.ReviewFileID)
				}
				heldBytes := f.Data

				// Remove The Background's link to the result has expired.
				h.rtb.SetFault(rtbtest.EndpointFiles, rtbtest.Fault{HTTPStatus: http.StatusNotFound})
				if status, body := h.api("POST", "/api/jobs/"+itoa(held.ID)+"/approve", nil); status != 202 {
					t.Fatalf("approve: %d %s", status, body)
				}
				j := h.waitJobs("approved", allIn(1, models.JobDone, models.JobFailed))[0]
				if j.State != models.JobDone {
					t.Fatalf("approved job: %s %q", j.State, j.Error)
				}

				after := h.store.Product(shopDomain, rec.ID)
				if len(after.Media) != len(before.Media)+map[bool]int{true: 1}[c.mode == "add"] {
					t.Fatalf("product has %d media", len(after.Media))
				}
				m := after.Media[0]
				if c.mode == "add" {
					m = after.Media[1]
				}
				if m.Status != "READY" || !bytes.Equal(m.Data, heldBytes) || m.Alt != before.Media[0].Alt {
					t.Fatalf("the product's processed image (%s, %s, alt %q) is not the approved one", m.ID, m.Status, m.Alt)
				}
				if c.inPlace {
					if m.ID != before.Media[0].ID {
						t.Fatalf("in place: media %s, want the original's %s", m.ID, before.Media[0].ID)
					}
					if fileByID(after, held.ReviewFileID) != nil {
						t.Errorf("the held file %s is left in Files after an in-place approval", held.ReviewFileID)
					}
				} else if j.ResultMediaID != held.ReviewFileID || m.ID != held.ReviewFileID {
					t.Fatalf("result %s on the product as %s; want the held file %s itself", j.ResultMediaID, m.ID, held.ReviewFileID)
				}
				// Files: the original (on the product, or detached and kept) and
				// its kept copy in place, or the processed file otherwise.
				if len(after.Files) != 2 {
					for _, f := range after.Files {
						t.Logf("file %s %q %s on %v", f.ID, f.Filename, f.Status, f.ProductIDs)
					}
					t.Fatalf("Files holds %d files, want 2: no stray copy", len(after.Files))
				}
				if n := len(h.rtb.Jobs()); n != 1 {
					t.Fatalf("%d submissions, want 1", n)
				}
			})
		})
	}
}
