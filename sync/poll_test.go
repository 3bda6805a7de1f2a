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

// TestPollsBackOffUpToACap: each GET Status waits as long again as the job
// has waited since it was last heard of, from PollInterval up to
// MaxPollInterval; a callback restarts the series.
func TestPollsBackOffUpToACap(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	p := New(Options{Now: clock.Now, Schedule: Schedule{Disabled: true, PollInterval: 30 * time.Minute, MaxPollInterval: 3 * time.Hour}})
	submitted := clock.Now()
	j := &models.ImageJob{SubmittedAt: &submitted}
	at := time.UnixMilli(p.firstPoll(submitted)).UTC()
	var waits []time.Duration
	for range 7 {
		clock.t = at
		next := time.UnixMilli(p.nextPoll(j)).UTC()
		waits = append(waits, next.Sub(at))
		at = next
	}
	want := []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour, 3 * time.Hour, 3 * time.Hour}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits between asks %v, want %v", waits, want)
		}
	}
	// A callback that found the image not delivered: asked again after
	// PollInterval, not after the long wait the job had reached.
	cb := clock.Now()
	j.CallbackAt = &cb
	if got := time.UnixMilli(p.nextPoll(j)).UTC().Sub(cb); got != 30*time.Minute {
		t.Fatalf("after a callback the next ask waits %s, want 30m", got)
	}
}

// statusRTB answers GET Status with a fixed status; nothing else.
type statusRTB struct{ status int }

func (s statusRTB) Templates(context.Context, rtb.Credentials) ([]rtb.Template, error) {
	return nil, errors.New("not in this test")
}
func (s statusRTB) SubmitImage(context.Context, rtb.Credentials, rtb.SubmitRequest) (string, error) {
	return "", errors.New("not in this test")
}
func (s statusRTB) Status(_ context.Context, _ rtb.Credentials, ticket string) (*rtb.ImageStatus, error) {
	return &rtb.ImageStatus{Ticket: ticket, StatusID: s.status, StatusName: "In production"}, nil
}

// TestACallbackDuringAPollCounts: a callback that arrives while a worker is
// asking GET Status does not wake the job (the worker holds it); the
// worker's next ask is planned from that callback, PollInterval later,
// not from the submission hours ago.
func TestACallbackDuringAPollCounts(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		p.o.RTB = statusRTB{status: rtb.StatusInProduction}
		var j models.ImageJob
		db.Take(&j)
		submitted := clock.Now().Add(-2 * time.Hour)
		db.Model(&j).Updates(map[string]any{"state": models.JobAwaitingRTB, "ticket": "T-1", "submitted_at": submitted, "run_at": ms(clock.Now())})
		l, err := p.claim(context.Background())
		if err != nil || l == nil {
			t.Fatalf("claim: %v %v", l, err)
		}
		if out, err := p.RecordCallback(context.Background(), j.ID, rtb.Callback{Ticket: "T-1"}); err != nil || out != rtb.CallbackRecorded {
			t.Fatalf("callback: %v %v", out, err)
		}
		if err := p.poll(context.Background(), l); err != nil {
			t.Fatal(err)
		}
		db.Take(&j, j.ID)
		if j.RunAt == nil {
			t.Fatal("the job has no next ask")
		}
		if got := time.UnixMilli(*j.RunAt).Sub(clock.Now()); (got - p.o.Schedule.PollInterval).Abs() > time.Millisecond {
			t.Fatalf("next ask %s from now, want %s after the callback", got, p.o.Schedule.PollInterval)
		}
	})
}

// askingRTB answers GET Status with a fixed status after running during,
// which stands for what happens while the question is on its way.
type askingRTB struct {
	statusRTB
	during func()
}

func (s askingRTB) Status(ctx context.Context, c rtb.Credentials, ticket string) (*rtb.ImageStatus, error) {
	s.during()
	return s.statusRTB.Status(ctx, c, ticket)
}

// TestACallbackWhileAPollIsAskedWakesTheJob: the first callback comes while
// a worker's GET Status is on its way. The answer ("in production") may
// predate the delivery the callback announces, and the callback did not
// wake the job (the worker held it): the job is due again at once, not a
// poll interval later.
func TestACallbackWhileAPollIsAskedWakesTheJob(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		var j models.ImageJob
		db.Take(&j)
		db.Model(&j).Updates(map[string]any{"state": models.JobAwaitingRTB, "ticket": "T-1", "submitted_at": clock.Now().Add(-2 * time.Hour), "run_at": ms(clock.Now())})
		p.o.RTB = askingRTB{statusRTB{status: rtb.StatusInProduction}, func() {
			if out, err := p.RecordCallback(context.Background(), j.ID, rtb.Callback{Ticket: "T-1"}); err != nil || out != rtb.CallbackRecorded {
				t.Errorf("callback: %v %v", out, err)
			}
		}}
		l, err := p.claim(context.Background())
		if err != nil || l == nil {
			t.Fatalf("claim: %v %v", l, err)
		}
		if err := p.poll(context.Background(), l); err != nil {
			t.Fatal(err)
		}
		db.Take(&j, j.ID)
		if j.State != models.JobAwaitingRTB || j.LeaseOwner != nil {
			t.Fatalf("job %s, lease %v; want awaiting_rtb and free", j.State, j.LeaseOwner)
		}
		dueNow(t, &j, clock.Now())
	})
}
