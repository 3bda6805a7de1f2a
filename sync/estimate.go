package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/admin"
)

// Estimate is what a backfill would submit if it started now under the
// saved settings. Money is a decimal string in the template's currency.
type Estimate struct {
	Images     int
	Price      string // one image
	Amount     string // Images × Price
	Currency   string
	BudgetLeft string // what the monthly budget leaves this month, "" without a budget
	amount     int64
}

// pendingRunStates are the states of a backfill job that has not been
// submitted yet: a new run takes it over, so the new estimate counts it.
var pendingRunStates = []string{models.JobQueued, models.JobRetrying, models.JobOverBudget}

// EstimateBackfill walks the shop's catalogue through the Admin API, as the
// backfill does, and counts the images it would submit: eligible under the
// image scope and filters, never processed before (or skipped then and
// eligible now), plus what an earlier backfill queued and did not submit.
// It reads Shopify and holds no transaction.
func (p *Pipeline) EstimateBackfill(ctx context.Context, shop *models.Shop) (Estimate, error) {
	settings, err := LoadSettings(ctx, p.o.DB, p.o.Sealer, shop)
	if err != nil {
		return Estimate{}, err
	}
	var est Estimate
	c := p.o.Admin(shop.Domain)
	after := ""
	for {
		page, next, err := c.ProductsUpdatedSince(ctx, time.Time{}, after)
		if err != nil {
			return Estimate{}, fmt.Errorf("estimate backfill of %s: list products: %w", shop.Domain, err)
		}
		for _, s := range page {
			pr, err := c.Product(ctx, s.ID)
			if errors.Is(err, admin.ErrNotFound) {
				continue
			}
			if err != nil {
				return Estimate{}, fmt.Errorf("estimate backfill of %s: read %s: %w", shop.Domain, s.ID, err)
			}
			n, err := p.wouldSubmit(ctx, shop, settings, candidates(pr))
			if err != nil {
				return Estimate{}, err
			}
			est.Images += n
		}
		if next == "" {
			break
		}
		after = next
	}
	var pending int64
	if err := p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("shop_id = ? AND backfill_run IS NOT NULL AND submit_started_at IS NULL AND state IN ?", shop.ID, pendingRunStates).
		Count(&pending).Error; err != nil {
		return Estimate{}, fmt.Errorf("estimate backfill: count pending jobs: %w", err)
	}
	est.Images += int(pending)

	price, _ := parseMoney(settings.TemplatePrice)
	est.amount = price * int64(est.Images)
	est.Price, est.Amount, est.Currency = formatMoney(price), formatMoney(est.amount), settings.Currency
	if settings.MonthlyBudget != "" {
		budget, _ := parseMoney(settings.MonthlyBudget)
		spent, err := monthSpend(ctx, p.o.DB, shop.ID, p.now().Format("2006-01"))
		if err != nil {
			return Estimate{}, fmt.Errorf("estimate backfill: month spend: %w", err)
		}
		est.BudgetLeft = formatMoney(max(budget-spent, 0))
	}
	return est, nil
}

// wouldSubmit counts the candidates enqueue would queue for a backfill:
// eligible, and either new or a job enqueue would queue again.
func (p *Pipeline) wouldSubmit(ctx context.Context, shop *models.Shop, s Settings, cands []Candidate) (int, error) {
	db := p.o.DB.WithContext(ctx)
	n := 0
	for _, c := range cands {
		if c.MediaID == "" || p.ineligible(ctx, db, shop, s, c) != "" {
			continue
		}
		var job models.ImageJob
		err := db.Where("shop_id = ? AND media_id = ?", shop.ID, c.MediaID).Take(&job).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			n++
		case err != nil:
			return 0, fmt.Errorf("estimate backfill: look up job of %s: %w", c.MediaID, err)
		case job.State == models.JobSkipped, job.State == models.JobCancelled && job.SubmitStartedAt == nil:
			n++
		}
	}
	return n, nil
}

// AmountCovers reports whether confirm, a decimal string, is at least the
// estimate's amount; ok is false when confirm is not an amount.
func (e Estimate) AmountCovers(confirm string) (covers, ok bool) {
	v, ok := parseMoney(confirm)
	if !ok || v < 0 {
		return false, false
	}
	return v >= e.amount, true
}

// backfillCapReached says why the job may not be submitted when it belongs
// to the shop's current backfill run and its price would take the run's
// spending past the amount the merchant confirmed; "" when it may. It runs
// inside the submit path's transaction, under the shop's lock, so two
// workers cannot both take the last of the confirmed amount.
func backfillCapReached(ctx context.Context, tx *gorm.DB, shopID uint64, j *models.ImageJob, price string) (string, error) {
	if j.BackfillRun == nil {
		return "", nil
	}
	var b models.Backfill
	err := tx.WithContext(ctx).Where("shop_id = ?", shopID).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("backfill cap: %w", err)
	}
	if b.Run != *j.BackfillRun || b.ConfirmAmount == "" {
		return "", nil
	}
	limit, _ := parseMoney(b.ConfirmAmount)
	spent, err := runSpend(ctx, tx, shopID, b.Run, j.ID)
	if err != nil {
		return "", err
	}
	p, _ := parseMoney(price)
	if spent+p <= limit {
		return "", nil
	}
	return fmt.Sprintf("The backfill's confirmed amount of %s is used up (%s spent). Start the backfill again to confirm more.",
		b.ConfirmAmount, formatMoney(spent)), nil
}

// runSpend adds up what the run's other submissions cost, with the kept
// charges of its resubmitted ones, in ten-thousandths.
func runSpend(ctx context.Context, tx *gorm.DB, shopID uint64, run int64, except uint64) (int64, error) {
	var prices, kept []string
	if err := tx.WithContext(ctx).Model(&models.ImageJob{}).
		Where("shop_id = ? AND backfill_run = ? AND submit_started_at IS NOT NULL AND id <> ?", shopID, run, except).
		Pluck("price", &prices).Error; err != nil {
		return 0, fmt.Errorf("backfill spend: %w", err)
	}
	if err := tx.WithContext(ctx).Model(&models.JobCharge{}).
		Where("shop_id = ? AND job_id IN (?)", shopID, tx.Model(&models.ImageJob{}).Select("id").Where("shop_id = ? AND backfill_run = ?", shopID, run)).
		Pluck("price", &kept).Error; err != nil {
		return 0, fmt.Errorf("backfill kept charges: %w", err)
	}
	var total int64
	for _, s := range append(prices, kept...) {
		v, _ := parseMoney(s)
		total += v
	}
	return total, nil
}
