package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// SealedColumn is one database column that holds values made by Sealer,
// with how each row's associated data is formed.
type SealedColumn struct {
	Table  string // table name
	Key    string // the row's primary-key column
	Column string
	// Label names the secret for people (rotate-keys prints it).
	Label string
	// ad returns the associated data the value was sealed with, from the
	// row's shop domain.
	ad func(domain string) string
}

// RTBKeyAD is the associated data of a shop's Remove The Background key:
// the shop and the key's role, so neither can be swapped for another row's.
func RTBKeyAD(domain, role string) string { return domain + "|rtb-" + role }

// SealedColumns lists every stored secret. A new sealed column belongs
// here, so rotate-keys re-encrypts it.
var SealedColumns = []SealedColumn{
	{Table: "shops", Key: "id", Column: "access_token", Label: "Shopify access tokens", ad: shopAD},
	{Table: "shops", Key: "id", Column: "refresh_token", Label: "Shopify refresh tokens", ad: shopAD},
	{Table: "shop_settings", Key: "shop_id", Column: "rtb_contact_api_key", Label: "Remove The Background contact API keys",
		ad: func(d string) string { return RTBKeyAD(d, "contact") }},
	{Table: "shop_settings", Key: "shop_id", Column: "rtb_developer_api_key", Label: "Remove The Background developer API keys",
		ad: func(d string) string { return RTBKeyAD(d, "developer") }},
}

// shopAD is the associated data of a shop's tokens: its domain.
func shopAD(domain string) string { return domain }

// KeyID returns the key id a sealed value names ("" for an empty value).
func KeyID(sealed string) string {
	id, _, _ := strings.Cut(sealed, ":")
	return id
}

// ActiveKey is the id of the key that seals new values.
func (s *Sealer) ActiveKey() string { return s.active }

// Knows reports whether the sealer holds the key with this id.
func (s *Sealer) Knows(id string) bool { _, ok := s.aeads[id]; return ok }

// RotateOptions tune RotateKeys.
type RotateOptions struct {
	// BatchSize is how many rows are read at a time (default 100). Each
	// row is then rewritten by its own short statement.
	BatchSize int
	// Pause is slept between batches, to spare a busy database.
	Pause time.Duration
	Log   *slog.Logger

	// beforeWrite, when set, runs between reading a row and writing it
	// back (tests use it to change the row concurrently).
	beforeWrite func(table string, key uint64)
}

// ColumnCount is what rotation did to one sealed column.
type ColumnCount struct {
	Label    string
	Resealed int // rewritten under the active key
	Current  int // already under the active key
}

// RotateReport counts what RotateKeys did.
type RotateReport struct {
	Columns []ColumnCount
	// Raced counts rows the app changed between our read and our write;
	// they were read again, never overwritten.
	Raced int
	// Unreadable names values no key of ENCRYPTION_KEYS opens.
	Unreadable []string
}

// Resealed is the number of values rewritten in all columns.
func (r RotateReport) Resealed() int {
	n := 0
	for _, c := range r.Columns {
		n += c.Resealed
	}
	return n
}

// ErrUnreadableSecrets means some stored secret opens with no configured key.
var ErrUnreadableSecrets = errors.New("stored secrets that no key of ENCRYPTION_KEYS opens")

