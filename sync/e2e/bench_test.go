package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
)

// benchDB is MariaDB when TEST_MYSQL_DSN is set (the production case),
// else SQLite.
func benchDB(b *testing.B) modelstest.DB {
	if os.Getenv(modelstest.MySQLEnv) != "" {
		return modelstest.Open(b, "mysql")
	}
	return modelstest.Open(b, "sqlite")
}

// BenchmarkCallback measures the Remove The Background callback route:
// token check, body parsing and the database write, with 2,000 jobs each
// called back repeatedly (the first call records, the rest are the
// service's retries). "http" goes over loopback HTTP with the load
// generator in the same process; "handler" calls the Fiber handler
// directly, which leaves the machine's cores to the app and the database.
func BenchmarkCallback(b *testing.B) {
	db := benchDB(b)
	h := newHarness(b, db.DB, harnessOptions{noStart: true})
	const jobs = 2000
	now := time.Now().UTC()
	var shop models.Shop
	db.DB.Take(&shop)
	rows := make([]models.ImageJob, jobs)
	for i := range rows {
		ticket := fmt.Sprintf("ticket-%d", i)
		rows[i] = models.ImageJob{ShopID: shop.ID, ProductID: "gid://shopify/Product/1", MediaID: fmt.Sprint("gid://shopify/MediaImage/", i),
			State: models.JobAwaitingRTB, Ticket: &ticket, CreatedAt: now, UpdatedAt: now}
	}
	if err := db.DB.CreateInBatches(rows, 500).Error; err != nil {
		b.Fatal(err)
	}
	paths := make([]string, jobs)
	bodies := make([]string, jobs)
	for i, r := range rows {
		paths[i] = "/rtb/callback/" + h.app.Signer.Token(r.ID)
		bodies[i] = url.Values{"imageTicket": {*r.Ticket}, "ProcessedImageURL": {"https://files.example/x.png"}}.Encode()
	}
	run := func(b *testing.B, call func(i int64) bool) {
		var next, failed atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !call(next.Add(1) % jobs) {
					failed.Add(1)
				}
			}
		})
		elapsed := time.Since(start)
		b.StopTimer()
		if failed.Load() > 0 {
			b.Fatalf("%d callbacks failed", failed.Load())
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
		b.Logf("%s: %d callbacks in %s: %.0f requests/s", db.Name, b.N, elapsed.Round(time.Millisecond), float64(b.N)/elapsed.Seconds())
	}
	b.Run("http", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		run(b, func(i int64) bool {
			resp, err := client.Post(h.url+paths[i], "application/x-www-form-urlencoded", strings.NewReader(bodies[i]))
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body) // lets the connection be reused
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	})
	b.Run("handler", func(b *testing.B) {
		handler := h.app.HTTP.Handler()
		run(b, func(i int64) bool {
			var fc fasthttp.RequestCtx
			fc.Request.Header.SetMethod("POST")
			fc.Request.SetRequestURI(paths[i])
			fc.Request.Header.SetContentType("application/x-www-form-urlencoded")
			fc.Request.SetBodyString(bodies[i])
			handler(&fc)
			return fc.Response.StatusCode() == 200
		})
	})
}

// BenchmarkWriteBackRate runs 1,000 images across 10 shops through the
// whole pipeline against the fake store at the Standard rate limit (a
// 1,000-point bucket restoring 100 points/s per shop) and reports how much
// of the rate-limit ceiling the app used and how many calls were throttled.
// BENCH_IMAGES_PER_SHOP changes the 100 images per shop.
func BenchmarkWriteBackRate(b *testing.B) {
	shops, perShop := 10, 100
	if v := os.Getenv("BENCH_IMAGES_PER_SHOP"); v != "" {
		fmt.Sscan(v, &perShop)
	}
	for range b.N {
		db := benchDB(b)
		h := newHarness(b, db.DB, harnessOptions{noStart: true, tune: func(o *imgsync.Options) { o.Workers = 24 }})
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
		elapsed := time.Since(start)
		var points float64
		calls, throttled := 0, 0
		for _, r := range h.store.Requests() {
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
		b.ReportMetric(float64(total)/elapsed.Seconds(), "images/s")
		b.ReportMetric(100*points/ceiling, "%ceiling")
		b.ReportMetric(100*float64(throttled)/float64(max(calls, 1)), "%throttled")
		b.Logf("%s: %d images, %d shops, %s: %.2f images/s; %.0f points used of a %.0f-point ceiling (%.1f%%); %d GraphQL calls, %d throttled (%.2f%%), %.0f points per image",
			db.Name, total, shops, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), points, ceiling, 100*points/ceiling,
			calls, throttled, 100*float64(throttled)/float64(max(calls, 1)), points/float64(total))
	}
}

// BenchmarkFirstWriteBackBehindImport measures how long a shop's single
// image waits while another shop imports 5,000.
func BenchmarkFirstWriteBackBehindImport(b *testing.B) {
	importSize := 5000
	if v := os.Getenv("BENCH_IMPORT"); v != "" {
		fmt.Sscan(v, &importSize)
	}
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
	}
}
