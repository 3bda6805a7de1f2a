package admin

import (
	"context"
	"image/color"
	"testing"
	"time"

	"rtbshopify/shopify/shopifytest"
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

// The time media take to process is learnt from when the look that found
// them READY was due, not from when it could be sent: a look held back by
// the cost budget must not teach that processing is slow, or waits would
// grow under load and the shop's points go unused.
func TestProcessingTimeLeavesOutBudgetWaits(t *testing.T) {
	s := shopifytest.New(shopifytest.Options{APIKey: "k", APISecret: "s", MediaProcessingDelay: 10 * time.Millisecond})
	t.Cleanup(s.Close)
	const shop = "budget.myshopify.com"
	s.AddShop(shop)
	b := NewBudget()
	c := New(Options{Shop: shop, Token: StaticToken(s.IssueAccessToken(shop, 0)), BaseURL: s.URL(), Budget: b, PollInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := c.StageUpload(ctx, "a.png", "image/png", shopifytest.SamplePNG(4, 4, color.White))
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	id, err := c.CreateFile(ctx, "a.png", src, "")
	if err != nil {
		t.Fatal(err)
	}
	// The bucket is empty as far as the app knows: the look waits about
	// 400 ms for points.
	b.mu.Lock()
	b.available, b.at, b.rate, b.lastCost["MediaStatus"] = 0, time.Now(), 100, 40
	b.mu.Unlock()
	st, err := c.WaitNewMediaReady(ctx, 5*time.Second, since, id)
	if err != nil || st[id] != "READY" {
		t.Fatalf("%v, %v", st, err)
	}
	if waited := time.Since(since); waited < 300*time.Millisecond {
		t.Fatalf("the look did not wait for the budget (%s)", waited)
	}
	if got := b.firstLook(time.Millisecond, time.Minute); got > 150*time.Millisecond {
		t.Fatalf("learnt processing time %s: the budget wait was counted as processing", got)
	}
}
