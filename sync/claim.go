package sync

import (
	"context"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"rtbshopify/models"
)

// Claiming. A job ready to run has a queue_key: its place in start-time
// fair queueing across shops. A claim reads a small window of candidates
// in (queue_key, id) order through an index (no filesort, no locks), picks
// what the per-shop limit allows, then locks just those rows by primary
// key with SKIP LOCKED and leases them in one short transaction, so it
// costs O(1) row locks whatever the queue depth and never waits for
// another claim. Jobs whose run_at comes due — a retry's backoff, a poll,
// a not-yet-ready media, an expired lease, a job woken by a callback or
// the merchant — get their queue_key when a claim finds them due
// (promote). No shop row is read or locked.

const (
	// claimWindow is how many candidates past the wanted ones a claim
	// reads, so jobs of shops at their limit can be passed over.
	claimWindow = 32
	// claimSpare is how many more rows than wanted a claim locks, so that
	// concurrent claims reading the same window still find work.
	claimSpare = 3
	// promoteBatch caps the due jobs given a place per claim.
	promoteBatch = 500
	// promoteEvery is how often a pipeline looks for jobs that came due
	// while its claim order is not empty.
	promoteEvery = 100 * time.Millisecond
)

// claim takes the next due job for one worker.
func (p *Pipeline) claim(ctx context.Context) (*lease, error) {
	ls, err := p.claimN(ctx, 1)
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	return ls[0], nil
}

type claimCandidate struct {
	ID     uint64
	ShopID uint64
	RunAt  *int64
}

// claimN leases up to want due jobs, fairest first.
func (p *Pipeline) claimN(ctx context.Context, want int) ([]*lease, error) {
	now := p.now()
	db := p.o.DB.WithContext(ctx)
	// Jobs that came due are given their place every promoteEvery, and at
	// once when the claim order runs short.
	promoted := false
	if last := p.promotedAt.Load(); time.Since(time.Unix(0, last)) >= promoteEvery {
		if err := p.promote(ctx, now); err != nil {
			return nil, err
		}
		promoted = true
	}
	var cands []claimCandidate
	err := claimCandidates(db, want+claimWindow).Scan(&cands).Error
	if err != nil {
		return nil, fmt.Errorf("read claim candidates: %w", err)
	}
	if len(cands) < want && !promoted {
		if err := p.promote(ctx, now); err != nil {
			return nil, err
		}
		if err := claimCandidates(db, want+claimWindow).Scan(&cands).Error; err != nil {
			return nil, fmt.Errorf("read claim candidates: %w", err)
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	var stale []uint64
	due := cands[:0]
	shops := map[uint64]int{}
	for _, c := range cands {
		if c.RunAt == nil || *c.RunAt > ms(now) {
			stale = append(stale, c.ID) // its run_at changed since it was queued
			continue
		}
		due = append(due, c)
		shops[c.ShopID] = 0
	}
	if len(stale) > 0 {
		// Out of the claim order; promote gives it a place again when due.
		err := db.Model(&models.ImageJob{}).Where("id IN ? AND (run_at IS NULL OR run_at > ?)", stale, ms(now)).
			Update("queue_key", nil).Error
		if err != nil {
			return nil, fmt.Errorf("drop stale claim candidates: %w", err)
		}
	}
	if len(due) == 0 {
		return nil, nil
	}
	if err := p.leasesPerShop(db, now, shops); err != nil {
		return nil, err
	}
	// A shop whose jobs already hold MaxPerShop leases (across every
	// replica) is passed over: its rate limit is per shop, so more workers
	// on it would only wait while other shops' images wait for them.
	var pick []uint64
	for _, c := range due {
		if shops[c.ShopID] >= p.o.MaxPerShop {
			continue
		}
		shops[c.ShopID]++
		pick = append(pick, c.ID)
	}
	// The head of the order first. A claim that finds those rows locked
	// by concurrent claims (each reads the same window) tries another part
	// of the window rather than coming back empty.
	chunk := want + claimSpare
	for try := 0; try < 3 && len(pick) > 0; try++ {
		from := 0
		if try > 0 && len(pick) > chunk {
			from = mrand.IntN(len(pick) - chunk + 1)
		}
		part := pick[from:min(len(pick), from+chunk)]
		leases, err := p.lockAndLease(db, part, want, now)
		if err != nil || len(leases) > 0 {
			return leases, err
		}
		if try == 0 && len(pick) <= chunk {
			break
		}
	}
	return nil, nil
}

// lockAndLease locks the given candidates by primary key, passing over
// rows another claim holds, and leases up to want of them, fairest first,
// in one short transaction.
func (p *Pipeline) lockAndLease(db *gorm.DB, pick []uint64, want int, now time.Time) ([]*lease, error) {
	var got []models.ImageJob
	var leases []*lease
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := lockClaimed(tx, pick, now).Find(&got).Error; err != nil {
			return fmt.Errorf("lock claimed jobs: %w", err)
		}
		if len(got) == 0 {
			return nil
		}
		sort.Slice(got, func(i, j int) bool {
			a, b := got[i], got[j]
			if *a.QueueKey != *b.QueueKey {
				return *a.QueueKey < *b.QueueKey
			}
			return a.ID < b.ID
		})
		got = got[:min(want, len(got))]
		until := ms(now.Add(p.o.Lease))
		var owner strings.Builder
		owner.WriteString("CASE id")
		args := make([]any, 0, 2*len(got))
		ids := make([]uint64, len(got))
		for i := range got {
			tok := newToken()
			owner.WriteString(" WHEN ? THEN ?")
			args = append(args, got[i].ID, tok)
			ids[i] = got[i].ID
			got[i].LeaseOwner, got[i].LeaseUntil, got[i].RunAt, got[i].QueueKey = &tok, &until, &until, nil
			leases = append(leases, &lease{p: p, job: &got[i], token: tok})
		}
		owner.WriteString(" END")
		return tx.Model(&models.ImageJob{}).Where("id IN ?", ids).Updates(map[string]any{
			"lease_owner": gorm.Expr(owner.String(), args...), "lease_until": until, "run_at": until, "queue_key": nil,
		}).Error
	})
	if err != nil {
		return nil, err
	}
	return leases, nil
}

