package models_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

func TestPoolOfDatabaseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		want    models.Pool
		wantErr string
	}{
		{"mysql://u:p@h:3306/db", models.DefaultPool, ""},
		{"mysql://u:p@h:3306/db?max_open_conns=6", models.Pool{MaxOpen: 6, MaxIdle: 6}, ""},
		{"mysql://u:p@h:3306/db?max_open_conns=8&max_idle_conns=2", models.Pool{MaxOpen: 8, MaxIdle: 2}, ""},
		{"mysql://u:p@h:3306/db?max_open_conns=0", models.Pool{}, "max_open_conns"},
		{"mysql://u:p@h:3306/db?max_idle_conns=x", models.Pool{}, "max_idle_conns"},
		{"mysql://u:p@h:3306/db?max_open_conns=2&max_idle_conns=3", models.Pool{}, "exceeds"},
	} {
		got, err := models.PoolOf(tc.url)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "DATABASE_URL") {
				t.Errorf("%s: err %v, want one naming DATABASE_URL and %s", tc.url, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.url, got, err, tc.want)
		}
	}
	// The pool parameters are not sent to the server as session variables.
	dsn, err := models.MySQLDSN("mysql://u:p@h:3306/db?max_open_conns=6&max_idle_conns=2&sql_mode=ANSI")
	if err != nil || strings.Contains(dsn, "max_open_conns") || strings.Contains(dsn, "max_idle_conns") || !strings.Contains(dsn, "sql_mode=ANSI") {
		t.Errorf("dsn %q, %v", dsn, err)
	}
}

func TestOpenSizesTheMySQLPoolFromDatabaseURL(t *testing.T) {
	u := modelstest.NewURL(t, "mysql")
	parsed, _ := url.Parse(u)
	q := parsed.Query()
	q.Set("max_open_conns", "3")
	parsed.RawQuery = q.Encode()
	db, err := models.Open(context.Background(), parsed.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	sqlDB, _ := db.DB()
	if n := sqlDB.Stats().MaxOpenConnections; n != 3 {
		t.Errorf("MaxOpenConnections %d, want 3", n)
	}
}
