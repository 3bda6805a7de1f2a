package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
	"time"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
	"rtbshopify/sync/e2e/benchrec"
)

// benchDB is MariaDB when TEST_MYSQL_DSN is set (the production case),
// else SQLite.
func benchDB(b *testing.B) modelstest.DB {
	if os.Getenv(modelstest.MySQLEnv) != "" {
		return modelstest.Open(b, "mysql")
	}
	return modelstest.Open(b, "sqlite")
}

// benchSize is the whole number in the environment variable name, or def.
// Benchmarks size their work with these, not with b.N: run them with
// -benchtime 1x.
func benchSize(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}

// record adds one case's figures to the run's benchmark report (see
// benchrec): pairs of name and value, each name with its unit after a
// space ("req/s", "p99 ms").
func record(b *testing.B, c, database, note string, figures ...benchrec.Figure) {
	b.Helper()
	if err := benchrec.Record(benchrec.Result{Benchmark: strings.SplitN(b.Name(), "/", 2)[0], Case: c, Database: database, Figures: figures, Note: note}); err != nil {
		b.Fatal(err)
	}
}

// fig is one figure for record.
func fig(name string, v float64, unit string) benchrec.Figure {
	return benchrec.Figure{Name: name, Value: v, Unit: unit}
}

// BenchmarkCallback measures the Remove The Background callback route:
// token check, body parsing and the database work, for each of its two
// paths on jobs made for it. "first" is a job's first callback, each on a
// fresh job: it is recorded in a transaction (callback time, event, wake).
// "duplicate" is the service's retries of a callback already recorded,
// answered from one read. "http" goes over loopback HTTP with the load
// generator in the same process; "handler" calls the Fiber handler
// directly, which leaves the machine's cores to the app and the database.
// BENCH_CALLBACKS (2,000) callbacks per case, each on its own job.
func BenchmarkCallback(b *testing.B) {
	db := benchDB(b)
	h := newHarness(b, db.DB, harnessOptions{noStart: true})
	var shop models.Shop
	db.DB.Take(&shop)
	var made atomic.Int64
	// jobs makes n jobs awaiting Remove The Background (called back
	// already, when recorded) and returns their callback paths and bodies.
	jobs := func(b *testing.B, n int, recorded bool) (ids []uint64, paths, bodies []string) {
		b.Helper()
		now := time.Now().UTC()
		rows := make([]models.ImageJob, n)
		for i := range rows {
			k := made.Add(1)
			ticket := fmt.Sprintf("ticket-%d", k)
			rows[i] = models.ImageJob{ShopID: shop.ID, ProductID: "gid://shopify/Product/1", MediaID: fmt.Sprint("gid://shopify/MediaImage/", k),
				State: models.JobAwaitingRTB, Ticket: &ticket, CreatedAt: now, UpdatedAt: now}
			if recorded {
				rows[i].CallbackAt = &now
			}
		}
		if err := db.DB.CreateInBatches(rows, 500).Error; err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			ids = append(ids, r.ID)
			paths = append(paths, "/rtb/callback/"+h.app.Signer.Token(r.ID))
			bodies = append(bodies, url.Values{"imageTicket": {*r.Ticket}, "ProcessedImageURL": {"https://files.example/x.png"}}.Encode())
		}
		return ids, paths, bodies
	}
	// run makes len(paths) calls of the route from 8 goroutines per core,
	// each with the next of paths.
	run := func(b *testing.B, transport, path string, paths, bodies []string, call func(path, body string) bool) {
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 8 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(len(paths)) {
						return
					}
					if !call(paths[i], bodies[i]) {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		if failed.Load() > 0 {
			b.Fatalf("%d callbacks failed", failed.Load())
		}
		rps := float64(len(paths)) / elapsed.Seconds()
		b.ReportMetric(rps, "requests/s")
		b.Logf("%s, %s path: %d callbacks in %s: %.0f requests/s", db.Name, path, len(paths), elapsed.Round(time.Millisecond), rps)
		record(b, transport+", "+path+" callback", db.Name, "", fig("requests/s", rps, ""))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	handler := h.app.HTTP.Handler()
	transports := []struct {
		name string
		call func(path, body string) bool
	}{
		{"http", func(path, body string) bool {
			resp, err := client.Post(h.url+path, "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body) // lets the connection be reused
			resp.Body.Close()
			return resp.StatusCode == 200
		}},
		{"handler", func(path, body string) bool {
			var fc fasthttp.RequestCtx
			fc.Request.Header.SetMethod("POST")
			fc.Request.SetRequestURI(path)
			fc.Request.Header.SetContentType("application/x-www-form-urlencoded")
			fc.Request.SetBodyString(body)
			handler(&fc)
			return fc.Response.StatusCode() == 200
		}},
	}
	n := benchSize(b, "BENCH_CALLBACKS", 2000)
	for _, tr := range transports {
		b.Run(tr.name+"/first", func(b *testing.B) {
			ids, paths, bodies := jobs(b, n, false)
			run(b, tr.name, "first", paths, bodies, tr.call)
			// Every call took the first-callback path: each job has its
			// callback recorded and exactly one event for it.
			var recorded, events int64
			db.DB.Model(&models.ImageJob{}).Where("id IN ? AND callback_at IS NOT NULL", ids).Count(&recorded)
			db.DB.Model(&models.JobEvent{}).Where("job_id IN ? AND message = ?", ids, "callback received").Count(&events)
			if int(recorded) != n || int(events) != n {
				b.Fatalf("%d calls recorded %d callbacks and %d events, want one each", n, recorded, events)
			}
		})
		b.Run(tr.name+"/duplicate", func(b *testing.B) {
			ids, paths, bodies := jobs(b, n, true)
			run(b, tr.name, "duplicate", paths, bodies, tr.call)
			var events int64
			db.DB.Model(&models.JobEvent{}).Where("job_id IN ?", ids).Count(&events)
			if events != 0 {
				b.Fatalf("duplicate callbacks wrote %d events, want none", events)
			}
		})
	}
}

// BenchmarkWriteBackRate runs 100 images a shop through the whole
// pipeline against the fake store at the Standard rate limit (a
// 1,000-point bucket restoring 100 points/s per shop) and reports how much
// of the rate-limit ceiling the app used and how many calls were throttled,
// for 5 shops and for 10. At 5 the figure is the app's use of each shop's
// bucket; 10 shops need more than this 2-core machine gives the app, the
// fake store and MariaDB together. BENCH_IMAGES_PER_SHOP changes the 100
// images a shop, BENCH_WRITEBACK_SHOPS the shop counts ("5,10") and
// BENCH_SHOP_CONCURRENCY the 2 jobs of a shop worked on at once
// (SHOP_CONCURRENCY).
func BenchmarkWriteBackRate(b *testing.B) {
	counts := []int{5, 10}
	if v := os.Getenv("BENCH_WRITEBACK_SHOPS"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("BENCH_WRITEBACK_SHOPS=%q: want whole numbers above 0, comma-separated", v)
			}
			counts = append(counts, n)
		}
	}
	for _, shops := range counts {
		b.Run(fmt.Sprintf("shops=%d", shops), func(b *testing.B) { writeBackRate(b, shops) })
	}
}

