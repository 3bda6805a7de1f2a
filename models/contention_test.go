package models_test

import (
	"errors"
	"fmt"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

func TestIsContention(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&gomysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}, true},
		{fmt.Errorf("lock product: %w", &gomysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}), true},
		{&gomysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{errors.New("database is locked (5) (SQLITE_BUSY)"), true},
		{errors.New("no such table: x"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := models.IsContention(c.err); got != c.want {
			t.Errorf("IsContention(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestIsContentionKnowsARealDeadlock: two transactions that take two rows'
// locks in opposite orders make MariaDB pick a victim, whose error must be
// recognised as contention (the work is run again, not failed).
func TestIsContentionKnowsARealDeadlock(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		if models.DialectOf(db) != models.MySQL {
			t.Skip("SQLite has one writer: it cannot deadlock")
		}
		for _, id := range []string{"a", "b"} {
			if err := db.Create(&models.ProductLock{ShopID: 1, ProductID: id, Owner: "x", UntilMs: 1}).Error; err != nil {
				t.Fatal(err)
			}
		}
		lock := func(tx *gorm.DB, id string) error {
			return tx.Model(&models.ProductLock{}).Where("shop_id = 1 AND product_id = ?", id).Update("owner", "y").Error
		}
		first, second := make(chan struct{}), make(chan error, 2)
		go func() {
			second <- db.Transaction(func(tx *gorm.DB) error {
				if err := lock(tx, "a"); err != nil {
					return err
				}
				close(first)
				return lock(tx, "b")
			})
		}()
		second <- db.Transaction(func(tx *gorm.DB) error {
			if err := lock(tx, "b"); err != nil {
				return err
			}
			<-first
			return lock(tx, "a")
		})
		errs := []error{<-second, <-second}
		victims := 0
		for _, err := range errs {
			if err != nil {
				if !models.IsContention(err) {
					t.Fatalf("deadlock error not recognised: %v", err)
				}
				victims++
			}
		}
		if victims != 1 {
			t.Fatalf("%d transactions failed, want exactly one deadlock victim: %v", victims, errs)
		}
	})
}
