package e2e_test

import (
	"bytes"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// heldBack creates the product, sends its webhook and waits until all its
// images are back from Remove The Background, their write-backs held (the
// product's lock taken by someone else) until release is called. It
// returns the product and its gallery before.
func heldBack(t *testing.T, h *harness, np shopifytest.NewProduct) (rec *shopifytest.ProductRecord, before shopifytest.ProductSnapshot, release func()) {
	t.Helper()
	rec = h.createProduct(np)
	before = waitReady(t, h, rec.ID)
	var shop models.Shop
	must(t, h.db.Where("domain = ?", shopDomain).First(&shop).Error)
	lock := models.ProductLock{ShopID: shop.ID, ProductID: rec.ID, Owner: "test", UntilMs: time.Now().Add(time.Hour).UnixMilli()}
	must(t, h.db.Create(&lock).Error)
	h.webhook("products/create", rec.ID)
	h.waitJobs("all back from Remove The Background", allBack(len(np.Images)))
	return rec, before, func() { must(t, h.db.Where("owner = ?", "test").Delete(&models.ProductLock{}).Error) }
}

// allBack reports whether n jobs are back from Remove The Background,
// waiting for their write-back and held by no worker.
func allBack(n int) func([]models.ImageJob) bool {
	return func(js []models.ImageJob) bool {
		if len(js) != n {
			return false
		}
		for _, j := range js {
			if j.State != models.JobWritingBack || j.FinalImageURL == "" || j.LeaseOwner != nil {
				return false
			}
		}
		return true
	}
}

// operations counts the store's answered requests by operation.
func operations(h *harness) map[string]int {
	n := map[string]int{}
	for _, r := range h.store.Requests() {
		if r.Status == 200 && r.Operation != "" {
			n[r.Operation]++
		}
	}
	return n
}

// processedFiles counts the shop's files the app made for processed images.
func processedFiles(h *harness, productID string) int {
	return filesNamed(h, productID, "-background-removed-")
}

// filesNamed counts the shop's files whose name holds part.
func filesNamed(h *harness, productID, part string) int {
	n := 0
	for _, f := range h.store.Product(shopDomain, productID).Files {
		if strings.Contains(f.Filename, part) {
			n++
		}
	}
	return n
}

// A product's images that are all back from Remove The Background when
// its write-back starts are written back together: their staged upload
// targets asked for at once, each uploaded in turn, then one file creation, one gallery read, one attach, one reorder (and as new
// media one variants read, one relink and one detach of the originals) for
// all; swapped in place, one read of the originals, one file creation of
// their kept copies and one swap for all.
// The gallery ends as six write-backs one by one would leave it.
func TestAProductsImagesAreWrittenBackTogether(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		want       map[string]int
	}{
		{"add", "add", map[string]int{"ProductGalleryOrder": 1, "FileCreate": 1, "FileUpdate": 1, "ProductReorderMedia": 1, "ProductVariants": 0}},
		{"new media", "replace", map[string]int{"ProductGallery": 1, "FileCreate": 1, "FileUpdate": 2, "ProductReorderMedia": 1,
			"ProductVariants": 1, "ProductVariantDetachMedia": 1, "ProductVariantAppendMedia": 1}},
		{"in place", "replace", map[string]int{"ProductMediaByID": 1, "FileCreate": 1, "FileUpdate": 1, "ProductReorderMedia": 0,
			"ProductGallery": 0, "ProductVariants": 0, "ProductVariantDetachMedia": 0, "ProductVariantAppendMedia": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				ho := harnessOptions{writeMode: tc.mode, tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }}
				if tc.name == "new media" {
					ho.template = transparentTemplate() // a transparent result for JPEG originals
				}
				h := newHarness(t, db, ho)
				rec, before, release := heldBack(t, h, pointsProduct("batch", 6))
				h.store.ResetRequests()
				release()
				h.waitJobs("all written back", allIn(6, models.JobDone))

				ops := operations(h)
				// One staged upload target for each image, asked for at once.
				tc.want["StagedUploadsCreate"], tc.want["FindFile"] = 1, 0
				for op, n := range tc.want {
					if ops[op] != n {
						t.Errorf("%d %s, want %d (operations %v)", ops[op], op, n, ops)
					}
				}
				after := h.store.Product(shopDomain, rec.ID)
				assertCatalogueGallery(t, h, tc.mode, before, after)
				if n := processedFiles(h, rec.ID); n != 6 && tc.name != "in place" {
					t.Errorf("%d processed files, want 6", n)
				}
				if n := h.rtb.Submissions()[rtbEmail]; n != 6 {
					t.Errorf("billed %d, want 6", n)
				}
				if tc.name == "in place" {
					for i, m := range after.Media {
						j := h.jobFor(m.ID)
						if m.ID != before.Media[i].ID || j.ResultMediaID != m.ID || j.OriginalFileID == "" {
							t.Errorf("position %d: media %s, job %d result %s kept copy %q; want the original %s swapped, its copy kept",
								i, m.ID, j.ID, j.ResultMediaID, j.OriginalFileID, before.Media[i].ID)
						}
						k := slices.IndexFunc(after.Files, func(f shopifytest.FileSnapshot) bool { return f.ID == j.OriginalFileID })
						if k < 0 || !bytes.Equal(after.Files[k].Data, before.Media[i].Data) {
							t.Errorf("job %d: no kept copy of the original's bytes (%s)", j.ID, j.OriginalFileID)
						}
					}
				}
			})
		})
	}
}

