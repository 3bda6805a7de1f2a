package sync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/admin"
)

func TestIPAllowlistRefusalWaitsWithoutSpendingAttempts(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		p.o.MaxAttempts = 3
		forbidden := fmt.Errorf("read product: %w", &admin.HTTPError{Operation: "Product", Status: 403, Body: `{"errors":"…"}`})
		var id uint64
		for try := 1; try <= 2*p.o.MaxAttempts; try++ {
			clock.Advance(allowlistWait)
			l, err := p.claim(context.Background())
			if err != nil || l == nil {
				t.Fatalf("try %d: claim %v %v (the job must come back after the wait)", try, l, err)
			}
			id = l.job.ID
			if err := p.fail(context.Background(), l, forbidden, "Could not read the product from Shopify."); err != nil {
				t.Fatal(err)
			}
			var j models.ImageJob
			db.Take(&j, id)
			if j.State != models.JobRetrying || j.Attempts != 0 || j.Error != AllowlistMessage {
				t.Fatalf("try %d: state %s attempts %d error %q", try, j.State, j.Attempts, j.Error)
			}
			if want := clock.Now().Add(allowlistWait).UnixMilli(); j.RunAt == nil || *j.RunAt != want {
				t.Fatalf("try %d: run_at %v, want %d", try, j.RunAt, want)
			}
			// Not due before the wait is over.
			clock.Advance(allowlistWait - time.Minute)
			if l, _ := p.claim(context.Background()); l != nil {
				t.Fatalf("try %d: claimed again before the wait ended", try)
			}
			clock.Advance(-(allowlistWait - time.Minute))
		}
		var j models.ImageJob
		db.Take(&j, id)
		if n, err := p.AllowlistBlocked(context.Background(), j.ShopID); err != nil || n != 1 {
			t.Fatalf("AllowlistBlocked = %d, %v; want 1", n, err)
		}
		if n, _ := p.AllowlistBlocked(context.Background(), j.ShopID+1); n != 0 {
			t.Fatalf("another shop sees %d blocked jobs", n)
		}
		var events int64
		db.Model(&models.JobEvent{}).Where("job_id = ? AND message LIKE ?", id, "refused by Shopify's IP allowlist%").Count(&events)
		if events != int64(2*p.o.MaxAttempts) {
			t.Fatalf("%d allowlist events, want %d", events, 2*p.o.MaxAttempts)
		}
	})
}
