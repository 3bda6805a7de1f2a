package shopify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"rtbshopify/models"
)

// The webhook inbox. A delivery is answered once its own row is committed
// (group commit: concurrent deliveries share one multi-row INSERT and one
// commit); what it causes — jobs, uninstalls, redaction — runs afterwards
// from the row, on any replica, once: the row is locked by its primary key
// while it is acted on, and marked done in the same transaction as the
// work. A crash before that commit leaves it pending, and it is taken up
// again.

const (
	// inboxMaxBatch caps the rows of one INSERT (and its packet size:
	// bodies are a few KB).
	inboxMaxBatch = 128
	// inboxFlushTimeout bounds one batch: Shopify gives up after 5 s.
	inboxFlushTimeout = 4 * time.Second
	// fanOutParallel is how many deliveries a MySQL process fans out at
	// once (SQLite: one; it has one connection).
	fanOutParallel = 6
	// inboxMaxBackoff caps the wait before a failed fan-out is tried again.
	inboxMaxBackoff = 10 * time.Minute
)

type inboxWrite struct {
	row  *models.WebhookDelivery
	done chan error
}

// inbox writes deliveries with group commit. Flushers start on first use;
// each takes every delivery waiting when it becomes free, so batches grow
// with the load and a lone delivery is written at once.
type inbox struct {
	db       *gorm.DB
	log      *slog.Logger
	queue    chan *inboxWrite
	start    gosync.Once
	flushers int
	notify   func()

	// The fan-out order (fair queueing by delivery): virtual is the place
	// of the deliveries being fanned out now, as this process last saw
	// them; last holds each recent shop's latest place.
	virtual atomic.Int64
	mu      gosync.Mutex
	last    map[string]int64
}

// place gives a new delivery of shop its place in the fan-out order: one
// after the shop's previous delivery, but never behind the deliveries
// being fanned out now. So a shop's burst queues behind itself while a
// shop without one goes to the front. It reads only memory: replicas each
// keep their own view, which costs only exactness.
func (in *inbox) place(shop string) int64 {
	v := in.virtual.Load()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.last == nil || len(in.last) > 10000 {
		in.last = map[string]int64{}
	}
	k := max(v, in.last[shop]+1)
	in.last[shop] = k
	return k
}

// advance records that deliveries up to place k are being fanned out.
func (in *inbox) advance(k int64) {
	for {
		v := in.virtual.Load()
		if k <= v || in.virtual.CompareAndSwap(v, k) {
			return
		}
	}
}

func newInbox(db *gorm.DB, log *slog.Logger) *inbox {
	flushers := 2 // overlapping batches keep the database's commits pipelined
	if models.DialectOf(db) == models.SQLite {
		flushers = 1 // one connection: a second flusher would only wait for it
	}
	return &inbox{db: db, log: log, queue: make(chan *inboxWrite, 4*inboxMaxBatch), flushers: flushers}
}

// record returns once the delivery's row is committed (or was already
// there: a retry of a recorded delivery is no error).
func (in *inbox) record(row *models.WebhookDelivery) error {
	in.start.Do(func() {
		for range in.flushers {
			go in.flushLoop()
		}
	})
	w := &inboxWrite{row: row, done: make(chan error, 1)}
	in.queue <- w
	return <-w.done
}

func (in *inbox) flushLoop() {
	f := newFlusher(in)
	defer f.closeConn()
	batch := make([]*inboxWrite, 0, inboxMaxBatch)
	for w := range in.queue {
		batch = append(batch[:0], w)
	fill:
		for len(batch) < inboxMaxBatch {
			select {
			case w := <-in.queue:
				batch = append(batch, w)
			default:
				break fill
			}
		}
		err := f.insert(batch)
		if err != nil && len(batch) > 1 {
			// One row the database refuses must not fail the others.
			in.log.Warn("webhook batch insert failed; writing its deliveries one by one", "deliveries", len(batch), "err", err)
			for _, w := range batch {
				w.done <- f.insert([]*inboxWrite{w})
			}
		} else {
			for _, w := range batch {
				w.done <- err
			}
		}
		if err == nil && in.notify != nil {
			in.notify()
		}
	}
}

