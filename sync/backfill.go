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

// Backfill states.
const (
	BackfillRunning = "running"
	BackfillDone    = "done"
	BackfillFailed  = "failed"
)

// candidates lists a product's media as enqueue candidates.
func candidates(pr *admin.Product) []Candidate {
	out := make([]Candidate, 0, len(pr.Media))
	for _, m := range pr.Media {
		_, variants := findMedia(pr, m.ID)
		out = append(out, Candidate{ProductID: pr.ID, ProductTitle: pr.Title, ProductType: pr.ProductType, Vendor: pr.Vendor,
			Tags: pr.Tags, MediaID: m.ID, ContentType: m.MediaContentType, Status: m.Status, Position: m.Position,
			Alt: m.Alt, URL: m.URL, VariantIDs: variants})
	}
	return out
}

// enqueueProducts reads each product's media from Shopify and enqueues
// the images it has never seen; run, when not nil, is the backfill run
// the queued jobs count against.
func (p *Pipeline) enqueueProducts(ctx context.Context, shop *models.Shop, c *admin.Client, ids []string, run *int64) (EnqueueResult, error) {
	var total EnqueueResult
	for _, id := range ids {
		pr, err := c.Product(ctx, id)
		if errors.Is(err, admin.ErrNotFound) {
			continue
		}
		if err != nil {
			return total, err
		}
		var r EnqueueResult
		err = p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			r, err = p.enqueueRun(ctx, tx, shop, candidates(pr), run)
			return err
		})
		if err != nil {
			return total, err
		}
		total.Queued += r.Queued
		total.Skipped += r.Skipped
		total.Known += r.Known
	}
	if total.Queued > 0 {
		p.Notify()
	}
	return total, nil
}

// Reconcile lists each active shop's products created or updated since its
// watermark and enqueues images the webhooks never brought.
func (p *Pipeline) Reconcile(ctx context.Context) (EnqueueResult, error) {
	var shops []models.Shop
	if err := p.o.DB.WithContext(ctx).Where("state = ?", models.ShopInstalled).Find(&shops).Error; err != nil {
		return EnqueueResult{}, err
	}
	var total EnqueueResult
	var errs []error
	for i := range shops {
		r, err := p.reconcileShop(ctx, &shops[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", shops[i].Domain, err))
		}
		total.Queued += r.Queued
		total.Skipped += r.Skipped
		total.Known += r.Known
	}
	return total, errors.Join(errs...)
}

func (p *Pipeline) reconcileShop(ctx context.Context, shop *models.Shop) (EnqueueResult, error) {
	var total EnqueueResult
	settings, err := LoadSettings(ctx, p.o.DB, p.o.Sealer, shop)
	if err != nil {
		return total, err
	}
	if ok, _ := settings.Ready(); !ok {
		return total, nil
	}
	// Start a little before the watermark: clocks differ and an update may
	// be indexed late.
	since := p.now().Add(-24 * time.Hour)
	if shop.ReconciledAt != nil {
		since = shop.ReconciledAt.Add(-5 * time.Minute)
	}
	started := p.now()
	c := p.o.Admin(shop.Domain)
	after := ""
	for {
		page, next, err := c.ProductsUpdatedSince(ctx, since, after)
		if err != nil {
			return total, err
		}
		ids := make([]string, len(page))
		for i, s := range page {
			ids[i] = s.ID
		}
		r, err := p.enqueueProducts(ctx, shop, c, ids, nil)
		total.Queued += r.Queued
		total.Skipped += r.Skipped
		total.Known += r.Known
		if err != nil {
			return total, err
		}
		if next == "" {
			break
		}
		after = next
	}
	if total.Queued > 0 {
		p.log.Info("reconciliation found images the webhooks missed", "shop", shop.Domain, "queued", total.Queued)
	}
	err = p.o.DB.WithContext(ctx).Model(&models.Shop{}).Where("id = ?", shop.ID).Updates(map[string]any{
		"reconciled_at": started, "reconcile_caught": total.Queued,
		"reconcile_caught_total": gorm.Expr("reconcile_caught_total + ?", total.Queued),
	}).Error
	return total, err
}

// StartBackfill starts processing the shop's existing catalogue, allowed
// to spend at most confirm (a decimal amount, "" for no cap), or returns
// the backfill already running. Each start is a new run: the jobs an
// earlier run queued and never submitted move to it (the estimate counted
// them), and those it held at its cap try again under the new amount.
func (p *Pipeline) StartBackfill(ctx context.Context, shopID uint64, confirm string) (*models.Backfill, error) {
	var b models.Backfill
	started := false
	err := p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := models.LockShop(tx, "id = ?", shopID); err != nil {
			return err
		}
		err := tx.Where("shop_id = ?", shopID).Take(&b).Error
		if err == nil && b.State == BackfillRunning {
			return nil
		}
		now := p.now()
		run := b.Run + 1
		b = models.Backfill{ShopID: shopID, State: BackfillRunning, Run: run, ConfirmAmount: confirm, StartedAt: now, UpdatedAt: now}
		started = true
		if err := tx.Model(&models.ImageJob{}).
			Where("shop_id = ? AND backfill_run IS NOT NULL AND backfill_run <> ? AND submit_started_at IS NULL AND state IN ?", shopID, run, pendingRunStates).
			Update("backfill_run", run).Error; err != nil {
			return fmt.Errorf("carry pending backfill jobs: %w", err)
		}
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return tx.Create(&b).Error
		}
		if err != nil {
			return err
		}
		return tx.Model(&models.Backfill{}).Where("shop_id = ?", shopID).Select("*").Updates(&b).Error
	})
	if err != nil {
		return nil, err
	}
	if started {
		if err := p.resumeOverBudget(ctx, shopID); err != nil {
			return &b, fmt.Errorf("start backfill: %w", err)
		}
	}
	p.Notify()
	p.notifyBackfill()
	return &b, nil
}

