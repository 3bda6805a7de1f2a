package models

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the embedded migrations in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q is not NNNN_name.sql", e.Name())
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %d is missing (found %d)", i+1, m.Version)
		}
	}
	return out, nil
}

// LatestVersion is the schema version this binary expects.
func LatestVersion() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(128) NOT NULL,
  applied_at DATETIME(6) NOT NULL
)`

// statements fills in the dialect's pieces, drops the statements marked
// for the other dialect, and splits a migration into
// statements (MySQL runs one statement per Exec).
func statements(m Migration, d Dialect) []string {
	id, engine := "INTEGER PRIMARY KEY AUTOINCREMENT", ""
	if d == MySQL {
		id, engine = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
	}
	var out []string
	for _, s := range strings.Split(m.SQL, ";\n") {
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if st := strings.TrimSpace(strings.Join(lines, "\n")); st != "" {
			st = strings.TrimSuffix(st, ";")
			// {{MYSQL}} marks a statement only MySQL needs (SQLite does
			// not enforce what it changes, or cannot alter it in place).
			if rest, ok := strings.CutPrefix(st, "{{MYSQL}}"); ok {
				if d != MySQL {
					continue
				}
				st = strings.TrimSpace(rest)
			}
			st = strings.ReplaceAll(st, "{{ID}}", id)
			st = strings.ReplaceAll(st, "{{ENGINE}}", engine)
			if d == SQLite {
				// The SQLite driver only turns columns declared exactly
				// DATETIME back into time.Time.
				st = strings.ReplaceAll(st, "DATETIME(6)", "DATETIME")
			}
			out = append(out, st)
		}
	}
	return out
}

// SchemaVersion returns the highest applied migration, 0 on a new database.
func SchemaVersion(ctx context.Context, db *gorm.DB) (int, error) {
	var v sql.NullInt64
	err := db.WithContext(ctx).Raw("SELECT MAX(version) FROM schema_migrations").Scan(&v).Error
	if err != nil {
		if isMissingTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

func isMissingTable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "doesn't exist") || strings.Contains(s, "1146")
}

// ErrSchemaBehind is returned when the database needs `rtbshopify migrate`.
var ErrSchemaBehind = errors.New("database schema is behind")

// CheckSchema refuses a database whose schema is older (or newer) than this binary.
func CheckSchema(ctx context.Context, db *gorm.DB) error {
	have, err := SchemaVersion(ctx, db)
	if err != nil {
		return err
	}
	want := LatestVersion()
	switch {
	case have < want:
		return fmt.Errorf("%w: version %d, this build needs %d; run `rtbshopify migrate` first", ErrSchemaBehind, have, want)
	case have > want:
		return fmt.Errorf("database schema version %d is newer than this build knows (%d): deploy the newer build", have, want)
	}
	return nil
}

// Migrate applies every pending migration once. On MySQL several replicas
// may run it at the same moment: a named lock held on one connection makes
// them take turns, and each re-reads the version under the lock (on
// SQLite the write lock of one transaction does the same). (DDL
// commits implicitly in MySQL, so a row lock inside a transaction would not
// hold across the migration.)
func Migrate(ctx context.Context, db *gorm.DB) (applied []int, err error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	d := DialectOf(db)
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	if d == MySQL {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('rtbshopify_migrate', 60)").Scan(&got); err != nil {
			return nil, fmt.Errorf("migrate: take lock: %w", err)
		}
		if got.Int64 != 1 {
			return nil, errors.New("migrate: another replica held the migration lock for 60 s; try again")
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('rtbshopify_migrate')")
	}
	if d == SQLite {
		// BEGIN IMMEDIATE takes SQLite's write lock, so a second process
		// waits here and then sees the version the first one recorded.
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		defer tx.Rollback()
		applied, err := applyPending(ctx, tx, d, ms)
		if err != nil {
			return nil, err
		}
		return applied, tx.Commit()
	}
	return applyPending(ctx, conn, d, ms)
}

type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func applyPending(ctx context.Context, conn execQuerier, d Dialect, ms []Migration) (applied []int, err error) {
	if _, err := conn.ExecContext(ctx, createVersionTable); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var have sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&have); err != nil {
		return nil, fmt.Errorf("migrate: read version: %w", err)
	}
	for _, m := range ms {
		if m.Version <= int(have.Int64) {
			continue
		}
		for _, st := range statements(m, d) {
			if _, err := conn.ExecContext(ctx, st); err != nil {
				return applied, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.Version, m.Name, time.Now().UTC()); err != nil {
			return applied, fmt.Errorf("migration %04d_%s: record: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}