// A write-back of several images that fails at its last step (Shopify
// refuses the originals' detach) is undone for each of them: the gallery
// shows the originals with their variants, and Retry finishes each image
// from the file it made, with no second upload or copy.
func TestAFailedWriteBackOfSeveralImagesIsUndoneAndRetried(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }})
		rec, before, release := heldBack(t, h, pointsProduct("undo", 4))
		h.store.LockNextDetach(1)
		release()
		// FILE_LOCKED is Shopify's refusal, not a passing fault: each job
		// fails, with the product as it was.
		h.waitJobs("all failed", allIn(4, models.JobFailed))
		undone := h.store.Product(shopDomain, rec.ID)
		if len(undone.Media) != len(before.Media) {
			t.Fatalf("gallery of %d media after the failure, want %d", len(undone.Media), len(before.Media))
		}
		for i, m := range before.Media {
			if undone.Media[i].ID != m.ID {
				t.Errorf("position %d holds %s after the failure, want the original %s", i, undone.Media[i].ID, m.ID)
			}
		}
		for i, v := range before.Variants {
			if got := undone.Variants[i]; strings.Join(got.MediaIDs, ",") != strings.Join(v.MediaIDs, ",") {
				t.Errorf("variant %s links %v after the failure, want %v", v.Title, got.MediaIDs, v.MediaIDs)
			}
		}
		for _, m := range before.Media {
			j := h.jobFor(m.ID)
			if evs := eventsOf(t, db, j.ID); !strings.Contains(evs, "half-done write-back undone") {
				t.Errorf("job %d was not undone: events\n%s", j.ID, evs)
			}
			if status, body := h.api("POST", "/api/jobs/"+itoa(j.ID)+"/retry", nil); status != 202 {
				t.Fatalf("retry: %d %s", status, body)
			}
		}
		h.waitJobs("all written back", allIn(4, models.JobDone))
		assertCatalogueGallery(t, h, "replace", before, h.store.Product(shopDomain, rec.ID))
		if n := processedFiles(h, rec.ID); n != 4 {
			t.Errorf("%d processed files, want 4", n)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 4 {
			t.Errorf("billed %d, want 4", n)
		}
		if ops := operations(h); ops["StagedUploadsCreate"] != 1 || ops["FileCreate"] != 1 {
			t.Errorf("operations %v: want the images uploaded and their files made once", ops)
		}
	})
}

