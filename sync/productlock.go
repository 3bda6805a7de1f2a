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

// lockProduct takes the product's lock for the lease's worker, or reports
// that another worker holds it. An expired lock (its worker died, or
// stalled) is taken over, with the reorder its last holder noted, to be
// waited for before the gallery is read. The lock is a row, not a
// transaction, so nothing is held open while Shopify is called.
func (p *Pipeline) lockProduct(ctx context.Context, l *lease) (bool, error) {
	now := p.now()
	until := ms(now.Add(p.o.Lease))
	lock := models.ProductLock{ShopID: l.job.ShopID, ProductID: l.job.ProductID, Owner: l.token, UntilMs: until}
	err := p.o.DB.WithContext(ctx).Create(&lock).Error
	if err == nil {
		return true, nil
	}
	if !models.IsDuplicate(err) {
		return false, err
	}
	res := p.o.DB.WithContext(ctx).Model(&models.ProductLock{}).
		Where("shop_id = ? AND product_id = ? AND (owner = ? OR until_ms < ?)", l.job.ShopID, l.job.ProductID, l.token, ms(now)).
		Updates(map[string]any{"owner": l.token, "until_ms": until})
	if res.Error != nil || res.RowsAffected != 1 {
		return false, res.Error
	}
	// Taken over: its last holder may have left a reorder on its way.
	var pending []string
	err = p.ownLock(ctx, l).Pluck("pending_job", &pending).Error
	if len(pending) == 1 {
		l.pendingJob = pending[0]
	}
	return err == nil, err
}

// notePending records on the product's lock the reorder job its holder
// waits for, for a worker that takes the lock over. It is errLockTaken
// when the lock is another worker's now. The note is never cleared: the
// lock's row goes when it is let go, and a job noted that is done already
// costs whoever takes the lock one look.
func (p *Pipeline) notePending(ctx context.Context, l *lease, job string) error {
	return p.setOwnLock(context.WithoutCancel(ctx), l, "note the reorder of", "pending_job", job)
}

// ownLock selects the product's lock when it is still the lease's worker's.
func (p *Pipeline) ownLock(ctx context.Context, l *lease) *gorm.DB {
	return p.o.DB.WithContext(ctx).Model(&models.ProductLock{}).
		Where("shop_id = ? AND product_id = ? AND owner = ?", l.job.ShopID, l.job.ProductID, l.token)
}

// setOwnLock sets one column of the product's lock while it is still the
// lease's worker's, and is errLockTaken when it is not.
func (p *Pipeline) setOwnLock(ctx context.Context, l *lease, what, column string, value any) error {
	res := p.ownLock(ctx, l).Update(column, value)
	if res.Error != nil {
		return fmt.Errorf("%s product %s: %w", what, l.job.ProductID, res.Error)
	}
	if res.RowsAffected == 0 {
		return errLockTaken
	}
	return nil
}

// errLockTaken: the product's lock was taken over while this worker held
// it (its lease looked run out). The worker stops changing the product, as
// for a lost lease, but its job's lease may still be its own.
var errLockTaken = fmt.Errorf("the product's lock was taken over: %w", ErrLeaseLost)

// holdProduct confirms that the product's lock is still the lease's
// worker's, and pushes it a full lease ahead, before each change the
// worker makes to the product at Shopify. A worker whose lock was taken
// over (its lease looked run out: it stalled, or a clock jumped) gets
// errLockTaken and changes nothing more, so the worker that took over
// never has the gallery moved under it.
func (p *Pipeline) holdProduct(ctx context.Context, l *lease) error {
	return p.setOwnLock(ctx, l, "confirm the lock of", "until_ms", ms(p.now().Add(p.o.Lease)))
}

// productClient is the shop's Admin API client for a worker holding the
// product's lock: each of its mutations is sent only while the lock is
// still the worker's.
func (p *Pipeline) productClient(domain string, l *lease) *admin.Client {
	return p.o.Admin(domain).Guarded(func(ctx context.Context) error { return p.holdProduct(ctx, l) })
}

// unlockProduct lets the product's lock go. One with a reorder noted that
// was not seen done stays, run out, so the next worker on the product
// waits for that reorder first.
func (p *Pipeline) unlockProduct(ctx context.Context, l *lease) {
	lock := p.ownLock(context.WithoutCancel(ctx), l)
	if l.pendingJob != "" {
		lock.Update("until_ms", 0)
		return
	}
	lock.Delete(&models.ProductLock{})
}

// withProduct runs fn holding the product's lock; when another worker
// holds it the job simply comes back shortly (no attempt is counted).
func (p *Pipeline) withProduct(ctx context.Context, l *lease, fn func() error) error {
	ok, err := p.lockProduct(ctx, l)
	if models.IsContention(err) {
		// Two workers raced for the lock row and the database chose one
		// to give way: that is the lock saying "busy", not a failure.
		ok, err = false, nil
	}
	if err != nil {
		return p.fail(ctx, l, err, "Could not coordinate with other workers.")
	}
	// A busy product's jobs come back shortly, after the next idle look.
	shortly := ms(p.now().Add(p.o.Idle + 250*time.Millisecond))
	if !ok {
		return l.release(ctx, map[string]any{}, &shortly, "")
	}
	defer p.unlockProduct(ctx, l)
	err = fn()
	if errors.Is(err, errLockTaken) {
		// The jobs are left to come back shortly, as for a busy product,
		// rather than when their leases run out.
		p.letGo(ctx, l, shortly)
		return nil
	}
	return err
}

// letGo releases the lease's job and those taken along under its token
// that it still holds, due at runAt, untouched otherwise.
func (p *Pipeline) letGo(ctx context.Context, l *lease, runAt int64) {
	ids := []uint64{l.job.ID}
	if along := l.along.Load(); along != nil {
		ids = append(ids, *along...)
	}
	err := p.o.DB.WithContext(context.WithoutCancel(ctx)).Model(&models.ImageJob{}).
		Where("id IN ? AND lease_owner = ?", ids, l.token).
		Updates(map[string]any{"lease_owner": nil, "lease_until": nil, "run_at": runAt, "updated_at": p.now()}).Error
	if err != nil {
		p.log.Warn("let go of jobs whose product's lock was taken over; their leases run out instead", "job", l.job.ID, "err", err)
	}
}
