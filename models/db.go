// Package models owns the database: the GORM models, opening SQLite or
// MySQL/MariaDB from a DATABASE_URL, versioned migrations embedded in the
// binary, and encryption of the secrets stored in it.
package models

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"rtbshopify/models/text"
)

// Dialect names the kind of database behind a *gorm.DB.
type Dialect string

const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// DialectOf tells which database a handle talks to.
func DialectOf(db *gorm.DB) Dialect {
	if db.Dialector.Name() == "mysql" {
		return MySQL
	}
	return SQLite
}

// Open connects to DATABASE_URL: sqlite:PATH or mysql://USER:PASS@HOST:PORT/DB.
// It pings the database before returning.
func Open(ctx context.Context, databaseURL string, log *slog.Logger) (*gorm.DB, error) {
	gcfg := &gorm.Config{
		TranslateError: true,
		Logger:         newGormLogger(log),
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	var (
		db  *gorm.DB
		err error
	)
	switch {
	case strings.HasPrefix(databaseURL, "sqlite:"):
		db, err = gorm.Open(sqlite.Open(SQLiteDSN(strings.TrimPrefix(databaseURL, "sqlite:"))), gcfg)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		sqlDB, _ := db.DB()
		// One connection makes SQLite's single writer explicit: no
		// "database is locked" between our own goroutines.
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
		sqlDB.SetConnMaxLifetime(0)
	case strings.HasPrefix(databaseURL, "mysql://"):
		dsn, err := MySQLDSN(databaseURL)
		if err != nil {
			return nil, err
		}
		pool, err := PoolOf(databaseURL)
		if err != nil {
			return nil, err
		}
		db, err = gorm.Open(mysql.Open(dsn), gcfg)
		if err != nil {
			return nil, fmt.Errorf("open mysql: %s", redactDriverError(err))
		}
		sqlDB, _ := db.DB()
		sqlDB.SetMaxOpenConns(pool.MaxOpen)
		sqlDB.SetMaxIdleConns(pool.MaxIdle)
		sqlDB.SetConnMaxLifetime(30 * time.Minute)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	default:
		return nil, errors.New("DATABASE_URL must start with sqlite: or mysql://")
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to database: %s", redactDriverError(err))
	}
	return db, nil
}

// SQLiteDSN turns a file path into a glebarez/sqlite DSN with WAL, a busy
// timeout and foreign keys on.
func SQLiteDSN(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// MySQLDSN turns mysql://USER:PASS@HOST:PORT/DB?params into a
// go-sql-driver DSN with the options the app relies on.
func MySQLDSN(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || u.Scheme != "mysql" || u.Host == "" {
		return "", errors.New("DATABASE_URL must look like mysql://USER:PASS@HOST:PORT/DB")
	}
	c := gomysql.NewConfig()
	c.Net = "tcp"
	c.Addr = u.Host
	if u.Port() == "" {
		c.Addr = u.Host + ":3306"
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Passwd, _ = u.User.Password()
	}
	c.DBName = strings.Trim(u.Path, "/")
	c.ParseTime = true
	c.Loc = time.UTC
	c.ClientFoundRows = true
	// Bind parameters client-side: one round trip per query instead of
	// prepare, execute and close (safe with the utf8mb4 connection charset).
	c.InterpolateParams = true
	c.Collation = "utf8mb4_unicode_ci"
	c.Timeout = 5 * time.Second
	c.Params = map[string]string{"charset": "utf8mb4", "time_zone": "'+00:00'"}
	for k, vs := range u.Query() {
		if poolParams[k] {
			continue // sizes the pool; not a session variable
		}
		if len(vs) > 0 {
			c.Params[k] = vs[0]
		}
	}
	return c.FormatDSN(), nil
}

// redactDriverError keeps driver errors from echoing a DSN with a password.
func redactDriverError(err error) string {
	s := err.Error()
	if i := strings.Index(s, "@tcp("); i >= 0 {
		if j := strings.LastIndex(s[:i], ":"); j >= 0 {
			if k := strings.LastIndexAny(s[:j], " /"); k < j {
				s = s[:j+1] + "redacted" + s[i:]
			}
		}
	}
	return s
}

func newGormLogger(log *slog.Logger) logger.Interface {
	if log == nil {
		return logger.Discard
	}
	return &gormLogger{log: log}
}

// gormLogger sends GORM's warnings and errors to slog and keeps quiet about
// "record not found", which callers handle.
type gormLogger struct{ log *slog.Logger }

func (l *gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l *gormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(msg, args...))
}
func (l *gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, args...))
}
func (l *gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...))
}
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if err == nil || errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, gorm.ErrDuplicatedKey) || errors.Is(err, context.Canceled) {
		if d := time.Since(begin); d > 500*time.Millisecond {
			sql, rows := fc()
			l.log.WarnContext(ctx, "slow query", "ms", d.Milliseconds(), "rows", rows, "sql", text.Truncate(sql, 300))
		}
		return
	}
	sql, _ := fc()
	l.log.ErrorContext(ctx, "query failed", "err", err, "sql", text.Truncate(sql, 300))
}

// Close closes the pool behind db.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// IsDuplicate reports a unique-index violation.
func IsDuplicate(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) && me.Number == 1062 {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// IsUnavailable reports whether a statement failed because the database
// could not be reached or dropped the connection (killed, restarted, a
// network fault), not because of the statement: run again later, on
// another connection, it may succeed.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, gomysql.ErrInvalidConn) {
		return true
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		// Connection killed, server shutting down, gone away, lost.
		return me.Number == 1927 || me.Number == 1053 || me.Number == 2006 || me.Number == 2013
	}
	// The driver's dial or read failed (the server restarting refuses
	// connections). An HTTP call's network error comes wrapped in a
	// url.Error: that is another service's, judged by its own client.
	var ue *url.Error
	if errors.As(err, &ue) {
		return false
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// IsContention reports whether a statement lost a race for locks rather
// than failed: MySQL's deadlock victim (1213) or lock wait timeout (1205),
// or SQLite's busy database. Running the work again later succeeds.
func IsContention(err error) bool {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205
	}
	return err != nil && (strings.Contains(err.Error(), "database is locked") || strings.Contains(err.Error(), "SQLITE_BUSY"))
}