// Images of a product that cannot be written back with the others are
// written back after them: one whose result fits in place (a PNG
// original), handed back to be swapped, and one the merchant deleted
// meanwhile, on its own, its paid result kept in Files. The rest go
// together.
func TestImagesThatCannotGoTogetherAreWrittenBackOnTheirOwn(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }})
		np := threeImages(".jpg")
		np.Images = append(np.Images, shopifytest.NewImage{Filename: "label.png", Data: photo("png", sky), Alt: "Label"},
			shopifytest.NewImage{Filename: "side.jpg", Data: photo("jpeg", mint), Alt: "Side"})
		rec, _, release := heldBack(t, h, np)
		deleted := rec.MediaIDs[4]
		must(t, h.store.DeleteMedia(shopDomain, rec.ID, deleted))
		edited := h.store.Product(shopDomain, rec.ID)
		h.store.ResetRequests()
		release()
		h.waitJobs("all finished", allIn(5, models.JobDone, models.JobFailed))

		gone := h.jobFor(deleted)
		if gone.State != models.JobFailed || !strings.Contains(gone.Error, "removed from the product") || gone.ResultMediaID == "" {
			t.Fatalf("the deleted image's job: %s %q result %q", gone.State, gone.Error, gone.ResultMediaID)
		}
		if label := h.jobFor(rec.MediaIDs[3]); label.State != models.JobDone || label.ResultMediaID != rec.MediaIDs[3] {
			t.Fatalf("the PNG original was not replaced in place: %s result %q", label.State, label.ResultMediaID)
		}
		assertCatalogueGallery(t, h, "replace", edited, h.store.Product(shopDomain, rec.ID))
		// The three JPEG originals go together: one gallery read for them,
		// one for the deleted image's own write-back.
		for _, id := range rec.MediaIDs[:3] {
			if evs := eventsOf(t, db, h.jobFor(id).ID); !strings.Contains(evs, "written back together") {
				t.Errorf("%s was not written back with the others: events\n%s", id, evs)
			}
		}
		if ops := operations(h); ops["ProductGallery"] != 2 || ops["ProductReorderMedia"] != 1 {
			t.Errorf("operations %v: want the JPEG originals written back together", ops)
		}
	})
}

// The staged upload targets of a product's images are asked for at once,
// each for the kind of file the lead's is. One that comes back as another
// kind of file (a PNG original's among JPEGs, added as it came) asks for
// its own target, and the gallery ends the same.
func TestAnImageOfAnotherKindIsStagedOnItsOwn(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{writeMode: "add", tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }})
		np := threeImages(".jpg")
		np.Images = append(np.Images, shopifytest.NewImage{Filename: "label.png", Data: photo("png", sky), Alt: "Label"})
		rec, before, release := heldBack(t, h, np)
		h.store.ResetRequests()
		release()
		jobs := h.waitJobs("all written back", allIn(4, models.JobDone))
		if ops := operations(h); ops["StagedUploadsCreate"] != 2 || ops["FileCreate"] != 1 {
			t.Errorf("operations %v: want the JPEGs' targets asked for at once, the PNG's on its own, and one file creation", ops)
		}
		after := h.store.Product(shopDomain, rec.ID)
		assertCatalogueGallery(t, h, "add", before, after)
		for _, j := range jobs {
			for _, m := range after.Media {
				if m.ID == j.ResultMediaID && path.Ext(m.Filename) != path.Ext(j.OriginalFilename) {
					t.Errorf("job %d: %s added as %s", j.ID, j.OriginalFilename, m.Filename)
				}
			}
		}
	})
}

// A write-back of several images that lasts several leases finishes them
// all together, none retried: the heartbeat renews the jobs taken along
// with the lead's lease (TestTakeAlongLeasesTheProductsFreshImagesAndRenewsThem
// checks the renewal itself).
func TestJobsTakenAlongStayWithTheirWriteBack(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{writeMode: "add", tune: func(o *imgsync.Options) {
			o.MaxPerShop = 1
			o.Lease = 600 * time.Millisecond
		}})
		rec, before, release := heldBack(t, h, pointsProduct("slow", 6))
		h.store.SetLatency(150 * time.Millisecond) // the write-back lasts several leases
		start := time.Now()
		release()
		h.waitJobs("all written back", allIn(6, models.JobDone))
		if took := time.Since(start); took < 2*600*time.Millisecond {
			t.Fatalf("the write-back took %v, less than two leases: the test shows nothing", took)
		}
		for _, j := range h.jobs() {
			if evs := eventsOf(t, db, j.ID); !strings.Contains(evs, "written back together") || j.Attempts != 0 {
				t.Errorf("job %d (attempts %d) left the write-back: events\n%s", j.ID, j.Attempts, evs)
			}
		}
		assertCatalogueGallery(t, h, "add", before, h.store.Product(shopDomain, rec.ID))
	})
}

