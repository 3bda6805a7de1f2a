package sync

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models/modelstest"
)

// offDatabase fails the test unless the pipeline's clock reads as the
// database's (this machine's: the test databases run here).
func offDatabase(t *testing.T, p *Pipeline, when string) {
	t.Helper()
	if d := time.Until(p.now()); d < -time.Second || d > time.Second {
		t.Fatalf("%s the pipeline's clock is %s off the database's", when, d)
	}
}

// TestAReplicaWhoseClockJumpedTakesNoLiveLease: a replica whose wall clock
// jumped two hours ahead reads the database's clock and judges leases by
// it, so it leaves a job another replica's worker is on, says so in its
// log, and takes the job once its lease has run out by that clock. A
// further jump between two readings changes nothing.
func TestAReplicaWhoseClockJumpedTakesNoLiveLease(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		p, _ := queuedJob(t, db)
		p.o.Now = time.Now
		p.o.Lease = 2 * time.Second
		l, err := p.claim(ctx)
		if err != nil || l == nil {
			t.Fatalf("claim: %v %v", l, err)
		}

		jumped := newTestPipeline(t, db)
		var wall atomic.Int64
		wall.Store(int64(2 * time.Hour))
		jumped.o.Now = func() time.Time { return time.Now().Add(time.Duration(wall.Load())) }
		var logs bytes.Buffer
		jumped.log = slog.New(slog.NewTextHandler(&logs, nil))
		jumped.syncClock(ctx)
		offDatabase(t, jumped, "after reading the database's clock")
		if off, ok := jumped.ClockOffset(); !ok || off < 2*time.Hour-time.Second || off > 2*time.Hour+time.Second {
			t.Fatalf("ClockOffset is %s (%v), want 2h ahead", off, ok)
		}
		if !strings.Contains(logs.String(), "clock is off the database's") || !regexp.MustCompile(`ahead_by=(2h0m0|1h59m59\.9)`).MatchString(logs.String()) {
			t.Fatalf("the offset was not logged: %q", logs.String())
		}
		if taken, err := jumped.claim(ctx); err != nil || taken != nil {
			t.Fatalf("the jumped replica took a job whose lease is live: %v %v", taken, err)
		}
		wall.Store(int64(5 * time.Hour))
		offDatabase(t, jumped, "after a further jump before the next reading")
		if taken, err := jumped.claim(ctx); err != nil || taken != nil {
			t.Fatalf("after a further jump the replica took a job whose lease is live: %v %v", taken, err)
		}
		// A reading with the same offset logs nothing more.
		wall.Store(int64(2 * time.Hour))
		logs.Reset()
		jumped.syncClock(ctx)
		if logs.Len() != 0 {
			t.Fatalf("an unchanged offset was logged again: %q", logs.String())
		}

		// By the database's clock the lease runs out, and the job is taken.
		time.Sleep(p.o.Lease + 200*time.Millisecond)
		taken, err := jumped.claim(ctx)
		if err != nil || taken == nil || taken.job.ID != l.job.ID {
			t.Fatalf("once the lease ran out: %v %v", taken, err)
		}
	})
}

// TestStartReadsTheDatabaseClockFirst: with ClockSync set, Start reads the
// database's clock before any worker claims, and reads it again every
// ClockSync: a new offset of the wall clock shows at the next reading.
func TestStartReadsTheDatabaseClockFirst(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		p.o.Workers = 1
		p.o.ClockSync = 50 * time.Millisecond
		var wall atomic.Int64
		wall.Store(int64(3 * time.Hour))
		p.o.Now = func() time.Time { return time.Now().Add(time.Duration(wall.Load())) }
		p.Start(context.Background())
		defer p.Stop(context.Background())
		offDatabase(t, p, "right after Start")
		wall.Store(int64(-40 * time.Minute))
		deadline := time.Now().Add(5 * time.Second)
		for {
			off, _ := p.ClockOffset()
			if off > -40*time.Minute-time.Second && off < -40*time.Minute+time.Second {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("5 s after the wall clock jumped back no reading saw it: offset %s", off)
			}
			time.Sleep(10 * time.Millisecond)
		}
		offDatabase(t, p, "after the jump")
	})
}
