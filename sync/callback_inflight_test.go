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
			if err := p.notSubmitted(context.Background(), l, lostAnswer()); err != nil {
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

// afterQueryOn runs fn once, right after the next query of table that
// reads it the nth time (1: the next), outside that query's connection:
// it stands for another request landing at that moment.
func afterQueryOn(t *testing.T, db *gorm.DB, table string, nth int, fn func()) {
	t.Helper()
	name := "test:after-query-" + table
	seen := 0
	err := db.Callback().Query().After("gorm:query").Register(name, func(tx *gorm.DB) {
		if tx.Statement.Table != table {
			return
		}
		if seen++; seen == nth {
			fn()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Callback().Query().Remove(name) })
}

// TestACallbackJustBeforeTheTicketIsWrittenWakesTheJob: the callback comes
// while the worker that submitted still holds the job, after the worker's
// last look at the job and before it writes the ticket. The callback is
// answered as recorded, and the service never sends it again: the job must
// come due at once, not an hour-long poll interval later.
func TestACallbackJustBeforeTheTicketIsWrittenWakesTheJob(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock, l := submittingJob(t, db)
		// submitted reads the shop's state last before its write.
		callbackAfterQueryOn(t, db, p, l, "shops")
		if err := p.submitted(context.Background(), l, "T-9"); err != nil {
			t.Fatal(err)
		}
		followsTicket(t, db, l.job.ID, clock.Now())
	})
}

// TestACallbackJustBeforeAnUncertainSubmissionIsLetGoIsAdopted: the
// submission's answer is lost, and the callback naming its ticket comes
// after the worker's look for one and before it lets the job go as
// uncertain. The job must follow that ticket (due now), not wait as
// "uncertain" for a Retry while the ticket sits noted.
func TestACallbackJustBeforeAnUncertainSubmissionIsLetGoIsAdopted(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock, l := submittingJob(t, db)
		// notSubmitted's look for a noted ticket.
		callbackAfterQueryOn(t, db, p, l, "image_jobs")
		if err := p.notSubmitted(context.Background(), l, lostAnswer()); err != nil {
			t.Fatal(err)
		}
		followsTicket(t, db, l.job.ID, clock.Now())
	})
}

// TestACallbackRacingTheWorkersWriteFollowsTheTicket: the callback reads
// the job while its worker still holds it without a ticket, and the worker
// writes what it knows and lets the job go before the callback writes its
// note. The note finds the job changed; the callback must then count as
// the job's callback, not be answered as a duplicate that nobody acts on
// (the ticket written) or sit as a note nobody looks at (an uncertain
// submission). Only MySQL runs transactions side by side; SQLite's take
// turns.
func TestACallbackRacingTheWorkersWriteFollowsTheTicket(t *testing.T) {
	workers := map[string]func(p *Pipeline, l *lease) error{
		"ticket written": func(p *Pipeline, l *lease) error { return p.submitted(context.Background(), l, "T-9") },
		"answer lost":    func(p *Pipeline, l *lease) error { return p.notSubmitted(context.Background(), l, lostAnswer()) },
	}
	for name, worker := range workers {
		t.Run(name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				if models.DialectOf(db) == models.SQLite {
					t.Skip("SQLite runs one transaction at a time: the callback cannot interleave with the worker's write")
				}
				p, clock, l := submittingJob(t, db)
				// RecordCallback reads the job twice: once to answer
				// repeats, then in its transaction. The worker's write
				// lands after the second.
				afterQueryOn(t, db, "image_jobs", 2, func() {
					if err := worker(p, l); err != nil {
						t.Errorf("worker: %v", err)
					}
				})
				got, err := p.RecordCallback(context.Background(), l.job.ID, rtb.Callback{Ticket: "T-9"})
				if err != nil || got != rtb.CallbackRecorded {
					t.Fatalf("callback = %v %v, want it recorded", got, err)
				}
				followsTicket(t, db, l.job.ID, clock.Now())
			})
		})
	}
}

// callbackAfterQueryOn has the callback for ticket T-9 come right after
// the next query of table, and wants it recorded.
func callbackAfterQueryOn(t *testing.T, db *gorm.DB, p *Pipeline, l *lease, table string) {
	t.Helper()
	p.o.Schedule.PollInterval = time.Hour
	afterQueryOn(t, db, table, 1, func() {
		got, err := p.RecordCallback(context.Background(), l.job.ID, rtb.Callback{Ticket: "T-9"})
		if err != nil || got != rtb.CallbackRecorded {
			t.Errorf("callback = %v %v, want it recorded", got, err)
		}
	})
}

func lostAnswer() error {
	return &rtb.TransientError{Op: rtb.OpSubmit, Sent: true, Err: errors.New("connection reset")}
}

// followsTicket fails unless the job waits for ticket T-9, free, with its
// callback noted and GET Status due now.
func followsTicket(t *testing.T, db *gorm.DB, id uint64, now time.Time) {
	t.Helper()
	var j models.ImageJob
	db.Take(&j, id)
	if j.State != models.JobAwaitingRTB || j.Ticket == nil || *j.Ticket != "T-9" || j.LeaseOwner != nil || j.CallbackAt == nil {
		t.Fatalf("job %s ticket %v lease %v callback at %v error %q; want awaiting_rtb, ticket T-9, free, its callback noted",
			j.State, j.Ticket, j.LeaseOwner, j.CallbackAt, j.Error)
	}
	dueNow(t, &j, now)
}

// dueNow fails unless the job is due at now: a callback noted on it must
// have GET Status asked at once.
func dueNow(t *testing.T, j *models.ImageJob, now time.Time) {
	t.Helper()
	switch {
	case j.RunAt == nil:
		t.Fatalf("job %d is due never: its callback was lost", j.ID)
	case *j.RunAt > ms(now):
		t.Fatalf("job %d is due %v after now: its callback was lost until the poll", j.ID, time.Duration(*j.RunAt-ms(now))*time.Millisecond)
	}
}