// Files Shopify fails to process, in a write-back of several images (the
// lead's and another's), are deleted and made again by each image's own
// write-back, in the same attempt; the others finish together. Swapped in
// place, the files made first are the originals' kept copies.
func TestFailedFilesOfSeveralImagesAreMadeAgainOnTheirOwn(t *testing.T) {
	for _, tc := range []struct{ name, mode, template string }{
		{"add", "add", transparentTemplate()}, {"replace", "replace", transparentTemplate()}, {"in place", "replace", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				h := newHarness(t, db, harnessOptions{writeMode: mode, template: tc.template, tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }})
				_, before, release := heldBack(t, h, pointsProduct("failing", 5))
				h.store.FailNextProcessing(2) // the first two processed files
				release()
				jobs := h.waitJobs("finished", allIn(5, models.JobDone, models.JobFailed))
				remade := 0
				for _, j := range jobs {
					if j.State != models.JobDone || j.Attempts != 0 {
						t.Fatalf("job %d: %s %q after %d attempts", j.ID, j.State, j.Error, j.Attempts)
					}
					if strings.Contains(eventsOf(t, db, j.ID), "deleted and is made again") {
						remade++
					}
				}
				if remade != 2 {
					t.Errorf("%d files made again, want 2", remade)
				}
				assertOneProcessedEach(t, h, mode, before, jobs)
			})
		})
	}
}

// A call whose answer is lost after Shopify did its work (the connection
// drops) is sent again by the client, and Shopify refuses it as done
// already: the files made, the variant relinked. The write-back finds the
// files by name, reads the links again, and finishes: every variant on its
// image, one file each, nothing failed.
func TestALostAnswerIsNotAFailure(t *testing.T) {
	for _, op := range []string{"FileCreate", "ProductVariantDetachMedia", "ProductVariantAppendMedia"} {
		t.Run(op, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }})
				rec, before, release := heldBack(t, h, threeImages(".jpg"))
				h.store.LoseNextAnswer(op, 1)
				release()
				jobs := h.waitJobs("finished", allIn(3, models.JobDone, models.JobFailed))
				for _, j := range jobs {
					if j.State != models.JobDone || j.Attempts != 0 {
						t.Fatalf("job %d: %s %q after %d attempts", j.ID, j.State, j.Error, j.Attempts)
					}
				}
				if n := operations(h)[op]; n < 2 {
					t.Fatalf("%d %s answered: the lost answer was not sent again", n, op)
				}
				assertGallery(t, h, before, h.store.Product(shopDomain, rec.ID))
				if n := processedFiles(h, rec.ID); n != 3 {
					t.Errorf("%d processed files, want 3", n)
				}
			})
		})
	}
}

// A swap of several images in place whose answer is lost after Shopify
// swapped them (the connection drops) is sent again by the client, and
// Shopify refuses it: the files are processing their new bytes. Each image
// then looks again later, finds its original READY with the new bytes,
// and finishes: every image swapped once in the gallery, its original's
// copy kept once, nothing paid twice.
func TestALostSwapOfSeveralImagesIsFinished(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{tune: func(o *imgsync.Options) { o.MaxPerShop = 1 },
			// Processing far outlasts the client's resend, which finds the files busy.
			store: func(o *shopifytest.Options) { o.MediaProcessingDelay = 500 * time.Millisecond },
			admin: func(o *admin.Options) { o.BaseDelay = 20 * time.Millisecond }})
		rec, before, release := heldBack(t, h, pointsProduct("lost", 4))
		h.store.LoseNextAnswer("FileUpdate", 1)
		release()
		jobs := h.waitJobs("finished", allIn(4, models.JobDone, models.JobFailed))
		for _, j := range jobs {
			if j.State != models.JobDone {
				t.Fatalf("job %d: %s %q after %d attempts", j.ID, j.State, j.Error, j.Attempts)
			}
		}
		if n := operations(h)["FileUpdate"]; n < 2 || jobs[0].Attempts == 0 {
			t.Fatalf("%d FileUpdate answered, the first job looked again %d times: the resend was not refused", n, jobs[0].Attempts)
		}
		after := h.store.Product(shopDomain, rec.ID)
		assertCatalogueGallery(t, h, "replace", before, after)
		if copies := filesNamed(h, rec.ID, "-original-"); copies != 4 {
			t.Errorf("%d kept copies of the originals, want 4", copies)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 4 {
			t.Errorf("billed %d, want 4", n)
		}
	})
}

