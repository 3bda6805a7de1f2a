package e2e_test

import (
	"fmt"
	"image/color"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// A shop at its SHOP_CONCURRENCY gets its next job as soon as one of its
// jobs ends, not when an idle worker next looks for work: with workers
// that look only once an hour when they find nothing, a shop allowed one
// job at a time still has every image written back.
func TestAShopAtItsLimitGetsItsNextJobWhenOneEnds(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{tune: func(o *imgsync.Options) { o.Idle, o.MaxPerShop = time.Hour, 1 }})
		var ids []string
		for i := range 3 {
			rec := h.createProduct(shopifytest.NewProduct{Title: fmt.Sprint("Mug ", i), Images: []shopifytest.NewImage{
				{Filename: fmt.Sprint("mug-", i, ".jpg"), Data: photo("jpg", color.RGBA{200, 180, 90, 255}), Alt: "mug"}}})
			ids = append(ids, rec.ID)
		}
		for _, id := range ids {
			waitReadyIn(t, h, shopDomain, id)
		}
		for _, id := range ids {
			h.webhook("products/create", id)
		}
		h.waitJobs("every image written back", allIn(3, models.JobDone))
	})
}
