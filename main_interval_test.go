package main

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestReconcileIntervalSetsHowOftenReconciliationRuns: serve runs the
// reconciliation every RECONCILE_INTERVAL, recorded once per period.
func TestReconcileIntervalSetsHowOftenReconciliationRuns(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			env := testEnv(modelstest.NewURL(t, name))
			env["RECONCILE_INTERVAL"], env["RTB_POLL_INTERVAL"] = "1s", "2s"
			if name == "mysql" {
				if err := run(context.Background(), []string{"migrate"}, getenv(env), &bytes.Buffer{}, io.Discard); err != nil {
					t.Fatalf("migrate: %v", err)
				}
			}
			_, stop := startApp(t, env)
			defer stop()
			db, err := models.Open(context.Background(), env["DATABASE_URL"], nil)
			if err != nil {
				t.Fatal(err)
			}
			defer models.Close(db)
			deadline := time.Now().Add(10 * time.Second)
			for {
				var n int64
				db.Model(&models.CronRun{}).Where("name = ?", "reconcile").Count(&n)
				if n >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d reconciliation runs within 10 s at RECONCILE_INTERVAL=1s, want at least 3", n)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