// An image back from Remove The Background while others of its product
// are still on their way waits for them, once, up to Gather: the last to
// come back takes the others along, and the product's images are written
// back together although they came back apart.
func TestImagesComingBackApartWaitForEachOther(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{writeMode: "add", tune: func(o *imgsync.Options) {
			o.MaxPerShop = 1 // one image at a time: they go and come back one after another
			o.Gather = 20 * time.Second
		}})
		rec := h.createProduct(pointsProduct("apart", 5))
		before := waitReady(t, h, rec.ID)
		h.store.ResetRequests()
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("all written back", allIn(5, models.JobDone))
		waited := 0
		for _, j := range jobs {
			if strings.Contains(eventsOf(t, db, j.ID), "waits a moment for the product's other images") {
				waited++
			}
		}
		if waited == 0 {
			t.Fatal("no image waited for the others: they came back together, the test shows nothing")
		}
		if ops := operations(h); ops["ProductGalleryOrder"] != 1 || ops["FileUpdate"] != 1 || ops["FileCreate"] != 1 {
			t.Errorf("operations %v: want the product's images written back together", ops)
		}
		assertCatalogueGallery(t, h, "add", before, h.store.Product(shopDomain, rec.ID))
	})
}

// A job taken along whose lease another worker took over midway (a clock
// jump made it look expired) is that worker's: the batch leaves it as it
// is, its processed image on the product, and undoes nothing of it. Its
// new owner finishes it from there.
func TestAJobTakenOverMidBatchIsNotUndone(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		if models.DialectOf(db) != models.MySQL {
			t.Skip("the take-over is written while the batch's transaction is open: SQLite runs one at a time")
		}
		// As the batch records its second relink (the lead's is recorded),
		// the jobs not relinking yet are taken over, on another connection,
		// by a worker that then does nothing.
		var relinks atomic.Int32
		must(t, db.Callback().Update().Before("gorm:update").Register("test:take-over", func(tx *gorm.DB) {
			if f, ok := tx.Statement.Dest.(map[string]any); !ok || f["step"] != "relinking" || relinks.Add(1) != 2 {
				return
			}
			if err := db.Session(&gorm.Session{NewDB: true}).Exec("UPDATE image_jobs SET lease_owner = 'thief' WHERE step = 'uploading' AND lease_owner IS NOT NULL").Error; err != nil {
				t.Errorf("take over: %v", err)
			}
		}))
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.MaxPerShop = 1 }})
		rec, before, release := heldBack(t, h, threeImages(".jpg"))
		release()
		var taken []models.ImageJob
		deadline := time.Now().Add(20 * time.Second)
		for {
			db.Where("lease_owner = ?", "thief").Find(&taken)
			var busy int64
			db.Model(&models.ProductLock{}).Count(&busy)
			if relinks.Load() >= 2 && len(taken) > 0 && busy == 0 {
				break // the batch is over
			}
			if time.Now().After(deadline) {
				t.Fatalf("no job was taken over during a batch: %s", describe(h.jobs()))
			}
			time.Sleep(10 * time.Millisecond)
		}
		mid := h.store.Product(shopDomain, rec.ID)
		for _, j := range taken {
			found := false
			for _, m := range mid.Media {
				found = found || m.ID == j.ResultMediaID
			}
			if j.ResultMediaID == "" || !found {
				t.Errorf("job %d, taken over, lost its processed image %q from the product: %s", j.ID, j.ResultMediaID, faultGallery(mid))
			}
		}
		// The new owner lets go; the jobs finish from where they were.
		must(t, db.Model(&models.ImageJob{}).Where("lease_owner = ?", "thief").
			Updates(map[string]any{"lease_owner": nil, "lease_until": nil, "run_at": time.Now().UnixMilli()}).Error)
		h.waitJobs("all written back", allIn(3, models.JobDone))
		assertGallery(t, h, before, h.store.Product(shopDomain, rec.ID))
	})
}
