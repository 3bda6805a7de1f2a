package models_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestDBNowIsTheDatabaseClock: the database runs on this machine, so its
// clock reads as this machine's, to well under a second, and moves on.
func TestDBNowIsTheDatabaseClock(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		before := time.Now()
		first, err := models.DBNow(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		if d := first.Sub(before); d < -time.Second || d > time.Second {
			t.Fatalf("the database's clock reads %s, this machine's %s: %s apart", first, before, d)
		}
		time.Sleep(20 * time.Millisecond)
		second, err := models.DBNow(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		if d := second.Sub(first); d < 10*time.Millisecond || d > 5*time.Second {
			t.Fatalf("20 ms later the database's clock moved %s", d)
		}
	})
}