// flusher is one flush loop's writer. On MySQL it keeps a connection of its
// own with its inserts prepared on it: the bodies then travel as they are
// (binary protocol), so the client does not escape them into the SQL text
// and the server does not parse them out of it again, and what the server
// keeps prepared is bounded by the flushers, not by the pool.
type flusher struct {
	in     *inbox
	own    bool // keeps a connection of its own (MySQL, a pool large enough)
	conn   *sql.Conn
	connAt time.Time
	stmts  map[int]*sql.Stmt // by batch size, on conn
}

// insert writes the batch in one statement (one transaction, one commit).
// A delivery id already recorded is left as it is by the unique key, in
// the same statement.
func (f *flusher) insert(batch []*inboxWrite) error {
	ctx, cancel := context.WithTimeout(context.Background(), inboxFlushTimeout)
	defer cancel()
	args := make([]any, 0, 8*len(batch))
	for _, w := range batch {
		r := w.row
		args = append(args, r.WebhookID, r.Topic, r.ShopDomain, r.ReceivedAt, r.TriggeredAt, r.Body, r.PendingAt, r.InboxKey)
	}
	onConflict := " ON CONFLICT (webhook_id) DO NOTHING"
	if models.DialectOf(f.in.db) == models.MySQL {
		onConflict = mysqlKeepRecorded
		if f.own {
			err := f.execPrepared(ctx, len(batch), args)
			if !errors.Is(err, errNotPrepared) {
				if err != nil {
					return fmt.Errorf("record %d webhook deliveries: %w", len(batch), err)
				}
				return nil
			}
			// The server would not prepare it (max_prepared_stmt_count
			// reached, say): the plain statement does the same work.
			f.in.log.Warn("webhook insert could not be prepared; sending it as text", "err", err)
		}
	}
	if err := f.in.db.WithContext(ctx).Exec(insertDeliveries(len(batch), onConflict), args...).Error; err != nil {
		return fmt.Errorf("record %d webhook deliveries: %w", len(batch), err)
	}
	return nil
}

// minPoolForOwnConnections is the smallest pool in which the flushers keep
// connections of their own: in a smaller one, holding them would starve
// the workers and the fan-out, so the flushers borrow from the pool for
// each batch like everything else.
const minPoolForOwnConnections = 8

// newFlusher is a flush loop's writer; whether it keeps a connection of its
// own is settled once, from the pool's size.
func newFlusher(in *inbox) *flusher {
	f := &flusher{in: in}
	if models.DialectOf(in.db) == models.MySQL {
		if sqlDB, err := in.db.DB(); err == nil {
			n := sqlDB.Stats().MaxOpenConnections
			f.own = n == 0 || n >= minPoolForOwnConnections
		}
	}
	return f
}

// mysqlKeepRecorded leaves a delivery id already recorded as it is.
const mysqlKeepRecorded = " ON DUPLICATE KEY UPDATE webhook_id = webhook_id"

// errNotPrepared marks a statement the server refused to prepare.
var errNotPrepared = errors.New("statement not prepared")

// insertDeliveries is the INSERT of n deliveries, with conflict handling.
func insertDeliveries(n int, onConflict string) string {
	var sb strings.Builder
	sb.Grow(160 + 32*n + len(onConflict))
	sb.WriteString("INSERT INTO webhook_deliveries (webhook_id, topic, shop_domain, received_at, triggered_at, body, pending_at, inbox_key, attempts) VALUES ")
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, 0)")
	}
	sb.WriteString(onConflict)
	return sb.String()
}

