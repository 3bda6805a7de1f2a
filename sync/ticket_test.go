package sync

import (
	"context"
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb"
)

// TestTicketsAsLongAsCallbacksAcceptAreStored: the callback route accepts
// tickets of up to 128 characters, so the job's column holds as many; an
// unconfirmed submission adopts such a ticket from its callback.
func TestTicketsAsLongAsCallbacksAcceptAreStored(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		var j models.ImageJob
		db.Take(&j)
		db.Model(&j).Updates(map[string]any{"state": models.JobSubmitting, "submit_started_at": clock.Now(), "run_at": nil})
		ticket := strings.Repeat("a1b2c3d4-", 15)[:128]
		out, err := p.RecordCallback(context.Background(), j.ID, rtb.Callback{Ticket: ticket})
		if err != nil || out != rtb.CallbackRecorded {
			t.Fatalf("callback with a 128-character ticket: %v %v", out, err)
		}
		db.Take(&j, j.ID)
		if j.Ticket == nil || *j.Ticket != ticket {
			t.Fatalf("ticket stored as %v", j.Ticket)
		}
	})
}
