package sync

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// explain runs EXPLAIN on the statement q would send and returns its rows
// as column → value.
func explain(t *testing.T, db *gorm.DB, q func(*gorm.DB) *gorm.DB) (string, []map[string]string) {
	t.Helper()
	stmt := q(db.Session(&gorm.Session{DryRun: true})).Find(&[]map[string]any{}).Statement
	query := db.Dialector.Explain(stmt.SQL.String(), stmt.Vars...)
	rows, err := db.Raw("EXPLAIN "+stmt.SQL.String(), stmt.Vars...).Rows()
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i, c := range cols {
			m[c] = vals[i].String
		}
		out = append(out, m)
	}
	return query, out
}

// On MariaDB every statement of a claim (and of the webhook fan-out) is
// served by an index: no filesort, no full scan, whatever the queue depth.
func TestClaimStatementsUseIndexesOnMySQL(t *testing.T) {
	if os.Getenv(modelstest.MySQLEnv) == "" {
		t.Skip("needs MariaDB: set " + modelstest.MySQLEnv)
	}
	db := modelstest.Open(t, "mysql").DB
	p := newTestPipeline(t, db)
	now := time.Now().UTC()
	var shops []uint64
	for i := range 50 {
		shops = append(shops, addShop(t, p, fmt.Sprintf("s%02d.myshopify.com", i), readySettings()).ID)
	}
	// 20,000 jobs of 100 products, 4 images a product in each of 50
	// shops: most finished, a few thousand queued, some waiting on a timer,
	// some written back, some leased.
	jobs := make([]models.ImageJob, 0, 20000)
	for i := range 20000 {
		j := models.ImageJob{ShopID: shops[i%50], ProductID: fmt.Sprint("gid://shopify/Product/", i/200), MediaID: fmt.Sprint("gid://shopify/MediaImage/", i),
			State: models.JobDone, CreatedAt: now, UpdatedAt: now}
		switch i % 5 {
		case 0:
			k := int64(i)
			j.State, j.QueueKey, j.FairKey, j.RunAt = models.JobQueued, &k, k, ptr(ms(now))
		case 1:
			j.State, j.RunAt = models.JobAwaitingRTB, ptr(ms(now.Add(time.Hour)))
		case 3:
			j.State, j.RunAt, j.FinalImageURL = models.JobWritingBack, ptr(ms(now)), "https://rtb.example/x.png"
		case 2:
			if i%50 == 2 {
				tok := newToken()
				j.State, j.LeaseOwner, j.LeaseUntil, j.RunAt = models.JobSubmitting, &tok, ptr(ms(now.Add(time.Minute))), ptr(ms(now.Add(time.Minute)))
			}
		}
		jobs = append(jobs, j)
	}
	if err := db.CreateInBatches(jobs, 1000).Error; err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		at := ms(now)
		if i%4 != 0 {
			at = 0
		}
		d := models.WebhookDelivery{WebhookID: fmt.Sprint("wh-", i), Topic: "products/create", ShopDomain: "s01.myshopify.com", ReceivedAt: now}
		if at != 0 {
			k := int64(i)
			d.PendingAt, d.InboxKey = &at, &k
		}
		db.Create(&d)
	}
	db.Exec("ANALYZE TABLE image_jobs, webhook_deliveries")

	ids := []uint64{jobs[0].ID, jobs[5].ID, jobs[10].ID, jobs[15].ID}
	for _, c := range []struct {
		name  string
		index string
		q     func(*gorm.DB) *gorm.DB
	}{
		{"claim candidates", "ix_image_jobs_queue", func(db *gorm.DB) *gorm.DB { return claimCandidates(db, 33) }},
		{"claim lock", "PRIMARY", func(db *gorm.DB) *gorm.DB { return lockClaimed(db, ids, now) }},
		{"due jobs", "ix_image_jobs_due", func(db *gorm.DB) *gorm.DB { return dueJobs(db, now, promoteBatch) }},
		{"live leases per shop", "ix_image_jobs_lease_owner", func(db *gorm.DB) *gorm.DB { return leaseCounts(db, now, shops[:5]) }},
		{"a product's images to take along", "ix_image_jobs_shop_product", func(db *gorm.DB) *gorm.DB {
			return freshOfProduct(db, &jobs[3], now).Select("id").Order("id").Limit(batchMax - 1)
		}},
		{"shop's last place", "ix_image_jobs_shop_queue", func(db *gorm.DB) *gorm.DB { return shopTail(db, shops[3]) }},
		{"webhook fan-out head", "ix_webhook_deliveries_inbox", func(db *gorm.DB) *gorm.DB {
			return db.Model(&models.WebhookDelivery{}).Select("id, inbox_key").Where("inbox_key IS NOT NULL").Order("inbox_key, id").Limit(256)
		}},
		{"webhook fan-out retries", "ix_webhook_deliveries_retry", func(db *gorm.DB) *gorm.DB {
			return db.Model(&models.WebhookDelivery{}).Select("id").Where("inbox_key IS NULL AND pending_at <= ?", ms(now)).Order("pending_at").Limit(256)
		}},
	} {
		query, rows := explain(t, db, c.q)
		var lines []string
		for _, r := range rows {
			lines = append(lines, fmt.Sprintf("table=%s type=%s key=%s rows=%s Extra=%s", r["table"], r["type"], r["key"], r["rows"], r["Extra"]))
			if strings.Contains(r["Extra"], "filesort") {
				t.Errorf("%s sorts rows the index should serve in order: %v", c.name, r)
			}
			if r["type"] == "ALL" || r["type"] == "index" && !strings.Contains(r["Extra"], "Using index") {
				t.Errorf("%s scans the whole table: %v", c.name, r)
			}
			if r["key"] != c.index {
				t.Errorf("%s uses index %q, want %s", c.name, r["key"], c.index)
			}
		}
		t.Logf("%s: %s\n    EXPLAIN: %s", c.name, query, strings.Join(lines, "; "))
	}
}

// A worker whose heartbeat cannot reach the database stops its work: once
// its lease runs out another worker takes the job, so it must not go on
// changing Shopify.
func TestHeartbeatThatCannotWriteCancelsTheWork(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, _ := queuedJob(t, db)
		p.o.Lease = 300 * time.Millisecond
		l, err := p.claim(context.Background())
		if err != nil || l == nil {
			t.Fatalf("claim: %v %v", l, err)
		}
		// A renewal that works keeps the work going.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go p.heartbeat(ctx, l, cancel)
		time.Sleep(250 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("a heartbeat that renewed the lease cancelled the work")
		}
		// The database goes away under the worker.
		sqlDB, _ := db.DB()
		sqlDB.Close()
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("the work went on with a lease that could not be renewed")
		}
	})
}
