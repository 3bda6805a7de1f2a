package e2e_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"image/color"
	"strings"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// The commit that marks a job submitting reaches the database, but its
// answer is lost (the connection drops between the two): the worker sees
// an error and has sent nothing. The job is queued again and submitted
// once, not left "submitting" for the merchant as if it might have been
// paid for.
func TestALostCommitOfTheSubmittingMarkQueuesTheJobAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		pool := &lostCommit{ConnPool: db.ConnPool}
		pool.armed.Store(true)
		db.ConnPool, db.Statement.ConnPool = pool, pool
		h := newHarness(t, db, harnessOptions{})
		rec := h.createProduct(shopifytest.NewProduct{Title: "Mug", Images: []shopifytest.NewImage{
			{Filename: "mug.jpg", Data: photo("jpg", color.RGBA{200, 180, 90, 255}), Alt: "mug"}}})
		waitReadyIn(t, h, shopDomain, rec.ID)
		h.webhook("products/create", rec.ID)
		j := h.waitJobs("the image written back", allIn(1, models.JobDone))[0]
		if pool.armed.Load() {
			t.Fatal("no commit marked a job submitting")
		}
		if n := len(h.rtb.Jobs()); n != 1 {
			t.Fatalf("%d submissions to Remove The Background, want 1", n)
		}
		if evs := eventsOf(t, db, j.ID); !strings.Contains(evs, "nothing was sent: queued again") {
			t.Fatalf("the job was not queued again after the lost commit: events\n%s", evs)
		}
	})
}

// lostCommit is a gorm.ConnPool whose transactions commit for real; the
// first one that marks a job submitting then answers an error, as a
// connection that drops between the server's commit and its answer does.
type lostCommit struct {
	gorm.ConnPool
	armed atomic.Bool
}

func (p *lostCommit) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	var tx gorm.ConnPool
	var err error
	switch b := p.ConnPool.(type) {
	case gorm.TxBeginner:
		var stx *sql.Tx
		if stx, err = b.BeginTx(ctx, opts); err == nil {
			return &lostCommitTx{Tx: stx, pool: p}, nil
		}
	case gorm.ConnPoolBeginner:
		tx, err = b.BeginTx(ctx, opts)
		if err == nil {
			return nil, fmt.Errorf("lostCommit: a %T transaction is not supported", tx)
		}
	default:
		err = fmt.Errorf("lostCommit: %T begins no transactions", p.ConnPool)
	}
	return nil, err
}

type lostCommitTx struct {
	*sql.Tx
	pool  *lostCommit
	marks bool // an UPDATE in it set a state to submitting
}

func (t *lostCommitTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	for _, a := range args {
		if a == models.JobSubmitting {
			t.marks = true
		}
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *lostCommitTx) Commit() error {
	err := t.Tx.Commit()
	if err == nil && t.marks && t.pool.armed.CompareAndSwap(true, false) {
		return driver.ErrBadConn
	}
	return err
}
