package admin

import (
	"context"
	"math"
	"sync"
	"time"
)

// Shopify's Standard plan numbers, assumed until the first answer tells the real ones: starting
// optimistic would let a burst of concurrent first calls throttle before anything is known.
const (
	defaultBucketMax   = 1000.0
	defaultRestoreRate = 100.0
	defaultCost        = 50.0
)

// Budget mirrors one shop's GraphQL cost bucket on the app side so that callers wait *before*
// Shopify throttles them. Shopify rate-limits per app and shop, so every Client of a shop must
// share one Budget (see Budgets). It is safe for concurrent use.
type Budget struct {
	mu        sync.Mutex
	max       float64
	available float64 // as last reported, at time `at`
	rate      float64 // points restored per second
	at        time.Time
	reserved  float64 // points promised to requests in flight
	lastCost  map[string]float64
	now       func() time.Time
	// processing is how long the shop's new media have lately taken to be
	// READY (a moving average), so that a wait for one first looks when it
	// is likely done: every look costs points.
	processing time.Duration
}

// NewBudget returns a Budget that assumes a full Standard bucket until Shopify reports otherwise.
func NewBudget() *Budget {
	return &Budget{
		max: defaultBucketMax, available: defaultBucketMax, rate: defaultRestoreRate,
		lastCost: map[string]float64{}, now: time.Now,
	}
}

// projected returns the points expected to be available now, net of reservations.
func (b *Budget) projected(now time.Time) float64 {
	avail := b.available
	if !b.at.IsZero() {
		avail += b.rate * now.Sub(b.at).Seconds()
	}
	return math.Min(b.max, avail) - b.reserved
}

// estimate is the expected requested cost of an operation: what Shopify asked for it last time.
func (b *Budget) estimate(op string) float64 {
	if c, ok := b.lastCost[op]; ok {
		return c
	}
	return defaultCost
}

// reserve blocks until the bucket is projected to cover the operation's cost, then holds those
// points until release. Holding them is what stops N concurrent callers from all seeing the
// same free points and overdrawing the bucket together. It returns the time spent waiting.
func (b *Budget) reserve(ctx context.Context, op string) (cost float64, waited time.Duration, err error) {
	start := time.Now()
	for {
		b.mu.Lock()
		cost = math.Min(b.estimate(op), b.max)
		now := b.now()
		p := b.projected(now)
		if p >= cost {
			b.reserved += cost
			b.mu.Unlock()
			return cost, time.Since(start), nil
		}
		rate := b.rate
		if rate <= 0 {
			rate = defaultRestoreRate
		}
		wait := time.Duration((cost - p) / rate * float64(time.Second))
		b.mu.Unlock()
		// Never sleep for less than a millisecond: a burst of waiters would otherwise spin.
		if err := sleepCtx(ctx, max(wait, time.Millisecond)); err != nil {
			return 0, time.Since(start), err
		}
	}
}

// throttleStatus is extensions.cost of a GraphQL answer.
type throttleStatus struct {
	MaximumAvailable   float64 `json:"maximumAvailable"`
	CurrentlyAvailable float64 `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"`
}

type costExtension struct {
	RequestedQueryCost float64         `json:"requestedQueryCost"`
	ActualQueryCost    *float64        `json:"actualQueryCost"`
	ThrottleStatus     *throttleStatus `json:"throttleStatus"`
}

// release returns a reservation and records what Shopify reported. The reported
// currentlyAvailable already includes this request's charge, so the reservation simply ends.
func (b *Budget) release(op string, reserved float64, c *costExtension) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved = math.Max(0, b.reserved-reserved)
	if c == nil {
		return
	}
	if c.RequestedQueryCost > 0 {
		b.lastCost[op] = c.RequestedQueryCost
	}
	if ts := c.ThrottleStatus; ts != nil && ts.MaximumAvailable > 0 {
		b.max, b.available, b.rate, b.at = ts.MaximumAvailable, ts.CurrentlyAvailable, ts.RestoreRate, b.now()
	}
}

// waitFor is how long until the bucket holds cost points, from the latest known status; used to
// pace a retry after a THROTTLED answer that carried no Retry-After.
func (b *Budget) waitFor(op string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	cost := math.Min(b.estimate(op), b.max)
	p := b.projected(b.now())
	if p >= cost || b.rate <= 0 {
		return 0
	}
	return time.Duration((cost - p) / b.rate * float64(time.Second))
}

// Available reports the points projected to be free now (after reservations), for diagnostics.
func (b *Budget) Available() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.projected(b.now())
}

// Budgets hands out one Budget per shop. The zero value is ready to use.
type Budgets struct {
	mu sync.Mutex
	m  map[string]*Budget
}

// For returns the shop's Budget, creating it on first use.
func (r *Budgets) For(shop string) *Budget {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*Budget{}
	}
	b, ok := r.m[shop]
	if !ok {
		b = NewBudget()
		r.m[shop] = b
	}
	return b
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// firstLook is how long a wait for media just given bytes should let pass
// before its first look: as long as they have lately taken (a look too
// soon costs a point, one too late only time), at least floor, at most
// ceiling.
func (b *Budget) firstLook(floor, ceiling time.Duration) time.Duration {
	b.mu.Lock()
	d := b.processing
	b.mu.Unlock()
	return min(max(d, floor), ceiling)
}

// processed notes that media took d to be READY (or FAILED) after they were
// given bytes, as seen by the look that found them done.
func (b *Budget) processed(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.processing == 0 {
		b.processing = d
		return
	}
	b.processing += (d - b.processing) / 5
}
