package models_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
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

func TestIsUnavailable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("load settings of a.myshopify.com: %w", gomysql.ErrInvalidConn), true},
		{fmt.Errorf("load shop: %w", driver.ErrBadConn), true},
		{&gomysql.MySQLError{Number: 1927, Message: "Connection was killed"}, true},
		{fmt.Errorf("load shop: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{&url.Error{Op: "Get", URL: "http://10.0.0.1/x.png", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, false},
		{&gomysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{&gomysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}, false},
		{gorm.ErrRecordNotFound, false},
		{errors.New("no such table: x"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := models.IsUnavailable(c.err); got != c.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A connection the server kills (KILL, as a restart or a failover does)
// answers an error IsUnavailable knows.
func TestIsUnavailableKnowsAKilledConnection(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		if models.DialectOf(db) != models.MySQL {
			t.Skip("SQLite is a file in the process: no connection to kill")
		}
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := sqlDB.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var id int64
		if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := db.Exec(fmt.Sprintf("KILL %d", id)).Error; err != nil {
			t.Fatal(err)
		}
		_, err = conn.ExecContext(context.Background(), "SELECT 1")
		if err == nil || !models.IsUnavailable(err) {
			t.Fatalf("a statement on a killed connection: %v, want an error IsUnavailable knows", err)
		}
	})
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
