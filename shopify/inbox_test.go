package shopify

import (
	"context"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
)

// Concurrent deliveries, some of them the same delivery sent twice at
// once: every one is answered 200 only with its row committed, and each
// delivery id is one row.
func TestInboxConcurrentDeliveriesAreCommittedBeforeTheAnswer(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		const n = 60
		var wg gosync.WaitGroup
		statuses := make([]int, 2*n)
		for i := range 2 * n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Deliveries i and i+n share an id: a retry racing the original.
				resp, _ := e.post(TopicProductsCreate, testShop, fmt.Sprint("wh-c", i%n), []byte(productJSON), testSecret, nil)
				statuses[i] = resp.StatusCode
				var c int64
				db.Model(&models.WebhookDelivery{}).Where("webhook_id = ?", fmt.Sprint("wh-c", i%n)).Count(&c)
				if resp.StatusCode == 200 && c != 1 {
					t.Errorf("delivery wh-c%d answered 200 with %d rows", i%n, c)
				}
			}()
		}
		wg.Wait()
		for i, s := range statuses {
			if s != 200 {
				t.Fatalf("request %d: %d", i, s)
			}
		}
		if c := e.count(&models.WebhookDelivery{}, ""); c != n {
			t.Fatalf("%d rows for %d delivery ids", c, n)
		}
		if err := e.fanOut(); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.enq.calls(); got != n {
			t.Fatalf("%d enqueues for %d deliveries", got, n)
		}
	})
}

// One multi-row statement keeps the first of duplicate ids, inside the
// batch and against rows already there, and writes the rest.
func TestInboxBatchInsertDeduplicatesInTheStatement(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		now := e.clock.Now().UTC()
		row := func(id, topic string) *inboxWrite {
			at := now.UnixMilli()
			return &inboxWrite{row: &models.WebhookDelivery{WebhookID: id, Topic: topic, ShopDomain: testShop, ReceivedAt: now, Body: []byte(`{}`), PendingAt: &at}}
		}
		f := newFlusher(e.app.inbox)
		defer f.closeConn()
		if err := f.insert([]*inboxWrite{row("a", "first")}); err != nil {
			t.Fatal(err)
		}
		if err := f.insert([]*inboxWrite{row("b", "first"), row("a", "again"), row("b", "again"), row("c", "first")}); err != nil {
			t.Fatal(err)
		}
		var rows []models.WebhookDelivery
		db.Order("webhook_id").Find(&rows)
		if len(rows) != 3 {
			t.Fatalf("%d rows, want 3", len(rows))
		}
		for _, r := range rows {
			if r.Topic != "first" || r.PendingAt == nil || string(r.Body) != "{}" {
				t.Errorf("row %s = topic %q pending %v body %q; want the first write kept", r.WebhookID, r.Topic, r.PendingAt, r.Body)
			}
		}
	})
}

// Two replicas fan the same inbox out at once: each delivery is acted on
// exactly once.
func TestInboxFanOutOnTwoReplicasActsOnceEach(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, url string) {
		e := newEnv(t, db)
		e.install(testShop)
		const n = 40
		for i := range n {
			if resp, _ := e.post(TopicProductsUpdate, testShop, fmt.Sprint("wh-r", i), []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
				t.Fatal(resp.StatusCode)
			}
		}
		other := e.newApp(openAgain(t, url))
		var wg gosync.WaitGroup
		for _, a := range []*App{e.app, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, err := a.FanOut(t.Context(), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if n == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		if got, _ := e.enq.calls(); got != n {
			t.Fatalf("%d enqueues for %d deliveries on two replicas", got, n)
		}
		if c := e.count(&models.WebhookDelivery{}, "pending_at IS NOT NULL"); c != 0 {
			t.Fatalf("%d deliveries still pending", c)
		}
	})
}

