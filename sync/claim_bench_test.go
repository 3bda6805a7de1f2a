package sync

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify"
	"rtbshopify/sync/e2e/benchrec"
)

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkClaim drains 20,000 due jobs of 50 shops with 3 pipelines (3
// connection pools, as 3 replicas) on one database, 4 workers each
// (BENCH_CLAIM_JOBS, BENCH_CLAIM_PIPELINES, BENCH_CLAIM_WORKERS change
// them); each
// worker claims a job and releases it done, as fast as it can. Meanwhile
// webhooks arrive at the webhook receiver on the same database at 200/s.
// It prints claims/s, claim latency, the webhooks' p99 and any deadlock.
// MariaDB when TEST_MYSQL_DSN is set, else SQLite (one process's single
// connection shared by the three).
func BenchmarkClaim(b *testing.B) {
	dialect := "sqlite"
	if os.Getenv(modelstest.MySQLEnv) != "" {
		dialect = "mysql"
	}
	nJobs, nPipes, nWorkers := 20000, 3, 4
	for name, v := range map[string]*int{"BENCH_CLAIM_JOBS": &nJobs, "BENCH_CLAIM_PIPELINES": &nPipes, "BENCH_CLAIM_WORKERS": &nWorkers} {
		if e := os.Getenv(name); e != "" {
			fmt.Sscan(e, v)
		}
	}
	for range b.N {
		d := modelstest.Open(b, dialect)
		seed := New(Options{DB: d.DB, Schedule: Schedule{Disabled: true}})
		now := time.Now().UTC()
		var shops []uint64
		for i := range 50 {
			s := models.Shop{Domain: fmt.Sprintf("claim-%02d.myshopify.com", i), State: models.ShopInstalled, CreatedAt: now, UpdatedAt: now}
			if err := d.DB.Create(&s).Error; err != nil {
				b.Fatal(err)
			}
			shops = append(shops, s.ID)
		}
		jobs := make([]models.ImageJob, nJobs)
		for i := range jobs {
			k := int64(i/50) * seed.o.FairQuantum.Milliseconds()
			jobs[i] = models.ImageJob{ShopID: shops[i%50], ProductID: fmt.Sprint("gid://shopify/Product/", i), MediaID: fmt.Sprint("gid://shopify/MediaImage/", i),
				State: models.JobQueued, RunAt: ptr(ms(now)), FairKey: k, QueueKey: &k, CreatedAt: now, UpdatedAt: now}
		}
		if err := d.DB.CreateInBatches(jobs, 1000).Error; err != nil {
			b.Fatal(err)
		}
		var pipes []*Pipeline
		for range nPipes {
			db := d.DB
			if dialect == "mysql" {
				var err error
				if db, err = models.Open(context.Background(), d.URL, nil); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { models.Close(db) })
			}
			pipes = append(pipes, New(Options{DB: db, Schedule: Schedule{Disabled: true}, MaxPerShop: 2}))
		}

		// The webhook receiver, on its own pool, over loopback HTTP.
		cfg := config.Config{ShopifyAPIKey: "k", ShopifyAPISecret: "bench-secret"}
		wdb := d.DB
		if dialect == "mysql" {
			var err error
			if wdb, err = models.Open(context.Background(), d.URL, nil); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { models.Close(wdb) })
		}
		shop := shopify.New(cfg, wdb, nil, seed, nil)
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		shop.Register(app)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go app.Listener(ln)
		b.Cleanup(func() { app.Shutdown() })

		ctx, stop := context.WithCancel(context.Background())
		var hookLat []time.Duration
		var hookMu gosync.Mutex
		var hookFail atomic.Int64
		hookErrs := map[string]int{}
		var hooks gosync.WaitGroup
		for c := range 4 {
			hooks.Add(1)
			go func() {
				defer hooks.Done()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				tick := time.NewTicker(20 * time.Millisecond) // 50/s per connection
				defer tick.Stop()
				for n := 0; ; n++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					body := []byte(fmt.Sprintf(`{"id":%d,"title":"T","media":[]}`, c*1_000_000+n+1)) // a product id is never 0
					m := hmac.New(sha256.New, []byte(cfg.ShopifyAPISecret))
					m.Write(body)
					req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/webhooks", bytes.NewReader(body))
					req.Header.Set("X-Shopify-Topic", "products/update")
					req.Header.Set("X-Shopify-Shop-Domain", "claim-00.myshopify.com")
					req.Header.Set("X-Shopify-Webhook-Id", fmt.Sprint("claim-bench-", c, "-", n))
					req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(m.Sum(nil)))
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil || resp.StatusCode != 200 {
						hookFail.Add(1)
						why := fmt.Sprint(err)
						if resp != nil {
							why = resp.Status
							resp.Body.Close()
						}
						hookMu.Lock()
						hookErrs[why]++
						hookMu.Unlock()
						continue
					}
					resp.Body.Close()
					hookMu.Lock()
					hookLat = append(hookLat, time.Since(t0))
					hookMu.Unlock()
				}
			}()
		}

		var claimed atomic.Int64
		var mu gosync.Mutex
		var lat []time.Duration
		errs := map[string]int{}
		var wg gosync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		// Each pipeline claims for its idle workers at once, as its
		// dispatcher does, and its workers release what they get.
		for _, p := range pipes {
			jobsCh := make(chan *lease)
			var idle atomic.Int64
			var workers gosync.WaitGroup
			for range nWorkers {
				workers.Add(1)
				go func() {
					defer workers.Done()
					for {
						idle.Add(1)
						l, ok := <-jobsCh
						idle.Add(-1)
						if !ok {
							return
						}
						if err := l.release(context.Background(), map[string]any{"state": models.JobDone}, nil, ""); err != nil {
							mu.Lock()
							errs["release: "+err.Error()]++
							mu.Unlock()
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer workers.Wait()
				defer close(jobsCh)
				empty := 0
				for empty < 20 {
					want := int(idle.Load())
					if want == 0 {
						time.Sleep(100 * time.Microsecond)
						continue
					}
					t0 := time.Now()
					ls, err := p.claimN(context.Background(), want)
					d := time.Since(t0)
					if err != nil {
						mu.Lock()
						errs[strings.SplitN(err.Error(), ":", 2)[0]]++
						mu.Unlock()
						continue
					}
					if len(ls) == 0 {
						empty++
						time.Sleep(5 * time.Millisecond)
						continue
					}
					empty = 0
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					claimed.Add(int64(len(ls)))
					for _, l := range ls {
						jobsCh <- l
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		stop()
		hooks.Wait()
		var left int64
		d.DB.Model(&models.ImageJob{}).Where("state = ?", models.JobQueued).Count(&left)
		if left != 0 || claimed.Load() != int64(len(jobs)) {
			b.Fatalf("%d jobs claimed, %d still queued, of %d", claimed.Load(), left, len(jobs))
		}
		deadlocks := 0
		for e, n := range errs {
			if strings.Contains(e, "1213") || strings.Contains(strings.ToLower(e), "deadlock") {
				deadlocks += n
			}
		}
		rate := float64(claimed.Load()) / elapsed.Seconds()
		b.ReportMetric(rate, "claims/s")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "claim-p99-ms")
		b.ReportMetric(float64(percentile(hookLat, 0.99).Microseconds())/1000, "webhook-p99-ms")
		b.Logf("%s: %d jobs of 50 shops drained by %d pipelines × %d workers in %s: %.0f claims/s (each followed by its release); claim calls (several jobs each) p50 %s p99 %s; %d webhooks meanwhile, p50 %s p99 %s, %d failed; %d deadlocks; claim errors %v",
			dialect, nJobs, nPipes, nWorkers, elapsed.Round(time.Millisecond), rate, percentile(lat, 0.5).Round(10*time.Microsecond), percentile(lat, 0.99).Round(10*time.Microsecond),
			len(hookLat), percentile(hookLat, 0.5).Round(10*time.Microsecond), percentile(hookLat, 0.99).Round(10*time.Microsecond), hookFail.Load(), deadlocks, errs)
		if len(hookErrs) > 0 {
			b.Logf("webhooks that failed: %v", hookErrs)
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		err = benchrec.Record(benchrec.Result{Benchmark: "BenchmarkClaim", Database: dialect,
			Case: fmt.Sprintf("%d due jobs, 50 shops, %d pipelines × %d workers", nJobs, nPipes, nWorkers),
			Note: fmt.Sprintf("%d webhooks meanwhile, %d failed", len(hookLat), hookFail.Load()),
			Figures: []benchrec.Figure{{Name: "claims/s", Value: rate}, {Name: "claim p99", Value: ms(percentile(lat, 0.99)), Unit: "ms"},
				{Name: "webhook p99", Value: ms(percentile(hookLat, 0.99)), Unit: "ms"}, {Name: "deadlocks", Value: float64(deadlocks)}}})
		if err != nil {
			b.Fatal(err)
		}
	}
}