func writeBackRate(b *testing.B, shops int) {
	perShop := benchSize(b, "BENCH_IMAGES_PER_SHOP", 100)
	perShopJobs := benchSize(b, "BENCH_SHOP_CONCURRENCY", 2)
	for range b.N {
		db := benchDB(b)
		h := newHarness(b, db.DB, harnessOptions{noStart: true, tune: func(o *imgsync.Options) { o.Workers = 24; o.MaxPerShop = perShopJobs }})
		domains := []string{shopDomain}
		for i := 1; i < shops; i++ {
			d := fmt.Sprintf("bench-%02d.myshopify.com", i)
			h.installShop(d)
			domains = append(domains, d)
		}
		var products []struct{ shop, id string }
		for _, d := range domains {
			for i := range perShop {
				rec, err := h.store.CreateProduct(d, oneImage(fmt.Sprint(d[:8], i)))
				if err != nil {
					b.Fatal(err)
				}
				products = append(products, struct{ shop, id string }{d, rec.ID})
			}
		}
		time.Sleep(200 * time.Millisecond) // media READY
		h.store.ResetRequests()
		h.start()
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, p := range products {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", p.shop, "products/create", h.store.ProductWebhookPayload(p.shop, p.id))
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		total := shops * perShop
		for {
			var done int64
			db.DB.Model(&models.ImageJob{}).Where("state = ?", models.JobDone).Count(&done)
			if int(done) == total {
				break
			}
			if time.Since(start) > 30*time.Minute {
				b.Fatalf("only %d of %d written back", done, total)
			}
			time.Sleep(100 * time.Millisecond)
		}
		end := time.Now()
		elapsed := end.Sub(start)
		reqs := h.store.Requests()
		var points float64
		calls, throttled := 0, 0
		for _, r := range reqs {
			if r.Operation == "" {
				continue
			}
			calls++
			if r.Throttled {
				throttled++
			} else {
				points += r.ActualCost
			}
		}
		// The most Shopify could have granted during the run: each shop's
		// full bucket at the start plus its restore rate over the run.
		ceiling := float64(shops) * (1000 + 100*elapsed.Seconds())
		wbPoints, wbCeiling, ownCeiling := writeBackPhase(reqs, end, 1000, 100)
		b.ReportMetric(float64(total)/elapsed.Seconds(), "images/s")
		b.ReportMetric(100*points/ceiling, "%ceiling")
		b.ReportMetric(100*wbPoints/wbCeiling, "%ceiling-write-back")
		b.ReportMetric(100*wbPoints/ownCeiling, "%ceiling-own-write-back")
		b.ReportMetric(100*float64(throttled)/float64(max(calls, 1)), "%throttled")
		b.Logf("%s: %d images, %d shops, %s: %.2f images/s; %.0f points used of a %.0f-point ceiling over the run (%.1f%%), %.0f of %.0f from each shop's first write-back on (%.1f%%), of %.0f from each shop's first write-back to its last call (%.1f%%); %d GraphQL calls, %d throttled (%.2f%%), %.0f points per image",
			db.Name, total, shops, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), points, ceiling, 100*points/ceiling,
			wbPoints, wbCeiling, 100*wbPoints/wbCeiling, ownCeiling, 100*wbPoints/ownCeiling,
			calls, throttled, 100*float64(throttled)/float64(max(calls, 1)), points/float64(total))
		record(b, fmt.Sprintf("%d images, %d shops, 100 points/s each, %d jobs per shop at once", total, shops, perShopJobs), db.Name, "",
			fig("images/s", float64(total)/elapsed.Seconds(), ""), fig("ceiling used", 100*points/ceiling, "%"),
			fig("ceiling used from first write-back", 100*wbPoints/wbCeiling, "%"),
			fig("to each shop's last call", 100*wbPoints/ownCeiling, "%"),
			fig("throttled", 100*float64(throttled)/float64(max(calls, 1)), "%"), fig("points/image", points/float64(total), ""))
	}
}

