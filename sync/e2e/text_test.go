package e2e_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// TestTitlesInAnyScriptAtShopifysLimit: Shopify titles hold up to 255
// characters of any script, far more than 500 bytes in CJK or emoji. The
// webhook carrying one is answered 200, reconciliation and backfill list it
// without getting stuck, and each image is processed.
func TestTitlesInAnyScriptAtShopifysLimit(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		cjk := strings.Repeat("防水", 127) + "防"
		emoji := strings.Repeat("👕", 255)
		rtl := strings.Repeat("ق", 255)
		product := func(title, name string) *shopifytest.ProductRecord {
			p := oneImage(name)
			p.Title = title
			return h.createProduct(p)
		}
		hooked := product(cjk, "cjk")
		waitReady(t, h, hooked.ID)
		h.webhook("products/create", hooked.ID) // fails the test unless 200
		missed := product(emoji, "emoji")       // no webhook: reconciliation finds it
		waitReady(t, h, missed.ID)
		res, err := h.app.Pipeline.Reconcile(context.Background())
		if err != nil || res.Queued != 1 {
			t.Fatalf("reconcile queued %d, err %v; want 1", res.Queued, err)
		}
		back := product(rtl, "rtl")
		waitReady(t, h, back.ID)
		h.startBackfill(h.estimate()["amount"].(string))
		jobs := h.waitJobs("all three done", allIn(3, models.JobDone))
		for _, j := range jobs {
			if !utf8.ValidString(j.ProductTitle) || utf8.RuneCountInString(j.ProductTitle) != 255 {
				t.Errorf("job %d title stored as %d characters (valid UTF-8 %v), want all 255", j.ID, utf8.RuneCountInString(j.ProductTitle), utf8.ValidString(j.ProductTitle))
			}
		}
	})
}
