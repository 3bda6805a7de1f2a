package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	mrand "math/rand/v2"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify/admin"
)

// workLoop runs the jobs the dispatcher hands over until it stops.
func (p *Pipeline) workLoop(ctx context.Context, n int) {
	log := p.log.With("worker", n)
	for {
		p.idleN.Add(1)
		select {
		case p.freed <- struct{}{}:
		default:
		}
		l, ok := <-p.jobs
		p.idleN.Add(-1)
		if !ok {
			return
		}
		log.Debug("job claimed", "job", l.job.ID)
		p.runJob(ctx, l)
	}
}

// dispatch claims as many jobs at once as workers are idle (one claim
// for several workers: fewer round trips, fewer claims racing for the
// same rows) and hands them over. It stops on Stop, and then the workers
// stop once their job is done.
func (p *Pipeline) dispatch(ctx context.Context) {
	defer close(p.jobs)
	for ctx.Err() == nil && !p.draining.Load() {
		want := int(p.idleN.Load())
		if want == 0 {
			select {
			case <-ctx.Done():
			case <-p.freed:
			case <-time.After(p.o.Idle):
			}
			continue
		}
		ls, err := p.claimN(ctx, want)
		if models.IsContention(err) {
			// The database chose this claim to give way to another writer
			// (a deadlock with a wake-up, say): nothing failed, and the
			// wake-up that led here is spent, so look again shortly rather
			// than after Idle.
			p.log.Debug("claim gave way to another writer; claiming again", "err", err)
			idle(ctx, claimRetryPause, p.wake, nil)
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("claim jobs", "err", err)
			}
			idle(ctx, p.o.Idle, p.wake, nil)
			continue
		}
		if len(ls) == 0 {
			// Nothing is due, or the shops of what is due are at their
			// SHOP_CONCURRENCY: wait for new work, or for a worker to finish
			// its job, which frees its shop a place.
			idle(ctx, p.o.Idle, p.wake, p.freed)
			continue
		}
		for _, l := range ls {
			p.jobs <- l // a worker is waiting: want counted it
		}
	}
}

// claimRetryPause is how long the dispatcher waits before claiming again
// after its claim gave way to another writer.
const claimRetryPause = 20 * time.Millisecond

// idle waits d, or less when there may be work: a signal on wake or on
// also (nil: none).
func idle(ctx context.Context, d time.Duration, wake, also <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-also:
	case <-t.C:
	}
}

func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// runJob does the job's next step while keeping its lease alive.
func (p *Pipeline) runJob(ctx context.Context, l *lease) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.heartbeat(jctx, l, cancel)
	log := p.log.With("job", l.job.ID, "shop_id", l.job.ShopID, "state", l.job.State)
	err := p.step(jctx, l)
	switch {
	case err == nil:
	case errors.Is(err, ErrLeaseLost):
		log.Warn("lease lost; another worker has the job")
	case ctx.Err() != nil:
		log.Info("stopped mid-job; the lease will expire and another worker resumes it")
	default:
		log.Error("job step failed", "err", err)
	}
}

// heartbeat extends the lease while the worker is busy, and cancels the
// work when the lease is no longer certainly this worker's: taken over,
// not renewed because the database could not be written, or not renewed
// in time because the write hangs (a blackholed connection answers
// nothing, not even an error). A worker cut off from the database must
// stop changing Shopify, since once its lease runs out another worker
// takes the job.
//
// Each renewal has a third of the lease to finish; whatever the database
// does, the work stops once the last renewal known to have landed is
// about to run out, a safety margin before another replica may see the
// lease expired on its own clock.
func (p *Pipeline) heartbeat(ctx context.Context, l *lease, cancel context.CancelFunc) {
	every, margin := p.o.Lease/3, p.o.Lease/5
	// The lease is certainly this worker's until valid, on this process's
	// monotonic clock: from the claim, then from each renewal's start.
	valid := time.Now().Add(p.o.Lease - p.sinceClaim(l))
	watchdog := time.NewTimer(time.Until(valid) - margin)
	defer watchdog.Stop()
	t := time.NewTicker(every)
	defer t.Stop()
	var renewed chan error // the renewal in flight, nil when none
	var started time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-watchdog.C:
			p.log.Warn("lease not renewed in time; the job's work stops", "job", l.job.ID)
			cancel()
			return
		case <-t.C:
			if renewed != nil {
				continue // the last renewal has not answered yet
			}
			started = time.Now()
			done := make(chan error, 1)
			renewed = done
			go func() {
				rctx, stop := context.WithTimeout(ctx, every)
				defer stop()
				done <- p.renew(rctx, l)
			}()
		case err := <-renewed:
			renewed = nil
			if err != nil {
				if ctx.Err() == nil {
					p.log.Warn("lease not renewed; the job's work stops", "job", l.job.ID, "err", err)
				}
				cancel()
				return
			}
			valid = started.Add(p.o.Lease)
			watchdog.Reset(time.Until(valid) - margin)
		}
	}
}

