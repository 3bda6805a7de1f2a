package sync

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models/modelstest"
)

// TestAReplicaWhoseClockJumpedTakesNoLiveLease: a replica whose clock
// jumped two hours ahead reads the database's clock and judges leases by
// it, so it leaves a job another replica's worker is on, says so in its
// log, and takes the job once its lease has run out by that clock.
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
		jumped.o.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		var logs bytes.Buffer
		jumped.log = slog.New(slog.NewTextHandler(&logs, nil))
		jumped.syncClock(ctx)
		if d := time.Until(jumped.now()); d < -time.Second || d > time.Second {
			t.Fatalf("after reading the database's clock the jumped replica's clock is %s off", d)
		}
		if !strings.Contains(logs.String(), "clock is off the database's") || !strings.Contains(logs.String(), "offset=-2h0m0") {
			t.Fatalf("the offset was not logged: %q", logs.String())
		}
		if taken, err := jumped.claim(ctx); err != nil || taken != nil {
			t.Fatalf("the jumped replica took a job whose lease is live: %v %v", taken, err)
		}
		// A reading repeated with the same offset logs nothing more.
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
// database's clock before any worker claims, and keeps reading it: a jump
// of Now after Start is undone by the next reading.
func TestStartReadsTheDatabaseClockFirst(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		p.o.Workers = 1
		p.o.ClockSync = 50 * time.Millisecond
		var jump atomic.Int64
		jump.Store(int64(3 * time.Hour))
		p.o.Now = func() time.Time { return time.Now().Add(time.Duration(jump.Load())) }
		p.Start(context.Background())
		defer p.Stop(context.Background())
		if d := time.Until(p.now()); d < -time.Second || d > time.Second {
			t.Fatalf("right after Start the pipeline's clock is %s off the database's", d)
		}
		jump.Store(int64(-40 * time.Minute))
		deadline := time.Now().Add(5 * time.Second)
		for {
			d := time.Until(p.now())
			if d > -time.Second && d < time.Second {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("5 s after Now jumped back the pipeline's clock is still %s off", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
