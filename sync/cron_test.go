package sync

import (
	"context"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestCronRunsOncePerPeriodAcrossReplicas: replicas whose schedulers fire
// at the same moment run a cron job once per period between them.
func TestCronRunsOncePerPeriodAcrossReplicas(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			u := modelstest.Open(t, name).URL
			// Each run lasts a while, so the replicas' attempts overlap.
			var runs atomic.Int32
			job := CronJob{Name: "probe", Spec: "@every 5m", Run: func(context.Context) error {
				runs.Add(1)
				time.Sleep(100 * time.Millisecond)
				return nil
			}}
			sched, _ := cron.ParseStandard(job.Spec)
			const replicas = 3
			var pipelines []*Pipeline
			for range replicas {
				db, err := models.Open(context.Background(), u, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { models.Close(db) })
				p := newTestPipeline(t, db)
				p.o.Now = func() time.Time { return time.Date(2026, 11, 27, 10, 7, 0, 0, time.UTC) }
				pipelines = append(pipelines, p)
			}
			// The replicas' schedulers fire at the same moment.
			start := make(chan struct{})
			var wg gosync.WaitGroup
			ran := make(chan bool, replicas)
			for _, p := range pipelines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					did, err := p.RunOnce(context.Background(), job, sched)
					if err != nil {
						t.Error(err)
					}
					ran <- did
				}()
			}
			close(start)
			wg.Wait()
			close(ran)
			claimed := 0
			for did := range ran {
				if did {
					claimed++
				}
			}
			if runs.Load() != 1 || claimed != 1 {
				t.Fatalf("the job ran %d times in one period (%d replicas said they ran it), want 1", runs.Load(), claimed)
			}
		})
	}
}