// leasesPerShop fills in how many workers hold live leases of each shop,
// on every replica. It reads the lease index: as many rows as jobs being
// worked on. The jobs a write-back took along share its worker's lease
// token, and its place.
func (p *Pipeline) leasesPerShop(db *gorm.DB, now time.Time, shops map[uint64]int) error {
	ids := make([]uint64, 0, len(shops))
	for id := range shops {
		ids = append(ids, id)
	}
	var leased []struct {
		ShopID     uint64
		LeaseOwner string
	}
	if err := leaseCounts(db, now, ids).Scan(&leased).Error; err != nil {
		return fmt.Errorf("count leases per shop: %w", err)
	}
	owners := map[string]bool{}
	for _, l := range leased {
		if !owners[l.LeaseOwner] {
			owners[l.LeaseOwner] = true
			shops[l.ShopID]++
		}
	}
	return nil
}

// promote gives jobs whose run_at came due a place in the claim order.
func (p *Pipeline) promote(ctx context.Context, now time.Time) error {
	p.promotedAt.Store(time.Now().UnixNano())
	db := p.o.DB.WithContext(ctx)
	var due []claimCandidate
	err := dueJobs(db, now, promoteBatch).Scan(&due).Error
	if err != nil {
		return fmt.Errorf("read due jobs: %w", err)
	}
	if len(due) == 0 {
		return nil
	}
	keys := p.newQueueKeys(db, now)
	var expr strings.Builder
	expr.WriteString("CASE id")
	args := make([]any, 0, 2*len(due))
	ids := make([]uint64, len(due))
	for i, d := range due {
		k, err := keys.next(d.ShopID)
		if err != nil {
			return err
		}
		expr.WriteString(" WHEN ? THEN ?")
		args = append(args, d.ID, k)
		ids[i] = d.ID
	}
	expr.WriteString(" END")
	k := gorm.Expr(expr.String(), args...)
	// A job that changed since it was read (claimed, cancelled) is left alone.
	err = db.Model(&models.ImageJob{}).Where("id IN ? AND queue_key IS NULL AND run_at <= ?", ids, ms(now)).
		Updates(map[string]any{"queue_key": k, "fair_key": k}).Error
	if err != nil {
		return fmt.Errorf("queue due jobs: %w", err)
	}
	return nil
}

