package sync

import (
	"testing"
	"time"

	"rtbshopify/models"
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
