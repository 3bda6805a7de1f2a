package e2e_test

import (
	"context"
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

// Shopify reorders a product's media in an asynchronous job, and the
// gallery reads as before until it is done. A worker whose lease ran out
// (it stalled, or a clock jumped) may have started one and not seen it
// done: the worker that takes the product's lock over waits for it before
// it reads the gallery, so it plans its own moves from the order they
// will apply to and each processed image lands where its original is then.
func TestATakenOverProductLockWaitsForTheReorderLeftOnItsWay(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), store: func(o *shopifytest.Options) {
			o.JobDelay = time.Hour // done only once polled
		}})
		rec, before, _ := heldBack(t, h, pointsProduct("takeover", 3))
		c := admin.New(admin.Options{Shop: shopDomain, Token: admin.StaticToken(h.store.IssueAccessToken(shopDomain, 0)), BaseURL: h.store.URL()})
		job, err := c.StartReorderMedia(context.Background(), rec.ID, []admin.Move{{ID: before.Media[2].ID, NewPosition: 0}})
		if err != nil || job == "" {
			t.Fatalf("start a reorder: job %q, %v", job, err)
		}
		// The lock's holder stops: the lock runs out with the reorder noted.
		must(t, h.db.Model(&models.ProductLock{}).Where("owner = ?", "test").
			Updates(map[string]any{"until_ms": 0, "pending_job": job}).Error)
		h.waitJobs("all written back", allIn(3, models.JobDone))

		moved := before
		moved.Media = []shopifytest.MediaSnapshot{before.Media[2], before.Media[0], before.Media[1]}
		assertCatalogueGallery(t, h, "replace", moved, h.store.Product(shopDomain, rec.ID))
		var locks int64
		must(t, h.db.Model(&models.ProductLock{}).Where("product_id = ?", rec.ID).Count(&locks).Error)
		if locks != 0 {
			t.Errorf("%d locks left on the product, want none once its reorder was seen done", locks)
		}
	})
}

// A worker's product lock is taken over in the middle of its write-back
// (its lease looked run out). Its next change to the product is not sent,
// nor any after it: the worker that took over never has the gallery
// changed under it. The worker lets its jobs go at once (their leases,
// an hour here, would otherwise keep them), and once the lock is free they
// resume and finish, each image in its original's place.
func TestAWorkerWhoseProductLockIsTakenOverChangesNothingMore(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		var stolenAt atomic.Pointer[time.Time]
		// Once the first processed file is recorded, before it is attached,
		// another worker takes the product's lock over.
		must(t, db.Callback().Update().Before("gorm:update").Register("test:take-over", func(tx *gorm.DB) {
			fields, ok := tx.Statement.Dest.(map[string]any)
			if !ok || tx.Statement.Table != "image_jobs" || fields["result_media_id"] == nil || fields["result_media_id"] == "" || stolenAt.Load() != nil {
				return
			}
			now := time.Now()
			stolenAt.Store(&now)
			must(t, tx.Session(&gorm.Session{NewDB: true}).Exec("UPDATE product_locks SET owner = ?, until_ms = ?", "other",
				now.Add(time.Hour).UnixMilli()).Error)
		}))
		h := newHarness(t, db, harnessOptions{template: transparentTemplate(), tune: func(o *imgsync.Options) { o.Lease = time.Hour }})
		np := pointsProduct("taken", 3)
		rec := h.createProduct(np)
		before := waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		deadline := time.Now().Add(20 * time.Second)
		for stolenAt.Load() == nil {
			if time.Now().After(deadline) {
				t.Fatal("no processed file was recorded")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		for _, r := range h.store.Requests() {
			if r.Time.After(*stolenAt.Load()) && mutations[r.Operation] {
				t.Errorf("%s sent at %s, after the lock was taken over at %s", r.Operation, r.Time.Format("15:04:05.000"), stolenAt.Load().Format("15:04:05.000"))
			}
		}
		must(t, h.db.Where("owner = ?", "other").Delete(&models.ProductLock{}).Error)
		h.waitJobs("all written back", allIn(3, models.JobDone))
		assertCatalogueGallery(t, h, "replace", before, h.store.Product(shopDomain, rec.ID))
	})
}

// mutations are the Admin API operations that change the shop.
var mutations = map[string]bool{"StagedUploadsCreate": true, "FileCreate": true, "FileUpdate": true, "FileDelete": true,
	"ProductReorderMedia": true, "ProductVariantAppendMedia": true, "ProductVariantDetachMedia": true}