// RotateKeys re-seals every stored secret that is not under the sealer's
// active key. It is safe while replicas serve: rows are read in batches
// outside any transaction and each is rewritten by one compare-and-swap
// statement that matches the ciphertext it read, so a value the app wrote
// meanwhile (a token refresh, a settings save) is never overwritten; such
// a row is read again. Every rewritten row is committed on its own, so an
// interrupted run loses nothing and the next run goes on from what is left.
func RotateKeys(ctx context.Context, db *gorm.DB, sealer *Sealer, o RotateOptions) (RotateReport, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	var rep RotateReport
	counts := map[string]*ColumnCount{}
	for _, c := range SealedColumns {
		cc := &ColumnCount{Label: c.Label}
		counts[c.Table+"."+c.Column] = cc
	}
	for _, table := range sealedTables() {
		if err := rotateTable(ctx, db, sealer, o, table, counts, &rep); err != nil {
			return rep, err
		}
	}
	for _, c := range SealedColumns {
		rep.Columns = append(rep.Columns, *counts[c.Table+"."+c.Column])
	}
	if len(rep.Unreadable) > 0 {
		return rep, fmt.Errorf("%d %w (was a key removed too early?)", len(rep.Unreadable), ErrUnreadableSecrets)
	}
	return rep, nil
}

// sealedTables lists each table with its sealed columns, in a stable order.
func sealedTables() [][]SealedColumn {
	var order []string
	by := map[string][]SealedColumn{}
	for _, c := range SealedColumns {
		if by[c.Table] == nil {
			order = append(order, c.Table)
		}
		by[c.Table] = append(by[c.Table], c)
	}
	out := make([][]SealedColumn, len(order))
	for i, t := range order {
		out[i] = by[t]
	}
	return out
}

// sealedRow is one row of a table's sealed columns and its shop's domain.
type sealedRow struct {
	Key    uint64
	Domain string
	Values []string
}

// readSealed reads rows with key > after (or exactly key = only, when
// only is not 0) with their shop's domain.
func readSealed(ctx context.Context, db *gorm.DB, cols []SealedColumn, after, only uint64, limit int) ([]sealedRow, error) {
	t := cols[0].Table
	sel := []string{"t." + cols[0].Key}
	for _, c := range cols {
		sel = append(sel, "t."+c.Column)
	}
	q := db.WithContext(ctx).Table(t + " AS t")
	if t == "shops" {
		sel = append(sel, "t.domain")
	} else {
		sel = append(sel, "s.domain")
		q = q.Joins("JOIN shops s ON s.id = t.shop_id")
	}
	key := "t." + cols[0].Key
	if only != 0 {
		q = q.Where(key+" = ?", only)
	} else {
		q = q.Where(key+" > ?", after).Order(key).Limit(limit)
	}
	rows, err := q.Select(strings.Join(sel, ", ")).Rows()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t, err)
	}
	defer rows.Close()
	var out []sealedRow
	for rows.Next() {
		r := sealedRow{Values: make([]string, len(cols))}
		dest := []any{&r.Key}
		for i := range r.Values {
			dest = append(dest, &r.Values[i])
		}
		dest = append(dest, &r.Domain)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read %s: %w", t, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func rotateTable(ctx context.Context, db *gorm.DB, sealer *Sealer, o RotateOptions, cols []SealedColumn, counts map[string]*ColumnCount, rep *RotateReport) error {
	var after uint64
	for {
		batch, err := readSealed(ctx, db, cols, after, 0, o.BatchSize)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if err := rotateRow(ctx, db, sealer, o, cols, r, counts, rep); err != nil {
				return err
			}
			after = r.Key
		}
		if len(batch) < o.BatchSize {
			return nil
		}
		if o.Pause > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(o.Pause):
			}
		}
	}
}