// notifyBackfill wakes the backfill runner: a backfill may be due.
func (p *Pipeline) notifyBackfill() {
	select {
	case p.backfillWake <- struct{}{}:
	default:
	}
}

// BackfillStatus returns the shop's latest backfill, or ErrNotFound.
func (p *Pipeline) BackfillStatus(ctx context.Context, shopID uint64) (*models.Backfill, error) {
	var b models.Backfill
	err := p.o.DB.WithContext(ctx).Where("shop_id = ?", shopID).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &b, err
}

func (p *Pipeline) backfillLoop(ctx context.Context) {
	for ctx.Err() == nil && !p.draining.Load() {
		ran, err := p.RunBackfillStep(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Error("backfill", "err", err)
		}
		if !ran {
			idle(ctx, 2*p.o.Idle, p.backfillWake, nil)
		}
	}
}

// RunBackfillStep takes one running backfill whose lease is free and
// processes one page of products, saving the cursor so a restart resumes
// after the last finished page. It reports whether it did any work.
func (p *Pipeline) RunBackfillStep(ctx context.Context) (bool, error) {
	now := p.now()
	var b models.Backfill
	err := p.o.DB.WithContext(ctx).Where("state = ? AND (lease_until IS NULL OR lease_until < ?)", BackfillRunning, ms(now)).
		Order("updated_at").Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	res := p.o.DB.WithContext(ctx).Model(&models.Backfill{}).
		Where("shop_id = ? AND state = ? AND (lease_until IS NULL OR lease_until < ?)", b.ShopID, BackfillRunning, ms(now)).
		Update("lease_until", ms(now.Add(p.o.Lease)))
	if res.Error != nil || res.RowsAffected == 0 {
		return false, res.Error
	}
	var shop models.Shop
	if err := p.o.DB.WithContext(ctx).Where("id = ?", b.ShopID).Take(&shop).Error; err != nil {
		return true, err
	}
	finish := func(state, msg string) error {
		return p.o.DB.WithContext(ctx).Model(&models.Backfill{}).Where("shop_id = ?", b.ShopID).
			Updates(map[string]any{"state": state, "error": msg, "lease_until": nil, "finished_at": p.now(), "updated_at": p.now()}).Error
	}
	if shop.State != models.ShopInstalled {
		return true, finish(BackfillFailed, "The app was uninstalled.")
	}
	c := p.o.Admin(shop.Domain)
	page, next, err := c.ProductsUpdatedSince(ctx, time.Time{}, b.CursorAfter)
	if err != nil {
		return true, p.releaseBackfill(ctx, b.ShopID, err)
	}
	ids := make([]string, len(page))
	for i, s := range page {
		ids[i] = s.ID
	}
	r, err := p.enqueueProducts(ctx, &shop, c, ids, &b.Run)
	if err != nil {
		return true, p.releaseBackfill(ctx, b.ShopID, err)
	}
	fields := map[string]any{
		"cursor_after": next, "products_seen": gorm.Expr("products_seen + ?", len(page)),
		"images_queued": gorm.Expr("images_queued + ?", r.Queued), "images_skipped": gorm.Expr("images_skipped + ?", r.Skipped),
		"lease_until": nil, "updated_at": p.now(), "error": "",
	}
	if next == "" {
		fields["state"], fields["finished_at"] = BackfillDone, p.now()
	}
	return true, p.o.DB.WithContext(ctx).Model(&models.Backfill{}).Where("shop_id = ?", b.ShopID).Updates(fields).Error
}

// releaseBackfill records a failed page; the page is tried again later.
func (p *Pipeline) releaseBackfill(ctx context.Context, shopID uint64, cause error) error {
	p.o.DB.WithContext(context.WithoutCancel(ctx)).Model(&models.Backfill{}).Where("shop_id = ?", shopID).
		Updates(map[string]any{"error": "Could not read products from Shopify; retrying.", "lease_until": ms(p.now().Add(30 * time.Second)), "updated_at": p.now()})
	return cause
}
