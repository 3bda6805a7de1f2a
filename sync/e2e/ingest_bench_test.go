package e2e_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	imgsync "rtbshopify/sync"
)

// statementCounter counts the SQL statements GORM sends (every query,
// insert, update, delete and raw statement; BEGIN and COMMIT are not
// statements GORM's callbacks see).
type statementCounter struct{ n atomic.Int64 }

func countStatements(tb testing.TB, db *gorm.DB) *statementCounter {
	tb.Helper()
	c := &statementCounter{}
	inc := func(*gorm.DB) { c.n.Add(1) }
	cb := db.Callback()
	for name, err := range map[string]error{
		"create": cb.Create().After("*").Register("bench:count_create", inc),
		"query":  cb.Query().After("*").Register("bench:count_query", inc),
		"update": cb.Update().After("*").Register("bench:count_update", inc),
		"delete": cb.Delete().After("*").Register("bench:count_delete", inc),
		"row":    cb.Row().After("*").Register("bench:count_row", inc),
		"raw":    cb.Raw().After("*").Register("bench:count_raw", inc),
	} {
		if err != nil {
			tb.Fatalf("register %s counter: %v", name, err)
		}
	}
	return c
}

// statements counts the SQL statements the app sends.
type statements struct {
	load func() int64
}

// statementsOf counts statements on db: on MariaDB the server's own count
// of the statements its clients sent (Questions: queries, prepared
// executions, BEGIN and COMMIT, whoever sent them, so the app's inbox
// writes outside GORM too), less the reading of it; on SQLite every
// statement GORM sends.
func statementsOf(tb testing.TB, db modelstest.DB) statements {
	tb.Helper()
	if db.Name != "mysql" {
		c := countStatements(tb, db.DB)
		return statements{load: c.n.Load}
	}
	var reads int64
	return statements{load: func() int64 {
		var row struct {
			VariableName string
			Value        int64
		}
		if err := db.DB.Raw("SHOW GLOBAL STATUS LIKE 'Questions'").Scan(&row).Error; err != nil {
			tb.Fatal(err)
		}
		reads++
		return row.Value - reads
	}}
}

// productCreateBody is a products/create payload of about 5.5 KB with
// three images, as Shopify sends for a new product from an import.
func productCreateBody(n int64) []byte {
	pid := 8000000000000 + n
	var media, images, variants strings.Builder
	for i := 0; i < 3; i++ {
		mid := 30000000000000 + n*10 + int64(i)
		if i > 0 {
			media.WriteString(",")
			images.WriteString(",")
		}
		fmt.Fprintf(&media, `{"id":%d,"admin_graphql_api_id":"gid://shopify/MediaImage/%d","media_content_type":"IMAGE","status":"READY","position":%d,"alt":"Studio shot %d of the imported product","preview_image":{"width":2048,"height":2048,"status":"READY","src":"https://cdn.shopify.com/s/files/1/0000/0001/files/import-%d-%d.jpg?v=1732700000"},"variant_ids":[]}`,
			mid, mid, i+1, i+1, n, i)
		fmt.Fprintf(&images, `{"id":%d,"admin_graphql_api_id":"gid://shopify/ProductImage/%d","product_id":%d,"position":%d,"alt":"Studio shot %d of the imported product","width":2048,"height":2048,"src":"https://cdn.shopify.com/s/files/1/0000/0001/files/import-%d-%d.jpg?v=1732700000","variant_ids":[],"created_at":"2026-11-27T05:00:00-05:00","updated_at":"2026-11-27T05:00:00-05:00"}`,
			mid+7, mid+7, pid, i+1, i+1, n, i)
	}
	for i, size := range []string{"XS", "S", "M", "L", "XL"} {
		if i > 0 {
			variants.WriteString(",")
		}
		vid := 45000000000000 + n*10 + int64(i)
		fmt.Fprintf(&variants, `{"id":%d,"admin_graphql_api_id":"gid://shopify/ProductVariant/%d","product_id":%d,"title":"%s","price":"29.00","sku":"IMP-%d-%s","position":%d,"inventory_policy":"deny","compare_at_price":null,"option1":"%s","option2":null,"option3":null,"created_at":"2026-11-27T05:00:00-05:00","updated_at":"2026-11-27T05:00:00-05:00","taxable":true,"barcode":null,"inventory_item_id":%d,"inventory_quantity":12,"old_inventory_quantity":12,"requires_shipping":true,"image_id":null}`,
			vid, vid, pid, size, n, size, i+1, size, vid+3)
	}
	return []byte(fmt.Sprintf(`{"id":%d,"admin_graphql_api_id":"gid://shopify/Product/%d","title":"Imported product %d","body_html":"<p>Soft organic cotton, relaxed fit, garment dyed. Imported from the supplier's catalogue feed with its studio photos; sizes XS to XL.</p>","vendor":"Acme Supply","product_type":"Shirts","handle":"imported-product-%d","status":"active","published_scope":"global","tags":"import, summer, cotton","template_suffix":null,"created_at":"2026-11-27T05:00:00-05:00","updated_at":"2026-11-27T05:00:00-05:00","published_at":"2026-11-27T05:00:00-05:00","options":[{"id":%d,"product_id":%d,"name":"Size","position":1,"values":["XS","S","M","L","XL"]}],"variants":[%s],"images":[%s],"image":null,"media":[%s],"variant_gids":[]}`,
		pid, pid, n, n, pid+1, pid, variants.String(), images.String(), media.String()))
}

