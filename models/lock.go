package models

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// LockShop reads the shop row matching where (e.g. "id = ?" or
// "domain = ?") for update inside tx. On MySQL that is a row lock held to
// the end of tx; SQLite has no row locks, but the app opens its
// transactions IMMEDIATE, so tx already holds the database's single write
// lock. Only short, rare transactions take it (install, uninstall,
// redaction, starting a backfill, the month's budget): never a
// transaction that makes an HTTP call, and never intake or claiming.
func LockShop(tx *gorm.DB, where string, arg any) (*Shop, error) {
	q := tx.Where(where, arg)
	if DialectOf(tx) == MySQL {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var s Shop
	if err := q.Take(&s).Error; err != nil {
		return nil, err
	}
	return &s, nil
}
