package admin

import (
	"testing"
	"time"
)

// A wait for new media first looks when they have lately been READY, never sooner than the poll interval nor later than its ceiling,
// and follows the shop's processing time as it changes.
func TestFirstLookFollowsTheShopsProcessingTime(t *testing.T) {
	b := NewBudget()
	floor, ceiling := 50*time.Millisecond, 10*time.Second
	if got := b.firstLook(floor, ceiling); got != floor {
		t.Fatalf("with nothing seen yet: first look after %s, want the poll interval %s", got, floor)
	}
	b.processed(2 * time.Second)
	if got := b.firstLook(floor, ceiling); got != 2*time.Second {
		t.Fatalf("after one 2 s processing: first look after %s, want 2s", got)
	}
	for range 30 {
		b.processed(400 * time.Millisecond)
	}
	if got := b.firstLook(floor, ceiling); got < 390*time.Millisecond || got > 420*time.Millisecond {
		t.Fatalf("after processings of 400 ms: first look after %s, want about 400ms", got)
	}
	b.processed(time.Hour)
	if got := b.firstLook(floor, ceiling); got != ceiling {
		t.Fatalf("first look after %s, want at most %s", got, ceiling)
	}
}
