package models_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

func TestMigrateFreshAndRerun(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := openEmpty(t, name)
			if err := models.CheckSchema(ctx, db); !errors.Is(err, models.ErrSchemaBehind) {
				t.Fatalf("CheckSchema on empty database = %v, want ErrSchemaBehind", err)
			}
			applied, err := models.Migrate(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != models.LatestVersion() {
				t.Fatalf("applied %v, want all %d", applied, models.LatestVersion())
			}
			again, err := models.Migrate(ctx, db)
			if err != nil || len(again) != 0 {
				t.Fatalf("second Migrate applied %v, err %v; want nothing", again, err)
			}
			if err := models.CheckSchema(ctx, db); err != nil {
				t.Fatalf("CheckSchema after migrate: %v", err)
			}
			var n int64
			db.Raw("SELECT COUNT(*) FROM schema_migrations").Scan(&n)
			if n != int64(models.LatestVersion()) {
				t.Fatalf("schema_migrations has %d rows, want %d", n, models.LatestVersion())
			}
			// The tables answer through their models.
			shop := models.Shop{Domain: "a.myshopify.com", State: models.ShopInstalled}
			if err := db.Create(&shop).Error; err != nil {
				t.Fatal(err)
			}
			dup := models.Shop{Domain: "a.myshopify.com", State: models.ShopInstalled}
			if err := db.Create(&dup).Error; !models.IsDuplicate(err) {
				t.Fatalf("duplicate domain: err = %v, want duplicate", err)
			}
		})
	}
}

func TestMigrateConcurrently(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			u := modelstest.NewURL(t, name)
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			counts := make([]int, 2)
			for i := range 2 {
				// Two handles, as two replicas would have.
				db, err := models.Open(ctx, u, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { models.Close(db) })
				wg.Add(1)
				go func() {
					defer wg.Done()
					applied, err := models.Migrate(ctx, db)
					errs[i], counts[i] = err, len(applied)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("concurrent migrate: %v", err)
				}
			}
			if counts[0]+counts[1] != models.LatestVersion() {
				t.Fatalf("migrations applied %d + %d times, want each exactly once (%d)", counts[0], counts[1], models.LatestVersion())
			}
		})
	}
}

func openEmpty(t *testing.T, name string) *gorm.DB {
	t.Helper()
	db, err := models.Open(context.Background(), modelstest.NewURL(t, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close(db) })
	return db
}

func TestMySQLDSN(t *testing.T) {
	dsn, err := models.MySQLDSN("mysql://app:s%40cret@db.internal:3307/rtb")
	if err != nil {
		t.Fatal(err)
	}
	c, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "app" || c.Passwd != "s@cret" || c.Addr != "db.internal:3307" || c.DBName != "rtb" ||
		!c.ParseTime || !c.ClientFoundRows || c.Loc != time.UTC || c.Params["charset"] != "utf8mb4" {
		t.Errorf("DSN %q does not carry the options the app relies on", dsn)
	}
	if _, err := models.MySQLDSN("postgres://x"); err == nil {
		t.Error("a non-mysql URL was accepted")
	}
}
