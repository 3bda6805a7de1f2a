// Package modelstest gives each database test its own fresh, migrated
// database: a SQLite file in t.TempDir(), and, when TEST_MYSQL_DSN is set,
// a new MySQL/MariaDB database dropped when the test ends.
package modelstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
)

// MySQLEnv names the variable that points the tests at a MySQL server,
// e.g. mysql://root@127.0.0.1:3306/ (the database part is ignored).
const MySQLEnv = "TEST_MYSQL_DSN"

// DB is one fresh test database.
type DB struct {
	Name string // "sqlite" or "mysql"
	URL  string // a DATABASE_URL for it
	DB   *gorm.DB
}

// Each runs fn as a subtest on SQLite and, when TEST_MYSQL_DSN is set, on
// MySQL, each with its own fresh migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	for _, name := range Dialects() {
		t.Run(name, func(t *testing.T) {
			fn(t, Open(t, name).DB)
		})
	}
}

// Dialects lists the databases this test run covers.
func Dialects() []string {
	if os.Getenv(MySQLEnv) != "" {
		return []string{"sqlite", "mysql"}
	}
	return []string{"sqlite"}
}

// Open creates, migrates and returns a fresh database of the named kind.
func Open(t testing.TB, name string) DB {
	t.Helper()
	u := NewURL(t, name)
	db, err := models.Open(context.Background(), u, nil)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { models.Close(db) })
	if _, err := models.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	return DB{Name: name, URL: u, DB: db}
}

// NewURL creates an empty database of the named kind and returns its
// DATABASE_URL, without migrating it.
func NewURL(t testing.TB, name string) string {
	t.Helper()
	switch name {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	case "mysql":
		return newMySQL(t)
	}
	t.Fatalf("unknown database kind %q", name)
	return ""
}

func newMySQL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(MySQLEnv)
	if raw == "" {
		t.Skip(MySQLEnv + " is not set")
	}
	base, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", MySQLEnv, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	admin := *base
	admin.Path = "/mysql"
	adminDB, err := models.Open(context.Background(), admin.String(), nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", MySQLEnv, err)
	}
	defer models.Close(adminDB)
	if err := adminDB.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := models.Open(context.Background(), admin.String(), nil)
		if err != nil {
			return
		}
		defer models.Close(db)
		db.Exec("DROP DATABASE IF EXISTS " + name)
	})
	u := *base
	u.Path = "/" + name
	if !strings.HasPrefix(u.String(), "mysql://") {
		t.Fatalf("%s must be a mysql:// URL", MySQLEnv)
	}
	return u.String()
}
