package sync

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb"
)

// submittingJob claims the queued job and marks it submitting, as a worker
// does just before the POST leaves.
func submittingJob(t *testing.T, db *gorm.DB) (*Pipeline, *testClock, *lease) {
	t.Helper()
	p, clock := queuedJob(t, db)
	l, err := p.claim(context.Background())
	if err != nil || l == nil {
		t.Fatalf("claim: %v %v", l, err)
	}
	if err := l.update(context.Background(), map[string]any{"state": models.JobSubmitting, "submit_started_at": clock.Now(), "run_at": nil}, "submitting"); err != nil {
		t.Fatal(err)
	}
	return p, clock, l
}

// TestACallbackWhileTheSubmissionIsInFlightIsKept: Remove The Background
// may call back while the worker that submitted the image still holds its
// lease (its answer not read yet, or the worker dead and its lease not yet
// expired). The callback proves the image was accepted and billed, and the
// service tries only three times, so it is noted at once, answered as
// recorded, and whoever resolves the job adopts its ticket instead of
// leaving the merchant a Retry that would pay a second time.
func TestACallbackWhileTheSubmissionIsInFlightIsKept(t *testing.T) {
	callback := func(t *testing.T, p *Pipeline, id uint64, ticket string, want rtb.CallbackOutcome) {
		t.Helper()
		got, err := p.RecordCallback(context.Background(), id, rtb.Callback{Ticket: ticket})
		if err != nil || got != want {
			t.Fatalf("callback %s = %v %v, want %v", ticket, got, err, want)
		}
	}
	awaiting := func(t *testing.T, db *gorm.DB, id uint64, ticket string, now time.Time) {
		t.Helper()
		var j models.ImageJob
		db.Take(&j, id)
		if j.State != models.JobAwaitingRTB || j.Ticket == nil || *j.Ticket != ticket || j.LeaseOwner != nil {
			t.Fatalf("job: %s ticket %v lease %v; want awaiting_rtb with ticket %s and no lease", j.State, j.Ticket, j.LeaseOwner, ticket)
		}
		// The callback said it is done: GET Status is asked now, not
		// one poll interval later.
		if j.RunAt == nil || *j.RunAt > ms(now) {
			t.Fatalf("job not due now after its callback: run_at %v", j.RunAt)
		}
	}
	t.Run("worker dies", func(t *testing.T) {
		modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
			p, clock, l := submittingJob(t, db)
			callback(t, p, l.job.ID, "T-9", rtb.CallbackRecorded)
			callback(t, p, l.job.ID, "T-9", rtb.CallbackDuplicate)
			callback(t, p, l.job.ID, "T-other", rtb.CallbackTicketMismatch)
			clock.Advance(p.o.Lease + time.Minute)
			if err := p.RescueLeases(context.Background()); err != nil {
				t.Fatal(err)
			}
			awaiting(t, db, l.job.ID, "T-9", clock.Now())
			if _, err := p.Retry(context.Background(), l.job.ShopID, l.job.ID); !errors.Is(err, ErrConflict) {
				t.Fatalf("Retry of a job whose ticket is known: %v, want a conflict (it would pay twice)", err)
			}
		})
	})
	t.Run("answer lost", func(t *testing.T) {
		modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
			p, clock, l := submittingJob(t, db)
			callback(t, p, l.job.ID, "T-9", rtb.CallbackRecorded)
			lost := &rtb.TransientError{Op: rtb.OpSubmit, Sent: true, Err: errors.New("connection reset")}
			if err := p.notSubmitted(context.Background(), l, lost); err != nil {
				t.Fatal(err)
			}
			awaiting(t, db, l.job.ID, "T-9", clock.Now())
		})
	})
	t.Run("answer arrives", func(t *testing.T) {
		modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
			p, clock, l := submittingJob(t, db)
			callback(t, p, l.job.ID, "T-9", rtb.CallbackRecorded)
			if err := p.submitted(context.Background(), l, "T-9"); err != nil {
				t.Fatal(err)
			}
			awaiting(t, db, l.job.ID, "T-9", clock.Now())
			callback(t, p, l.job.ID, "T-9", rtb.CallbackDuplicate)
		})
	})
}

// TestALateCallbackOfASettledSubmissionIsNotAdopted: a job sent again
// after its result was rejected may still hear from its earlier
// submission. That ticket was paid for and its result rejected: taking it
// for the new submission would bring the rejected image back.
func TestALateCallbackOfASettledSubmissionIsNotAdopted(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock, l := submittingJob(t, db)
		old := "T-REJECTED"
		month := clock.Now().Format("2006-01")
		if err := db.Create(&models.JobCharge{ShopID: l.job.ShopID, JobID: l.job.ID, Month: month, Price: "0.95", Ticket: &old, CreatedAt: clock.Now()}).Error; err != nil {
			t.Fatal(err)
		}
		for _, ticket := range []string{old, "t-rejected"} {
			got, err := p.RecordCallback(context.Background(), l.job.ID, rtb.Callback{Ticket: ticket})
			if err != nil || got != rtb.CallbackTicketMismatch {
				t.Fatalf("callback of the settled ticket %s = %v %v, want it refused", ticket, got, err)
			}
		}
		var j models.ImageJob
		db.Take(&j, l.job.ID)
		if j.CallbackTicket != nil || j.Ticket != nil || j.CallbackAt != nil {
			t.Fatalf("the settled ticket was noted: ticket %v, noted %v, callback at %v", j.Ticket, j.CallbackTicket, j.CallbackAt)
		}
		// The new submission's own callback still counts.
		if got, err := p.RecordCallback(context.Background(), l.job.ID, rtb.Callback{Ticket: "T-NEW"}); err != nil || got != rtb.CallbackRecorded {
			t.Fatalf("callback of the new submission = %v %v, want it noted", got, err)
		}
	})
}
