// Package sync is the pipeline: durable image jobs from a product webhook to
// a processed image written back on the product, the workers that move
// them, the Remove The Background callback store, revert and retry, the
// reconciliation cron and the catalogue backfill.
//
// It shadows the standard library's sync; import it as
// imgsync "rtbshopify/sync".
package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	gosync "sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify/admin"
)

// RTB is the part of the Remove The Background client the pipeline uses.
type RTB interface {
	Templates(ctx context.Context, cred rtb.Credentials) ([]rtb.Template, error)
	SubmitImage(ctx context.Context, cred rtb.Credentials, req rtb.SubmitRequest) (string, error)
	Status(ctx context.Context, cred rtb.Credentials, ticket string) (*rtb.ImageStatus, error)
}

// Fetcher downloads an image through the download guard.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string) (*rtb.Image, error)
}

// TokenRefresher refreshes shops' access tokens before they expire.
type TokenRefresher interface {
	RefreshExpiring(ctx context.Context, within time.Duration) (int, error)
}

// Options are the pipeline's collaborators and tunables.
type Options struct {
	DB       *gorm.DB
	Sealer   *models.Sealer
	RTB      RTB
	Fetcher  Fetcher
	Admin    func(shop string) *admin.Client // one client per shop per unit of work
	Tokens   TokenRefresher                  // may be nil
	Inbox    Inbox                           // webhook deliveries to fan out; may be nil
	Signer   *rtb.TokenSigner
	AppURL   string
	Log      *slog.Logger
	Now      func() time.Time
	Workers  int
	Schedule Schedule

	// Lease is how long a claimed job is a worker's before another may
	// take it; a heartbeat renews it every third of that while the worker
	// is busy, so a dead process's jobs are taken over within one Lease.
	Lease time.Duration
	// Idle is how long a worker waits for work when it found none.
	Idle time.Duration
	// MaxAttempts caps retries of a step before the job fails.
	MaxAttempts int
	// MediaRecheck is when a media that was not READY yet is looked at again.
	MediaRecheck time.Duration
	// MediaWait bounds one wait for Shopify to process a media during a
	// write-back (0: the Admin client's own bound); past it the job backs
	// off and looks again.
	MediaWait time.Duration
	// MaxPerShop caps the jobs of one shop worked on at once, counted over
	// every replica's live leases: one setting for the whole deployment
	// (SHOP_CONCURRENCY); the default is 2.
	MaxPerShop int
	// FairQuantum spaces one shop's jobs in the claim order, so another
	// shop's new job goes ahead of a large import.
	FairQuantum time.Duration
	// Gather is how long an image back from Remove The Background waits,
	// once, while others of its product are still on their way, so that
	// they are written back together (0: 2 s; negative: no wait).
	Gather time.Duration
	// ClockSync is how often the pipeline reads the database's clock, which
	// it then keeps (advanced by the monotonic clock; Now is not used), so
	// that every replica judges leases, product locks and due times by one
	// clock (see clock.go). 0: never; the clock is Now.
	ClockSync time.Duration
}

// Pipeline runs image jobs.
type Pipeline struct {
	o   Options
	log *slog.Logger
	// wake wakes the dispatcher: jobs may be due. It is the dispatcher's
	// alone, so no other loop takes a wake-up meant for it.
	wake chan struct{}
	// backfillWake wakes the backfill runner: a backfill started.
	backfillWake chan struct{}
	// inboxWake wakes the webhook fan-out.
	inboxWake chan struct{}
	stop      context.CancelFunc
	stopClock context.CancelFunc // ends clockLoop: Stop ends it first, while workers finish their steps
	wg        gosync.WaitGroup
	cron      *cronRunner
	nodeID    string

	draining atomic.Bool // set by Stop: finish the current job, take no new one

	promotedAt atomic.Int64 // unix ns of the last look for jobs that came due
	// clock is the database's clock as last read (nil: none read, or no
	// ClockSync); clockReported the offset last logged, in ns.
	clock         atomic.Pointer[clockReading]
	clockReported atomic.Int64
	// jobs hands claimed jobs to idle workers; idle counts them, freed
	// wakes the dispatcher when one becomes idle.
	jobs  chan *lease
	idleN atomic.Int64
	freed chan struct{}
}

// New builds a pipeline; Start runs it.
func New(o Options) *Pipeline {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Lease == 0 {
		o.Lease = 30 * time.Second
	}
	if o.Idle == 0 {
		o.Idle = time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 8
	}
	if o.MediaRecheck == 0 {
		o.MediaRecheck = 30 * time.Second
	}
	if o.MaxPerShop <= 0 {
		o.MaxPerShop = 2
	}
	if o.FairQuantum == 0 {
		o.FairQuantum = time.Second
	}
	if o.Gather == 0 {
		o.Gather = 2 * time.Second
	}
	o.Schedule = o.Schedule.withDefaults()
	b := make([]byte, 6)
	rand.Read(b)
	return &Pipeline{o: o, log: o.Log, wake: make(chan struct{}, 1), backfillWake: make(chan struct{}, 1), inboxWake: make(chan struct{}, 1), nodeID: hex.EncodeToString(b),
		jobs: make(chan *lease), freed: make(chan struct{}, 1)}
}

// Notify wakes an idle worker: there may be work due now.
func (p *Pipeline) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start runs the workers, the webhook fan-out, the backfill runner and
// the cron until Stop.
func (p *Pipeline) Start(ctx context.Context) {
	p.draining.Store(false)
	ctx, p.stop = context.WithCancel(context.WithoutCancel(ctx))
	if p.o.ClockSync > 0 {
		// Read once before any claim, then every ClockSync.
		p.syncClock(ctx)
		var clockCtx context.Context
		clockCtx, p.stopClock = context.WithCancel(ctx)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.clockLoop(clockCtx)
		}()
	}
	for i := range p.o.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.workLoop(ctx, i)
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.dispatch(ctx)
	}()
	for range p.inboxLoops() {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.inboxLoop(ctx)
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.backfillLoop(ctx)
	}()
	p.cron = p.startCron(ctx)
}

// StopCron stops scheduling cron runs and waits for a running one.
func (p *Pipeline) StopCron(ctx context.Context) {
	if p.cron != nil {
		p.cron.stop(ctx)
	}
}

// Stop stops the workers: a job in flight finishes its current step
// within ctx's budget, and no worker starts a submission once Stop began.
// When ctx ends first the steps are cancelled: a submission that had not
// left goes back to the queue, one that may have arrived is recorded as
// unconfirmed, and any other step is abandoned with its lease, which
// expires and lets another worker take it.
func (p *Pipeline) Stop(ctx context.Context) {
	// Workers stop taking jobs at once, while the cron finishes its run.
	// The loops waiting for work are woken to see it now, not after Idle.
	p.draining.Store(true)
	if p.stopClock != nil {
		// The clock keeps its last reading while the workers finish.
		p.stopClock()
	}
	p.Notify()
	p.NotifyInbox()
	p.notifyBackfill()
	p.StopCron(ctx)
	if p.stop == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	p.stop()
	<-done
}

// Errors the API maps to answers.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrBadCursor is a jobs cursor this app did not hand out.
	ErrBadCursor = errors.New("bad cursor")
)

// ConflictError says why an action does not apply to a job in its state.
type ConflictError struct{ Message string }

func (e *ConflictError) Error() string { return e.Message }
func (e *ConflictError) Unwrap() error { return ErrConflict }

// SetTokens sets the token refresher used by the cron (it is built after
// the pipeline, which it needs as its enqueuer).
func (p *Pipeline) SetTokens(t TokenRefresher) { p.o.Tokens = t }
