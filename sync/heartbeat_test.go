package sync

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models/modelstest"
)

// A renewal whose database write hangs (a blackholed connection: no error,
// no answer) still ends the work before the lease can run out, so the
// worker stops changing Shopify before another replica may take the job.
// The hang either ends with the statement's deadline or ignores it, as a
// driver stuck in a read may.
func TestHeartbeatWhoseWriteHangsCancelsTheWork(t *testing.T) {
	for _, c := range []struct {
		name   string
		honour bool // the hung write gives up when its context ends
	}{{"until its deadline", true}, {"ignoring its context", false}} {
		t.Run(c.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				p, _ := queuedJob(t, db)
				p.o.Lease = 1500 * time.Millisecond
				claimed := time.Now()
				l, err := p.claim(context.Background())
				if err != nil || l == nil {
					t.Fatalf("claim: %v %v", l, err)
				}

				var blackhole atomic.Bool
				hung := make(chan struct{}, 1)
				unblock := make(chan struct{})
				defer close(unblock)
				err = db.Callback().Update().Before("*").Register("test:blackhole", func(tx *gorm.DB) {
					if !blackhole.Load() || tx.Statement.Table != "image_jobs" {
						return
					}
					select {
					case hung <- struct{}{}:
					default:
					}
					if !c.honour {
						<-unblock
						return
					}
					select {
					case <-tx.Statement.Context.Done():
						tx.AddError(tx.Statement.Context.Err())
					case <-unblock:
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				blackhole.Store(true)

				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go p.heartbeat(ctx, l, cancel)
				select {
				case <-ctx.Done():
				case <-time.After(3 * p.o.Lease):
					t.Fatal("the work went on while the lease's renewal hung")
				}
				if at := time.Since(claimed); at >= p.o.Lease {
					t.Fatalf("the work was cancelled %v after the claim, when the lease (%v) may already be another worker's", at, p.o.Lease)
				}
				select {
				case <-hung:
				default:
					t.Fatal("no renewal reached the database: the test did not test a hung write")
				}
			})
		})
	}
}