// execPrepared runs the insert of n deliveries prepared on the flusher's
// connection, taking a connection (again) when it has none or has held it
// for flusherConnLifetime. A failure gives the connection back, and one
// whose connection was found closed (the server's idle timeout, a restart,
// KILL) is tried once more on a fresh one: the insert is idempotent (a
// recorded delivery id is left as it is), so a retry after a send whose
// outcome is unknown writes nothing twice.
func (f *flusher) execPrepared(ctx context.Context, n int, args []any) error {
	err := f.execOnce(ctx, n, args)
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		err = f.execOnce(ctx, n, args)
	}
	return err
}

// flusherConnLifetime is how long a flusher keeps one connection, as the
// pool's own connections are renewed too.
const flusherConnLifetime = 5 * time.Minute

func (f *flusher) execOnce(ctx context.Context, n int, args []any) error {
	if f.conn != nil && time.Since(f.connAt) > flusherConnLifetime {
		f.closeConn()
	}
	if f.conn == nil {
		sqlDB, err := f.in.db.DB()
		if err != nil {
			return err
		}
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			return err
		}
		f.conn, f.connAt, f.stmts = conn, time.Now(), map[int]*sql.Stmt{}
	}
	st := f.stmts[n]
	if st == nil {
		var err error
		if st, err = f.conn.PrepareContext(ctx, insertDeliveries(n, mysqlKeepRecorded)); err != nil {
			f.closeConn()
			if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
				return err
			}
			return fmt.Errorf("%w: %w", errNotPrepared, err)
		}
		f.stmts[n] = st
	}
	if _, err := st.ExecContext(ctx, args...); err != nil {
		f.closeConn()
		return err
	}
	return nil
}

// closeConn closes the prepared statements and gives the connection back.
func (f *flusher) closeConn() {
	for _, st := range f.stmts {
		st.Close()
	}
	f.stmts = nil
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// OnDelivery sets a function called after deliveries are committed, to
// wake whatever fans them out. Set it before serving.
func (a *App) OnDelivery(f func()) { a.inbox.notify = f }

// FanOut acts on up to limit deliveries that are due in the inbox, each in
// its own short transaction together with the work it causes, and returns
// how many it handled. Deliveries another replica is acting on are passed
// over. A failed one is tried again later, with a growing wait.
func (a *App) FanOut(ctx context.Context, limit int) (int, error) {
	// Deliveries due again after a failure first (few), then the head of
	// the fair order. Each read is served by an index in its ORDER BY and
	// locks nothing.
	var ids []uint64
	err := fanOutRetries(a.db.WithContext(ctx), a.now(), limit).Pluck("id", &ids).Error
	if err != nil {
		return 0, fmt.Errorf("list webhook deliveries due again: %w", err)
	}
	var head []models.WebhookDelivery
	if err := fanOutHead(a.db.WithContext(ctx), limit).Select("id, inbox_key").Find(&head).Error; err != nil {
		return 0, fmt.Errorf("list pending webhook deliveries: %w", err)
	}
	if len(head) > 0 && head[0].InboxKey != nil {
		a.inbox.advance(*head[0].InboxKey)
	}
	for _, d := range head {
		ids = append(ids, d.ID)
	}
	// On MySQL several deliveries are acted on at once, each in its own
	// transaction on its own connection: their round trips overlap.
	par := 1
	if models.DialectOf(a.db) == models.MySQL {
		par = fanOutParallel
	}
	var (
		mu      gosync.Mutex
		handled int
		errs    []error
		wg      gosync.WaitGroup
	)
	next := make(chan uint64)
	for range min(par, max(1, len(ids))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				did, err := a.fanOutOne(ctx, id)
				mu.Lock()
				if did {
					handled++
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
	return handled, errors.Join(errs...)
}

func (a *App) fanOutOne(ctx context.Context, id uint64) (bool, error) {
	var d models.WebhookDelivery
	found := false
	err := a.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where("id = ? AND pending_at IS NOT NULL", id)
		if models.DialectOf(tx) == models.MySQL {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		if err := q.Take(&d).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return nil // done already, or another replica is on it
			}
			return fmt.Errorf("lock webhook delivery %d: %w", id, err)
		}
		found = true
		if err := a.act(ctx, tx, &d); err != nil {
			return err
		}
		return tx.Model(&models.WebhookDelivery{}).Where("id = ?", id).
			Updates(map[string]any{"pending_at": nil, "inbox_key": nil, "body": nil}).Error
	})
	if err == nil || !found {
		return found && err == nil, err
	}
	attempts := d.Attempts + 1
	wait := min(inboxMaxBackoff, time.Duration(1<<min(attempts, 20))*time.Second)
	a.log.ErrorContext(ctx, "webhook fan-out failed; it will be tried again", "shop", d.ShopDomain, "topic", d.Topic,
		"webhook_id", d.WebhookID, "attempts", attempts, "retry_in", wait.String(), "err", err)
	if uerr := a.db.WithContext(context.WithoutCancel(ctx)).Model(&models.WebhookDelivery{}).Where("id = ? AND pending_at IS NOT NULL", id).
		Updates(map[string]any{"attempts": attempts, "pending_at": a.now().Add(wait).UnixMilli(), "inbox_key": nil}).Error; uerr != nil {
		err = errors.Join(err, fmt.Errorf("postpone webhook delivery %d: %w", id, uerr))
	}
	return false, fmt.Errorf("fan out webhook delivery %s: %w", d.WebhookID, err)
}

