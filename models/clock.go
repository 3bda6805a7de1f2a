package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// DBNow reads the database server's clock, to the microsecond where the
// database keeps it (MySQL and MariaDB) and to the millisecond on SQLite,
// whose clock is this machine's. Every replica of a deployment shares the
// database's clock, whatever its own says.
func DBNow(ctx context.Context, db *gorm.DB) (time.Time, error) {
	q := "SELECT CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
	if DialectOf(db) == MySQL {
		// UNIX_TIMESTAMP does not depend on the session's time zone.
		q = "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"
	}
	var us int64
	if err := db.WithContext(ctx).Raw(q).Scan(&us).Error; err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return time.UnixMicro(us).UTC(), nil
}