// A delivery committed by a process that died before fanning it out is
// fanned out by the next one; a fan-out that failed half-way left nothing
// behind and is done again in full.
func TestInboxDeliveryCommittedBeforeACrashIsFannedOutAfterRestart(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, url string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		if resp, _ := e.post(TopicAppUninstalled, testShop, "wh-crash", []byte(`{}`), testSecret, nil); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		// The process is gone; a new one starts on the same database.
		restarted := e.newApp(openAgain(t, url))
		e.clock.Advance(time.Second)
		if n, err := restarted.FanOut(t.Context(), 10); n != 1 || err != nil {
			t.Fatalf("fan-out after restart: %d %v", n, err)
		}
		if got := e.shop(testShop); got.State != models.ShopUninstalled {
			t.Fatalf("shop %s after the uninstall was fanned out", got.State)
		}
		if _, c := e.enq.calls(); c != 1 {
			t.Fatalf("jobs of shop %d cancelled %d times", s.ID, c)
		}
		if n, err := restarted.FanOut(t.Context(), 10); n != 0 || err != nil {
			t.Fatalf("second fan-out: %d %v", n, err)
		}
	})
}

// One shop's burst of deliveries does not hold back another shop's
// single one: it is fanned out among the next few.
func TestInboxFanOutIsFairAcrossShops(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		e.install("small.myshopify.com")
		for i := range 40 {
			if resp, _ := e.post(TopicProductsCreate, testShop, fmt.Sprint("wh-big-", i), []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
				t.Fatal(resp.StatusCode)
			}
		}
		// The import is being fanned out when the small shop's webhook comes.
		if n, err := e.app.FanOut(t.Context(), 5); n != 5 || err != nil {
			t.Fatalf("fan-out: %d %v", n, err)
		}
		if resp, _ := e.post(TopicProductsCreate, "small.myshopify.com", "wh-small", []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		if n, err := e.app.FanOut(t.Context(), 3); n != 3 || err != nil {
			t.Fatalf("fan-out: %d %v", n, err)
		}
		e.enq.mu.Lock()
		defer e.enq.mu.Unlock()
		for _, s := range e.enq.shops[5:] {
			if s == "small.myshopify.com" {
				return
			}
		}
		t.Fatalf("after 8 fan-outs the small shop's delivery still waits behind the other's 35: %v", e.enq.shops)
	})
}

// A flusher keeps a MySQL connection of its own for its prepared inserts.
// When the server closes it (idle timeout, restart, KILL), the next
// delivery is written on a fresh connection, not refused.
func TestInboxFlusherOutlivesItsConnection(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		if models.DialectOf(db) != models.MySQL {
			t.Skip("SQLite writes through the pool's one connection")
		}
		e := newEnv(t, db)
		now := e.clock.Now().UTC()
		row := func(id string) []*inboxWrite {
			at := now.UnixMilli()
			return []*inboxWrite{{row: &models.WebhookDelivery{WebhookID: id, Topic: "products/update", ShopDomain: testShop, ReceivedAt: now, Body: []byte(`{}`), PendingAt: &at}}}
		}
		f := newFlusher(e.app.inbox)
		defer f.closeConn()
		if err := f.insert(row("before")); err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := f.conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := db.Exec("KILL ?", id).Error; err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the server closes the socket
		if err := f.insert(row("after")); err != nil {
			t.Fatalf("the delivery after the connection was killed: %v", err)
		}
		var n int64
		db.Model(&models.WebhookDelivery{}).Where("webhook_id IN ?", []string{"before", "after"}).Count(&n)
		if n != 2 {
			t.Fatalf("%d of 2 deliveries recorded", n)
		}
	})
}

// In a small pool the flushers keep no connection of their own (holding
// one would starve the workers): each batch borrows one like everything
// else, and is recorded all the same.
func TestInboxFlusherInASmallPoolBorrowsItsConnection(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, url string) {
		if models.DialectOf(db) != models.MySQL {
			t.Skip("SQLite writes through the pool's one connection")
		}
		small := openAgain(t, url+"?max_open_conns=4")
		e := newEnv(t, small)
		now := e.clock.Now().UTC()
		at := now.UnixMilli()
		f := newFlusher(e.app.inbox)
		defer f.closeConn()
		if err := f.insert([]*inboxWrite{{row: &models.WebhookDelivery{WebhookID: "small-pool", Topic: "products/update", ShopDomain: testShop, ReceivedAt: now, Body: []byte(`{}`), PendingAt: &at}}}); err != nil {
			t.Fatal(err)
		}
		if f.conn != nil {
			t.Fatal("a flusher kept a connection of a 4-connection pool")
		}
		var n int64
		db.Model(&models.WebhookDelivery{}).Where("webhook_id = ?", "small-pool").Count(&n)
		if n != 1 {
			t.Fatalf("%d deliveries recorded, want 1", n)
		}
	})
}