// sinceClaim is how long ago, on the pipeline's clock, the lease was taken
// (0 when that is unknown or the clock moved back).
func (p *Pipeline) sinceClaim(l *lease) time.Duration {
	if l.job.LeaseUntil == nil {
		return 0
	}
	d := time.Duration(ms(p.now())-(*l.job.LeaseUntil-p.o.Lease.Milliseconds())) * time.Millisecond
	if d < 0 || d > p.o.Lease {
		// The pipeline's clock is injectable and may jump: count from now,
		// as the claim was handed over just before.
		return 0
	}
	return d
}

// renew pushes the lease (with the jobs taken along under it, and the
// product lock it holds, if any) to a full Lease from now.
func (p *Pipeline) renew(ctx context.Context, l *lease) error {
	until := ms(p.now().Add(p.o.Lease))
	ids := []uint64{l.job.ID}
	if along := l.along.Load(); along != nil {
		ids = append(ids, *along...)
	}
	res := p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("id IN ? AND lease_owner = ?", ids, l.token).
		Updates(map[string]any{"lease_until": until, "run_at": gorm.Expr("CASE WHEN run_at IS NULL THEN NULL ELSE ? END", until)})
	if res.Error != nil {
		return fmt.Errorf("renew lease of job %d: %w", l.job.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrLeaseLost
	}
	if err := p.o.DB.WithContext(ctx).Model(&models.ProductLock{}).Where("owner = ?", l.token).Update("until_ms", until).Error; err != nil {
		return fmt.Errorf("renew product lock of job %d: %w", l.job.ID, err)
	}
	return nil
}

// step dispatches on what the job needs next. The state and the recorded
// facts (ticket, delivery) decide, so a retried job resumes where it was.
func (p *Pipeline) step(ctx context.Context, l *lease) error {
	j := l.job
	switch {
	case j.State == models.JobDone && j.Step == StepRevertRequested:
		return p.withProduct(ctx, l, func() error { return p.revert(ctx, l) })
	case j.State == models.JobQueued || j.State == models.JobRetrying && j.Ticket == nil:
		return p.submit(ctx, l)
	case j.State == models.JobAwaitingRTB || j.State == models.JobRetrying && j.DeliveredAt == nil:
		return p.poll(ctx, l)
	case j.State == models.JobWritingBack || j.State == models.JobRetrying:
		return p.withProduct(ctx, l, func() error { return p.writeBack(ctx, l) })
	}
	// Nothing to do in this state (e.g. woken after it finished): let go.
	return l.release(ctx, map[string]any{}, nil, "")
}

// backoff is attempt⁴ seconds ± 10 %.
func backoff(attempt int) time.Duration {
	base := math.Pow(float64(attempt), 4)
	jitter := 1 + (mrand.Float64()*0.2 - 0.1)
	return time.Duration(base * jitter * float64(time.Second))
}

// retryable reports whether a failure is worth another attempt later.
func retryable(err error) bool {
	return rtb.IsRetryable(err) || admin.IsRetryable(err) || errors.Is(err, errNotReadyYet) || models.IsContention(err) || models.IsUnavailable(err)
}

var errNotReadyYet = errors.New("not ready yet")

// fail records a step failure: a retryable one is retried after a backoff
// until MaxAttempts, anything else (or the last attempt) fails the job
// with a message a merchant can act on.
func (p *Pipeline) fail(ctx context.Context, l *lease, err error, merchantMsg string) error {
	return p.failWith(ctx, l, err, merchantMsg, nil)
}

// failWith is fail that writes also's fields with the outcome, in the same
// write, so the job is never left with one and not the other.
func (p *Pipeline) failWith(ctx context.Context, l *lease, err error, merchantMsg string, also map[string]any) error {
	if errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
		return err
	}
	if errors.Is(err, admin.ErrIPNotAllowed) {
		return p.waitForAllowlist(ctx, l, err)
	}
	attempts := l.job.Attempts + 1
	if retryable(err) && attempts < p.o.MaxAttempts {
		next := p.now().Add(backoff(attempts))
		state := models.JobRetrying
		if l.job.State == models.JobAwaitingRTB || l.job.State == models.JobWritingBack {
			state = l.job.State
		}
		msg := fmt.Sprintf("attempt %d failed, next try at %s: %v", attempts, next.Format(time.RFC3339), err)
		return l.release(ctx, with(also, map[string]any{"state": state, "attempts": attempts, "error": merchantMsg + " We will try again automatically."}), ptr(ms(next)), msg)
	}
	reason := merchantMsg
	if retryable(err) {
		reason += fmt.Sprintf(" We gave up after %d attempts; use Retry to try again.", attempts)
	}
	return l.release(ctx, with(also, map[string]any{"state": models.JobFailed, "attempts": attempts, "error": reason}), nil, err.Error())
}

// with is fields with also's added.
func with(also, fields map[string]any) map[string]any {
	maps.Copy(fields, also)
	return fields
}