// fanOutRetries lists deliveries whose retry after a failure is due
// (index (inbox_key, pending_at)).
func fanOutRetries(db *gorm.DB, now time.Time, limit int) *gorm.DB {
	return db.Model(&models.WebhookDelivery{}).Where("inbox_key IS NULL AND pending_at <= ?", now.UnixMilli()).
		Order("pending_at").Limit(limit)
}

// fanOutHead lists the head of the fan-out order (index (inbox_key, id)).
func fanOutHead(db *gorm.DB, limit int) *gorm.DB {
	return db.Model(&models.WebhookDelivery{}).Where("inbox_key IS NOT NULL").Order("inbox_key, id").Limit(limit)
}

// act does what a delivery asks, inside its transaction.
func (a *App) act(ctx context.Context, tx *gorm.DB, row *models.WebhookDelivery) error {
	d := webhookDelivery{topic: row.Topic, shop: row.ShopDomain, id: row.WebhookID}
	if row.TriggeredAt != nil {
		d.triggeredAt = row.TriggeredAt.UTC()
	}
	var product *ProductWebhook
	if d.topic == TopicProductsCreate || d.topic == TopicProductsUpdate {
		p, err := ParseProductWebhook(row.Body)
		if err != nil {
			// Checked when it was received; a row that cannot be read now
			// never will be.
			a.log.ErrorContext(ctx, "unreadable product webhook in the inbox dropped", "shop", d.shop, "webhook_id", d.id, "err", err)
			return nil
		}
		product = &p
	}
	return a.actOnWebhook(ctx, tx, d, product)
}

// checkProductWebhook refuses a product payload the fan-out could not
// read: no product id, or a media without one. It decodes only those ids,
// skipping the rest, which costs far less than the fan-out's full parse
// on the intake's hot path.
func checkProductWebhook(body []byte) error {
	var p struct {
		ID    flexID `json:"id"`
		GID   string `json:"admin_graphql_api_id"`
		Media []struct {
			ID  flexID `json:"id"`
			GID string `json:"admin_graphql_api_id"`
		} `json:"media"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("decode product payload: %w", err)
	}
	if gidOf("Product", p.GID, p.ID) == "" {
		return errors.New("product payload has no id")
	}
	for i, m := range p.Media {
		if gidOf("MediaImage", m.GID, m.ID) == "" {
			return fmt.Errorf("media %d has no id", i+1)
		}
	}
	return nil
}
