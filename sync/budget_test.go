package sync

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestRetryOfAnUncertainSubmissionKeepsItsCharge: a submission whose
// answer was lost may have been accepted and billed. When the merchant
// resubmits it, the budget keeps counting that charge, so a second billed
// submission makes two charges, never one.
func TestRetryOfAnUncertainSubmissionKeepsItsCharge(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		var j models.ImageJob
		db.Take(&j)
		month := clock.Now().UTC().Format("2006-01")
		// The submission left, its answer was lost: the job waits for the
		// merchant with its price counted.
		db.Model(&j).Updates(map[string]any{"state": models.JobSubmitting, "submit_started_at": clock.Now(), "submit_month": month,
			"price": "0.95", "run_at": nil, "error": "unconfirmed"})
		if got, _ := p.MonthSpend(context.Background(), j.ShopID); got != "0.95" {
			t.Fatalf("spend before retry %s, want 0.95", got)
		}
		if _, err := p.Retry(context.Background(), j.ShopID, j.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := p.MonthSpend(context.Background(), j.ShopID); got != "0.95" {
			t.Fatalf("spend after the merchant resubmitted an uncertain submission: %s, want 0.95 (it may have been billed)", got)
		}
		// The resubmission reserves its own price on top.
		l, err := p.claim(context.Background())
		if err != nil || l == nil {
			t.Fatalf("claim the resubmission: %v %v", l, err)
		}
		if err := l.update(context.Background(), map[string]any{"state": models.JobSubmitting, "submit_started_at": clock.Now(), "submit_month": month, "price": "0.95"}, "submitting"); err != nil {
			t.Fatal(err)
		}
		if got, _ := p.MonthSpend(context.Background(), j.ShopID); got != "1.90" {
			t.Fatalf("spend with the resubmission reserved: %s, want 1.90", got)
		}
	})
}