// rotateRow re-seals one row's stale values with a single statement that
// only matches while the row still holds exactly what was read.
func rotateRow(ctx context.Context, db *gorm.DB, sealer *Sealer, o RotateOptions, cols []SealedColumn, r sealedRow, counts map[string]*ColumnCount, rep *RotateReport) error {
	const maxTries = 10
	for try := 0; try < maxTries; try++ {
		set := map[string]any{}
		var unreadable []string
		for i, c := range cols {
			v := r.Values[i]
			if v == "" || !sealer.NeedsReseal(v) {
				continue
			}
			plain, err := sealer.Open(v, c.ad(r.Domain))
			if err != nil {
				unreadable = append(unreadable, fmt.Sprintf("%s.%s of %s (key %q)", c.Table, c.Column, r.Domain, KeyID(v)))
				continue
			}
			resealed, err := sealer.Seal(plain, c.ad(r.Domain))
			if err != nil {
				return fmt.Errorf("seal %s.%s of %s: %w", c.Table, c.Column, r.Domain, err)
			}
			set[c.Column] = resealed
		}
		if len(set) == 0 {
			rep.Unreadable = append(rep.Unreadable, unreadable...)
			countRow(sealer, cols, r, set, counts)
			return nil
		}
		if o.beforeWrite != nil {
			o.beforeWrite(cols[0].Table, r.Key)
		}
		q := db.WithContext(ctx).Table(cols[0].Table).Where(cols[0].Key+" = ?", r.Key)
		for i, c := range cols {
			q = q.Where(c.Column+" = ?", r.Values[i])
		}
		res := q.UpdateColumns(set)
		if res.Error != nil {
			return fmt.Errorf("reseal %s %d: %w", cols[0].Table, r.Key, res.Error)
		}
		if res.RowsAffected == 1 {
			rep.Unreadable = append(rep.Unreadable, unreadable...)
			countRow(sealer, cols, r, set, counts)
			return nil
		}
		// The app changed the row since we read it: read it again.
		rep.Raced++
		o.Log.InfoContext(ctx, "row changed while resealing; reading it again", "table", cols[0].Table, "key", r.Key)
		again, err := readSealed(ctx, db, cols, 0, r.Key, 1)
		if err != nil {
			return err
		}
		if len(again) == 0 {
			return nil // deleted meanwhile (an uninstalled shop redacted)
		}
		r = again[0]
	}
	return fmt.Errorf("reseal %s %d: the row kept changing during %d tries; run rotate-keys again", cols[0].Table, r.Key, maxTries)
}

// countRow adds a finished row to the per-column counts.
func countRow(sealer *Sealer, cols []SealedColumn, r sealedRow, set map[string]any, counts map[string]*ColumnCount) {
	for i, c := range cols {
		cc := counts[c.Table+"."+c.Column]
		switch {
		case set[c.Column] != nil:
			cc.Resealed++
		case r.Values[i] != "" && !sealer.NeedsReseal(r.Values[i]):
			cc.Current++
		}
	}
}

// KeyUsage counts stored secrets by the key that sealed them.
type KeyUsage struct {
	Active string
	ByKey  map[string]int // key id → values sealed with it
	// Unknown counts values whose key is not in ENCRYPTION_KEYS.
	Unknown int
}

// Stale is how many values are sealed with a key other than the active one.
func (u KeyUsage) Stale() int {
	n := 0
	for id, c := range u.ByKey {
		if id != u.Active {
			n += c
		}
	}
	return n
}

// Keys lists the key ids in use, the active one first.
func (u KeyUsage) Keys() []string {
	var ids []string
	for id := range u.ByKey {
		if id != u.Active {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if u.ByKey[u.Active] > 0 {
		ids = append([]string{u.Active}, ids...)
	}
	return ids
}

// CountKeys reads every stored secret's key id (without decrypting) in
// batches.
func CountKeys(ctx context.Context, db *gorm.DB, sealer *Sealer, batchSize int) (KeyUsage, error) {
	if batchSize <= 0 {
		batchSize = 500
	}
	u := KeyUsage{Active: sealer.ActiveKey(), ByKey: map[string]int{}}
	for _, cols := range sealedTables() {
		var after uint64
		for {
			batch, err := readSealed(ctx, db, cols, after, 0, batchSize)
			if err != nil {
				return u, err
			}
			for _, r := range batch {
				for _, v := range r.Values {
					if v == "" {
						continue
					}
					id := KeyID(v)
					u.ByKey[id]++
					if !sealer.Knows(id) {
						u.Unknown++
					}
				}
				after = r.Key
			}
			if len(batch) < batchSize {
				break
			}
		}
	}
	return u, nil
}
