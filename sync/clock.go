package sync

import (
	"context"
	"time"

	"rtbshopify/models"
)

// The pipeline's clock is the database's. Leases, product locks and due
// times are instants that one replica writes and another judges: judged by
// each replica's own clock, a replica whose clock jumps (or drifts) ahead
// sees every live lease run out and takes products from workers still on
// them, and one behind leaves a dead worker's jobs waiting. So, with
// ClockSync set, the pipeline reads the database's clock at Start and every
// ClockSync, and in between advances the last reading by this process's
// monotonic clock, which a change of the system's wall clock does not move.
// Every replica then judges by the same clock, and a jump of a replica's
// wall clock changes nothing.

// maxClockRoundTrip discards a reading that took longer: half the round
// trip is the reading's error.
const maxClockRoundTrip = 250 * time.Millisecond

// clockReading is the database's clock as read at one instant of the
// monotonic clock.
type clockReading struct {
	db    time.Time     // the database's clock at mono
	mono  time.Time     // from time.Now: carries the monotonic reading
	ahead time.Duration // how far Now was ahead of the database's clock then
}

// now is the pipeline's clock: the database's clock as last read,
// advanced by the monotonic clock since; Now without ClockSync.
func (p *Pipeline) now() time.Time {
	if r := p.clock.Load(); r != nil {
		return r.db.Add(time.Since(r.mono)).UTC()
	}
	return p.o.Now().UTC()
}

// ClockOffset is how far Now (this replica's wall clock) is ahead of the
// database's clock (negative: behind), as last read; false before the
// first reading, and without ClockSync.
func (p *Pipeline) ClockOffset() (time.Duration, bool) {
	r := p.clock.Load()
	if r == nil {
		return 0, false
	}
	return r.ahead, true
}

// syncClock reads the database's clock. A reading that fails or takes too
// long changes nothing. Now's offset to the database's clock is logged
// when it reaches a second, and again when it changes by one.
func (p *Pipeline) syncClock(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sent := time.Now()
	db, err := models.DBNow(ctx, p.o.DB)
	back := time.Now()
	if err != nil {
		p.log.Warn("read the database's clock", "err", err)
		return
	}
	trip := back.Sub(sent)
	if trip > maxClockRoundTrip {
		// The next reading will do; until one does, the clock is Now.
		if p.clock.Load() == nil {
			p.log.Warn("the database's clock is not read yet: the reading took too long", "round_trip", trip.String())
		}
		return
	}
	off := p.o.Now().Sub(db.Add(trip / 2))
	p.clock.Store(&clockReading{db: db, mono: sent.Add(trip / 2), ahead: off})
	if d := off - time.Duration(p.clockReported.Load()); d >= time.Second || d <= -time.Second {
		p.clockReported.Store(int64(off))
		p.log.Warn("this replica's clock is off the database's: leases, product locks and due times follow the database's clock",
			"ahead_by", off.Round(time.Millisecond).String())
	}
}

// clockLoop reads the database's clock every ClockSync until ctx ends.
func (p *Pipeline) clockLoop(ctx context.Context) {
	t := time.NewTicker(p.o.ClockSync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.syncClock(ctx)
		}
	}
}
