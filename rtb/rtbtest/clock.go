package rtbtest

import (
	"sync"
	"time"
)

// Clock is a settable clock for driving the fake's production stages without
// waiting: pass clock.Now as Options.Now, then Advance and call Server.Tick.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading start (the zero time means 2026-01-01 UTC).
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Clock{now: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
