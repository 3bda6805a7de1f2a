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
// ClockSync set, the pipeline reads the database's clock every ClockSync
// and keeps its own clock's offset to it: every replica then judges by the
// same clock, and a jump is undone at the next reading.

// maxClockRoundTrip discards a reading that took longer: half the round
// trip is the reading's error.
const maxClockRoundTrip = 250 * time.Millisecond

// now is the pipeline's clock: Now, moved by the offset to the database's
// clock last read (none without ClockSync).
func (p *Pipeline) now() time.Time {
	return p.o.Now().Add(time.Duration(p.clockOffset.Load())).UTC()
}

// syncClock reads the database's clock and keeps Now's offset to it. A
// reading that fails or takes too long changes nothing.
func (p *Pipeline) syncClock(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sent := p.o.Now()
	db, err := models.DBNow(ctx, p.o.DB)
	back := p.o.Now()
	if err != nil {
		p.log.Warn("read the database's clock", "err", err)
		return
	}
	trip := back.Sub(sent)
	if trip < 0 || trip > maxClockRoundTrip {
		return // slow, or Now moved meanwhile: the next reading will do
	}
	off := db.Sub(sent.Add(trip / 2))
	p.clockOffset.Store(int64(off))
	// An offset is reported once when it appears, grows or shrinks by a
	// second or more, not at every reading.
	if d := off - time.Duration(p.clockReported.Load()); d >= time.Second || d <= -time.Second {
		p.clockReported.Store(int64(off))
		p.log.Warn("this replica's clock is off the database's: leases, product locks and due times follow the database's clock",
			"offset", off.Round(time.Millisecond).String())
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
