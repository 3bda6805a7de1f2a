package sync

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestLongTitlesInAnyScriptAreStored: a title or message over its column's
// limit is cut on a character boundary, so MariaDB (utf8mb4) stores it
// instead of refusing the row, and the webhook that carried it succeeds.
func TestLongTitlesInAnyScriptAreStored(t *testing.T) {
	titles := map[string]string{
		"cjk":   strings.Repeat("防水ジャケット", 100),
		"emoji": strings.Repeat("👕🧢", 300),
		"rtl":   strings.Repeat("قميص قطني ", 80),
		"mixed": strings.Repeat("a", 499) + "€€€",
	}
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		shop := addShop(t, p, "a.myshopify.com", readySettings())
		n := 0
		for name, title := range titles {
			n++
			w := webhookOf("gid://shopify/Product/"+name, image("gid://shopify/MediaImage/"+name, 1))
			w.Title = title
			err := db.Transaction(func(tx *gorm.DB) error { return p.EnqueueProduct(context.Background(), tx, shop, w) })
			if err != nil {
				t.Fatalf("%s title: enqueue: %v", name, err)
			}
			var j models.ImageJob
			if err := db.Where("product_id = ?", w.ID).Take(&j).Error; err != nil {
				t.Fatalf("%s title: %v", name, err)
			}
			if !utf8.ValidString(j.ProductTitle) || utf8.RuneCountInString(j.ProductTitle) > 500 {
				t.Errorf("%s title stored as %d characters, valid UTF-8 %v", name, utf8.RuneCountInString(j.ProductTitle), utf8.ValidString(j.ProductTitle))
			}
			if !strings.HasPrefix(title, strings.TrimSuffix(j.ProductTitle, "…")) {
				t.Errorf("%s title stored as something that is not its beginning: %q", name, j.ProductTitle)
			}
			err = db.Transaction(func(tx *gorm.DB) error {
				return p.event(tx, &j, j.State, j.State, strings.Repeat(title, 5))
			})
			if err != nil {
				t.Fatalf("%s event message: %v", name, err)
			}
		}
		var events []models.JobEvent
		db.Where("message LIKE ?", "%…").Find(&events)
		if len(events) != n {
			t.Errorf("%d long event messages stored cut, want %d", len(events), n)
		}
	})
}
