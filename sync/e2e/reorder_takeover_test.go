package e2e_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
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