type ingestRequest struct {
	id, shop string
	body     []byte
	sig      string
}

func signedDeliveries(secret, prefix string, shops []string, n int, seq *atomic.Int64) []ingestRequest {
	out := make([]ingestRequest, n)
	for i := range out {
		k := seq.Add(1)
		body := productCreateBody(k)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		out[i] = ingestRequest{id: fmt.Sprintf("%s-%d", prefix, k), shop: shops[i%len(shops)], body: body,
			sig: base64.StdEncoding.EncodeToString(m.Sum(nil))}
	}
	return out
}

// ingestResult is what one load run saw.
type ingestResult struct {
	sent, ok   int
	elapsed    time.Duration
	lat        []time.Duration // of the 2xx answers, sorted
	okIDs      []string
	failures   map[string]int
	statements int64
}

func (r ingestResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// sendDeliveries posts the requests over conns keep-alive connections
// (one goroutine each, closed loop) and collects each answer's latency.
// interval > 0 paces each connection instead (open loop at
// conns/interval requests/s).
func sendDeliveries(tb testing.TB, addr string, reqs []ingestRequest, conns int, interval time.Duration) ingestResult {
	tb.Helper()
	client := &fasthttp.HostClient{Addr: addr, MaxConns: conns, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxIdleConnDuration: time.Minute, Dial: func(a string) (net.Conn, error) { return net.Dial("tcp", a) }}
	defer client.CloseIdleConnections()
	triggered := time.Now().UTC().Format(time.RFC3339Nano)
	var next atomic.Int64
	var mu sync.Mutex
	res := ingestResult{sent: len(reqs), failures: map[string]int{}}
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var lat []time.Duration
			var ids []string
			fails := map[string]int{}
			tick := time.Now()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					break
				}
				if interval > 0 {
					tick = tick.Add(interval)
					time.Sleep(time.Until(tick))
				}
				r := reqs[i]
				req.Reset()
				req.Header.SetMethod("POST")
				req.SetRequestURI("http://" + addr + "/webhooks")
				req.Header.SetContentType("application/json")
				req.Header.Set("X-Shopify-Topic", "products/create")
				req.Header.Set("X-Shopify-Shop-Domain", r.shop)
				req.Header.Set("X-Shopify-API-Version", "2026-10")
				req.Header.Set("X-Shopify-Webhook-Id", r.id)
				req.Header.Set("X-Shopify-Event-Id", r.id)
				req.Header.Set("X-Shopify-Triggered-At", triggered)
				req.Header.Set("X-Shopify-Hmac-Sha256", r.sig)
				req.SetBodyRaw(r.body)
				t0 := time.Now()
				err := client.Do(req, resp)
				d := time.Since(t0)
				switch {
				case err != nil:
					fails[err.Error()]++
				case resp.StatusCode()/100 == 2:
					lat = append(lat, d)
					ids = append(ids, r.id)
				default:
					fails[fmt.Sprint("HTTP ", resp.StatusCode())]++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.okIDs = append(res.okIDs, ids...)
			for k, v := range fails {
				res.failures[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok = len(res.okIDs)
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res
}

// checkCommitted fails unless every 2xx answer's delivery is a row in the
// database: an answer may only leave once its delivery is durable.
func checkCommitted(tb testing.TB, db *gorm.DB, prefix string, okIDs []string) {
	tb.Helper()
	var stored []string
	if err := db.Model(&models.WebhookDelivery{}).Where("webhook_id LIKE ?", prefix+"-%").Pluck("webhook_id", &stored).Error; err != nil {
		tb.Fatal(err)
	}
	have := make(map[string]bool, len(stored))
	for _, id := range stored {
		have[id] = true
	}
	missing := 0
	for _, id := range okIDs {
		if !have[id] {
			missing++
		}
	}
	if missing > 0 {
		tb.Fatalf("%d of %d deliveries answered 2xx are not in the database", missing, len(okIDs))
	}
}

// BenchmarkWebhookIngest sends signed products/create deliveries (three
// images each, every one a new product with its own webhook id) over
// loopback HTTP to the real server, with 8, 32 and 128 connections, for
// one shop and for 16 shops, on SQLite and, when TEST_MYSQL_DSN is set, on
// MariaDB. The workers are not started: this is the intake alone. It
// prints requests/s, latency percentiles and SQL statements per delivery,
// and then checks that every 2xx answer is a committed row.
// BENCH_DELIVERIES (4,000) deliveries per case.
func BenchmarkWebhookIngest(b *testing.B) {
	n := benchSize(b, "BENCH_DELIVERIES", 4000)
	dialects := []string{"sqlite"}
	if os.Getenv(modelstest.MySQLEnv) != "" {
		dialects = append(dialects, "mysql")
	}
	for _, dialect := range dialects {
		b.Run("db="+dialect, func(b *testing.B) { ingest(b, modelstest.Open(b, dialect), n) })
	}
}

func ingest(b *testing.B, db modelstest.DB, n int) {
	counter := statementsOf(b, db)
	h := newHarness(b, db.DB, harnessOptions{noStart: true})
	all := []string{shopDomain}
	for i := 1; i < 16; i++ {
		d := fmt.Sprintf("ingest-%02d.myshopify.com", i)
		h.installShop(d)
		all = append(all, d)
	}
	addr := strings.TrimPrefix(h.url, "http://")
	var seq atomic.Int64
	seq.Store(time.Now().UnixNano() % 1e9 * 1000)
	run := 0
	for _, shops := range []int{1, 16} {
		for _, conns := range []int{8, 32, 128} {
			b.Run(fmt.Sprintf("shops=%d/conns=%d", shops, conns), func(b *testing.B) {
				run++
				prefix := fmt.Sprintf("ingest%d-%d", run, seq.Load())
				reqs := signedDeliveries(h.cfg.ShopifyAPISecret, prefix, all[:shops], n, &seq)
				before := counter.load()
				res := sendDeliveries(b, addr, reqs, conns, 0)
				res.statements = counter.load() - before
				if len(res.failures) > 0 {
					b.Logf("failures: %v", res.failures)
				}
				checkCommitted(b, db.DB, prefix, res.okIDs)
				rps := float64(res.ok) / res.elapsed.Seconds()
				perDelivery := float64(res.statements) / float64(max(res.ok, 1))
				b.ReportMetric(rps, "req/s")
				b.ReportMetric(float64(res.pct(0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(perDelivery, "stmts/delivery")
				b.Logf("%s, %d shop(s), %d connections: %d of %d answered 2xx in %s: %.0f req/s; p50 %s p90 %s p99 %s; %.2f SQL statements per delivery; every 2xx is a committed row",
					db.Name, shops, conns, res.ok, res.sent, res.elapsed.Round(time.Millisecond), rps,
					res.pct(0.50).Round(10*time.Microsecond), res.pct(0.90).Round(10*time.Microsecond), res.pct(0.99).Round(10*time.Microsecond), perDelivery)
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
				record(b, fmt.Sprintf("%d shop(s), %d connections", shops, conns), db.Name, fmt.Sprintf("%d of %d answered 2xx, each a committed row", res.ok, res.sent),
					fig("req/s", rps, ""), fig("p50", ms(res.pct(0.50)), "ms"), fig("p90", ms(res.pct(0.90)), "ms"), fig("p99", ms(res.pct(0.99)), "ms"),
					fig("SQL statements/delivery", perDelivery, ""))
			})
		}
	}
	if os.Getenv("BENCH_KEEP_DB") != "" {
		b.Logf("database %s", db.URL)
	}
}

// BenchmarkFanOutLag sends signed products/create deliveries (three
// images each) over 32 connections at BENCH_FANOUT_RATE deliveries/s
// (default 300, a busy shop's import) with the pipeline running, and
// prints how long after its delivery was committed each product's jobs
// were recorded: what the merchant waits for on the dashboard.
// BENCH_FANOUT_DELIVERIES (1,000) deliveries.
func BenchmarkFanOutLag(b *testing.B) {
	rate := benchSize(b, "BENCH_FANOUT_RATE", 300)
	n := benchSize(b, "BENCH_FANOUT_DELIVERIES", 1000)
	db := benchDB(b)
	// One worker: what is measured is the jobs' creation, not their processing.
	h := newHarness(b, db.DB, harnessOptions{tune: func(o *imgsync.Options) { o.Workers = 1 }})
	addr := strings.TrimPrefix(h.url, "http://")
	var seq atomic.Int64
	seq.Store(time.Now().UnixNano() % 1e9 * 1000)
	prefix := fmt.Sprintf("lag-%d", seq.Load())
	reqs := signedDeliveries(h.cfg.ShopifyAPISecret, prefix, []string{shopDomain}, n, &seq)
	const conns = 32
	res := sendDeliveries(b, addr, reqs, conns, time.Duration(float64(conns)*float64(time.Second)/float64(rate)))
	// Wait for the fan-out to finish.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var pending int64
		db.DB.Model(&models.WebhookDelivery{}).Where("webhook_id LIKE ? AND pending_at IS NOT NULL", prefix+"-%").Count(&pending)
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d deliveries still not fanned out after 5 minutes", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkCommitted(b, db.DB, prefix, res.okIDs)
	var deliveries []models.WebhookDelivery
	db.DB.Select("webhook_id, received_at").Where("webhook_id LIKE ?", prefix+"-%").Find(&deliveries)
	received := map[string]time.Time{}
	for _, d := range deliveries {
		n := strings.TrimPrefix(d.WebhookID, prefix+"-")
		var k int64
		fmt.Sscan(n, &k)
		received[fmt.Sprint("gid://shopify/Product/", 8000000000000+k)] = d.ReceivedAt
	}
	var jobs []models.ImageJob
	db.DB.Select("product_id, created_at").Find(&jobs)
	first := map[string]time.Time{}
	for _, j := range jobs {
		if t, ok := first[j.ProductID]; !ok || j.CreatedAt.Before(t) {
			first[j.ProductID] = j.CreatedAt
		}
	}
	var lags []time.Duration
	for p, c := range first {
		if r, ok := received[p]; ok {
			lags = append(lags, c.Sub(r))
		}
	}
	if len(lags) != len(res.okIDs) {
		b.Fatalf("%d products have jobs, %d deliveries were answered 2xx", len(lags), len(res.okIDs))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pct := func(p float64) time.Duration { return lags[min(len(lags)-1, int(float64(len(lags))*p))] }
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "lag-p99-ms")
	b.Logf("%s: %d deliveries at %d/s over %d connections (answered p50 %s p99 %s): jobs recorded after the delivery's commit p50 %s p90 %s p99 %s max %s",
		db.Name, len(lags), rate, conns, res.pct(0.5).Round(10*time.Microsecond), res.pct(0.99).Round(10*time.Microsecond),
		pct(0.5).Round(100*time.Microsecond), pct(0.9).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), lags[len(lags)-1].Round(time.Millisecond))
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	record(b, fmt.Sprintf("%d deliveries at %d/s, 32 connections", len(lags), rate), db.Name, "from a delivery's commit to its jobs",
		fig("lag p50", ms(pct(0.5)), "ms"), fig("lag p99", ms(pct(0.99)), "ms"), fig("lag max", ms(lags[len(lags)-1]), "ms"))
}