// queueKeys hands out places in the claim order (start-time fair
// queueing). The queue's virtual time is the lowest key being worked on
// now, or else the head of the queue. A shop with jobs waiting continues
// one quantum after its last one, never before the virtual time; a shop
// without starts at the virtual time. So a shop that was idle — new, or
// done with an old import — goes next, and shops that arrive one after
// another interleave instead of queueing behind each other. It only
// reads, through indexes, a few rows: no shop row, no lock, so concurrent
// enqueues of one shop never wait for each other (two of them may share a
// key, which only costs exactness).
type queueKeys struct {
	db      *gorm.DB
	now     time.Time
	quantum int64
	virtual *int64
	shops   map[uint64]int64 // the next key of each shop seen
}

func (p *Pipeline) newQueueKeys(db *gorm.DB, now time.Time) *queueKeys {
	return &queueKeys{db: db, now: now, quantum: p.o.FairQuantum.Milliseconds(), shops: map[uint64]int64{}}
}

func (q *queueKeys) next(shopID uint64) (int64, error) {
	if k, ok := q.shops[shopID]; ok {
		q.shops[shopID] = k + q.quantum
		return k, nil
	}
	if q.virtual == nil {
		var v sql.NullInt64
		err := q.db.Model(&models.ImageJob{}).Select("MIN(fair_key)").
			Where("lease_until > ? AND lease_owner IS NOT NULL", ms(q.now)).Scan(&v).Error
		if err != nil {
			return 0, fmt.Errorf("read the queue's virtual time: %w", err)
		}
		if !v.Valid {
			if err := q.db.Model(&models.ImageJob{}).Select("MIN(queue_key)").Scan(&v).Error; err != nil {
				return 0, fmt.Errorf("read the head of the queue: %w", err)
			}
		}
		q.virtual = &v.Int64
	}
	key := *q.virtual
	// The shop's last place among jobs still waiting (ones whose run_at was
	// cleared since are stale and do not count).
	var tail []int64
	err := shopTail(q.db, shopID).Pluck("queue_key", &tail).Error
	if err != nil {
		return 0, fmt.Errorf("read shop %d's place in the queue: %w", shopID, err)
	}
	if len(tail) > 0 {
		key = max(key, tail[0]+q.quantum)
	}
	q.shops[shopID] = key + q.quantum
	return key, nil
}

// The statements of a claim, each served by an index (the MariaDB test
// checks their EXPLAIN: no filesort, no full scan).

// claimCandidates reads the head of the claim order, locking nothing.
func claimCandidates(db *gorm.DB, n int) *gorm.DB {
	return db.Model(&models.ImageJob{}).Select("id, shop_id, run_at").Where("queue_key IS NOT NULL").
		Order("queue_key, id").Limit(n)
}

// lockClaimed locks the picked jobs by primary key, passing over rows
// another claim holds, and rereads that they are still due.
func lockClaimed(tx *gorm.DB, ids []uint64, now time.Time) *gorm.DB {
	q := tx.Model(&models.ImageJob{}).Where("id IN ? AND queue_key IS NOT NULL AND run_at <= ?", ids, ms(now))
	if models.DialectOf(tx) == models.MySQL {
		q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
	}
	return q
}

// dueJobs reads jobs whose run_at came due and that have no place yet.
func dueJobs(db *gorm.DB, now time.Time, n int) *gorm.DB {
	return db.Model(&models.ImageJob{}).Select("id, shop_id").Where("queue_key IS NULL AND run_at <= ?", ms(now)).
		Order("run_at").Limit(n)
}

// leaseCounts lists the shop and owner of every live lease of the given
// shops (a lease_until is only ever set with its owner; the jobs a
// write-back took along share its owner), read from the lease index alone;
// they are counted in Go, which spares the database a sort.
func leaseCounts(db *gorm.DB, now time.Time, shopIDs []uint64) *gorm.DB {
	return db.Model(&models.ImageJob{}).Select("shop_id, lease_owner").Where("lease_until > ? AND shop_id IN ?", ms(now), shopIDs)
}

// shopTail reads a shop's last place among its waiting jobs.
func shopTail(db *gorm.DB, shopID uint64) *gorm.DB {
	return db.Model(&models.ImageJob{}).Where("shop_id = ? AND queue_key IS NOT NULL AND run_at IS NOT NULL", shopID).
		Order("queue_key DESC").Limit(1)
}
