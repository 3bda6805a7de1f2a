package e2e_test

import (
	"fmt"
	"image/color"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
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

// A claim the database picks as a deadlock's victim (MySQL's 1213, as when
// a callback's wake-up and the claim's queueing of due jobs lock the same
// rows in another order) is claimed again at once: the wake-up that led to
// it is spent, and with workers that look only once an hour when idle the
// image would otherwise wait that hour.
func TestAClaimThatGaveWayToADeadlockIsClaimedAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		// The first queueing of due jobs is refused as a deadlock victim.
		refused := false
		err := db.Callback().Update().Before("gorm:update").Register("test:deadlock-once", func(tx *gorm.DB) {
			if m, ok := tx.Statement.Dest.(map[string]any); ok && !refused {
				if _, queueing := m["queue_key"]; queueing && m["queue_key"] != nil {
					refused = true
					tx.AddError(&mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"})
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, db, harnessOptions{tune: func(o *imgsync.Options) { o.Idle = time.Hour }})
		rec := h.createProduct(shopifytest.NewProduct{Title: "Mug", Images: []shopifytest.NewImage{
			{Filename: "mug.jpg", Data: photo("jpg", color.RGBA{200, 180, 90, 255}), Alt: "mug"}}})
		waitReadyIn(t, h, shopDomain, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("the image written back", allIn(1, models.JobDone))
		if !refused {
			t.Fatal("no claim was refused: the test proves nothing")
		}
	})
}
