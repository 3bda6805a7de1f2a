package e2e_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	imgsync "rtbshopify/sync"
)

func TestRevertRestoresTheOriginalExactly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      harnessOptions
		wantMedia int
	}{
		{"in place", harnessOptions{}, 3},
		{"new media", harnessOptions{template: transparentTemplate()}, 3},
		{"add", harnessOptions{writeMode: "add"}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				h := newHarness(t, db, tc.opts)
				rec := h.createProduct(threeImages(".jpg"))
				before := waitReady(t, h, rec.ID)
				h.webhook("products/create", rec.ID)
				jobs := h.waitJobs("all done", allIn(3, models.JobDone))
				if n := len(h.store.Product(shopDomain, rec.ID).Media); n != tc.wantMedia {
					t.Fatalf("after write-back: %d media, want %d", n, tc.wantMedia)
				}
				for _, j := range jobs {
					if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/revert", nil); status != 202 {
						t.Fatalf("revert: %d %s", status, body)
					}
				}
				h.waitJobs("reverted", allIn(3, models.JobReverted))
				after := h.store.Product(shopDomain, rec.ID)
				if len(after.Media) != 3 {
					t.Fatalf("after revert: %d media, want 3", len(after.Media))
				}
				for i, m := range after.Media {
					o := before.Media[i]
					if m.ID != o.ID || m.Alt != o.Alt || !bytes.Equal(m.Data, o.Data) {
						t.Errorf("position %d: %s %q (bytes equal %v), want the original %s %q", i, m.ID, m.Alt, bytes.Equal(m.Data, o.Data), o.ID, o.Alt)
					}
				}
				assertVariants(t, before, after)
				// A reverted image is not processed again by the next update.
				h.webhook("products/update", rec.ID)
				time.Sleep(100 * time.Millisecond)
				if n := h.rtb.Submissions()[rtbEmail]; n != 3 {
					t.Errorf("billed %d, want 3", n)
				}
			})
		})
	}
}

func TestWorkerStoppedMidWriteBackIsFinishedByAnotherWithoutDuplicates(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.Lease = time.Second }})
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		// Stop the first worker pool right after Shopify created a
		// processed file, before the write-back finished.
		deadline := time.Now().Add(20 * time.Second)
		for !sawOperation(h, "FileCreate") {
			if time.Now().After(deadline) {
				t.Fatal("no processed image was ever uploaded")
			}
			sleep()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h.app.Pipeline.Stop(ctx)

		// Another replica takes over once the leases expire.
		second := buildApp(t, h.cfg, db, h.log, func(o *imgsync.Options) {
			o.Idle = 20 * time.Millisecond
			o.Lease = time.Second
			o.Schedule.Disabled = true
		}, nil, nil, nil)
		sctx, scancel := context.WithCancel(context.Background())
		second.Pipeline.Start(sctx)
		t.Cleanup(func() { second.Pipeline.Stop(context.Background()); scancel() })
		h.waitJobs("all done", allIn(3, models.JobDone))

		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 3 {
			t.Fatalf("product has %d media, want 3 (no duplicates): %+v", len(after.Media), after.Media)
		}
		for i := range after.Media {
			if want := h.jobFor(before.Media[i].ID).ResultMediaID; after.Media[i].ID != want {
				t.Errorf("position %d: %s, want %s", i, after.Media[i].ID, want)
			}
		}
		if processed := processedFiles(h, before.ID); processed != 3 {
			t.Errorf("%d processed files in the shop, want 3", processed)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 3 {
			t.Errorf("billed %d, want 3", n)
		}
	})
}

func sawOperation(h *harness, op string) bool {
	for _, r := range h.store.Requests() {
		if r.Operation == op && r.Status == 200 {
			return true
		}
	}
	return false
}

func TestAFailedWriteBackLeavesTheOriginalGallery(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.Workers = 1 }})
		rec := h.createProduct(threeImages(".jpg"))
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		// Shopify refuses the call right after the first reorder: the
		// processed image is on the product, the original still is too.
		deadline := time.Now().Add(20 * time.Second)
		for !sawOperation(h, "ProductReorderMedia") {
			if time.Now().After(deadline) {
				t.Fatal("no reorder was ever sent")
			}
			time.Sleep(time.Millisecond)
		}
		h.store.FailNext(1, http.StatusBadRequest)
		jobs := h.waitJobs("one failed", func(js []models.ImageJob) bool {
			for _, j := range js {
				if j.State == models.JobFailed {
					return true
				}
			}
			return false
		})
		h.app.Pipeline.Stop(context.Background())
		var failed models.ImageJob
		for _, j := range jobs {
			if j.State == models.JobFailed {
				failed = j
			}
		}
		after := h.store.Product(shopDomain, rec.ID)
		var ids []string
		for _, m := range after.Media {
			ids = append(ids, m.ID)
		}
		// The failed job's original is back alone at its place, with its variant.
		for i, m := range before.Media {
			if m.ID == failed.MediaID && (len(after.Media) <= i || after.Media[i].ID != m.ID) {
				t.Fatalf("after the failure the gallery is %v; the original %s should be back at %d", ids, m.ID, i)
			}
		}
		if len(after.Media) != 3 {
			t.Fatalf("after the failure the product has %d media %v, want 3 (no duplicate)", len(after.Media), ids)
		}
		for vi, v := range after.Variants {
			for _, old := range before.Variants[vi].MediaIDs {
				if old == failed.MediaID && !equal(v.MediaIDs, []string{old}) {
					t.Errorf("variant %s links %v, want the original %s", v.Title, v.MediaIDs, old)
				}
			}
		}
	})
}