// writeBackPhase is the points the shops spent from each one's first
// write-back call (its first read of a product for one) on, and the most
// Shopify could have granted them over that time: the bucket each had
// then, replayed from the store's log (a bucket of size restoring rate
// points a second, charged each call's actual cost), plus its restore rate
// until end (ceiling), or until the shop's own last call (ownCeiling: a
// shop whose images are all written back has nothing left to spend its
// points on while the others finish). Before its first write-back a shop
// spends little (reads of the originals to submit) while the images are at
// Remove The Background, which takes hours in production and tens of
// milliseconds here: the run's first second is the pipeline filling, not
// the write-back's pace.
func writeBackPhase(reqs []shopifytest.Request, end time.Time, size, rate float64) (points, ceiling, ownCeiling float64) {
	type state struct {
		level      float64
		at         time.Time
		started    bool
		startLevel float64
		startAt    time.Time
	}
	shops := map[string]*state{}
	for _, r := range reqs {
		if r.Operation == "" {
			continue
		}
		s := shops[r.Shop]
		if s == nil {
			s = &state{level: size, at: r.Time}
			shops[r.Shop] = s
		}
		s.level = min(size, s.level+rate*r.Time.Sub(s.at).Seconds())
		s.at = r.Time
		if !s.started && (r.Operation == "ProductMediaByID" || r.Operation == "ProductGallery") {
			s.started, s.startLevel, s.startAt = true, s.level, r.Time
		}
		if r.Throttled {
			continue
		}
		s.level -= r.ActualCost
		if s.started {
			points += r.ActualCost
		}
	}
	for _, s := range shops {
		if s.started {
			ceiling += s.startLevel + rate*end.Sub(s.startAt).Seconds()
			ownCeiling += s.startLevel + rate*s.at.Sub(s.startAt).Seconds()
		}
	}
	return points, ceiling, ownCeiling
}

// BenchmarkFirstWriteBackBehindImport measures how long a shop's single
// image waits while another shop imports 5,000.
func BenchmarkFirstWriteBackBehindImport(b *testing.B) {
	importSize := benchSize(b, "BENCH_IMPORT", 5000)
	for range b.N {
		db := benchDB(b)
		h := newHarness(b, db.DB, harnessOptions{noStart: true})
		other := "small-shop.myshopify.com"
		h.installShop(other)
		var recs []string
		for i := range importSize {
			rec, err := h.store.CreateProduct(shopDomain, shopifytest.NewProduct{Title: fmt.Sprint("Import ", i),
				Images: []shopifytest.NewImage{{Filename: fmt.Sprint("i", i, ".jpg"), Data: photo("jpeg", sand)}}})
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, rec.ID)
		}
		small, _ := h.store.CreateProduct(other, oneImage("small"))
		time.Sleep(500 * time.Millisecond)
		h.start()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, id := range recs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", shopDomain, "products/create", h.store.ProductWebhookPayload(shopDomain, id))
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		start := time.Now()
		resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", other, "products/create", h.store.ProductWebhookPayload(other, small.ID))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		for {
			var j models.ImageJob
			if db.DB.Where("media_id = ?", small.MediaIDs[0]).Take(&j).Error == nil && j.State == models.JobDone {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatal("the small shop's image was never written back")
			}
			time.Sleep(20 * time.Millisecond)
		}
		wait := time.Since(start)
		var queued int64
		db.DB.Model(&models.ImageJob{}).Where("shop_id <> (SELECT id FROM shops WHERE domain = ?) AND state <> ?", other, models.JobDone).Count(&queued)
		b.ReportMetric(wait.Seconds(), "s-to-first-write-back")
		b.Logf("%s: with %d images of another shop queued (%d still unfinished when it landed), the small shop's image was written back %s after its webhook",
			db.Name, importSize, queued, wait.Round(time.Millisecond))
		record(b, fmt.Sprintf("1 image behind another shop's %d", importSize), db.Name, "",
			fig("first write-back", wait.Seconds(), "s"), fig("import unfinished then", float64(queued), "images"))
	}
}
