package admin_test

import (
	"context"
	"errors"
	"image/color"
	"testing"
	"time"

	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
)

// A media Shopify never finishes processing must not hold the caller:
// the wait ends at its deadline with ErrWaitTimeout, well before the
// caller's own context would.
func TestWaitMediaReadyEndsAtItsDeadline(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	c := ctx(t)
	src, err := f.client.StageUpload(c, "stuck.png", "image/png", shopifytest.SamplePNG(4, 4, color.White))
	if err != nil {
		t.Fatal(err)
	}
	f.store.StallProcessing(true)
	id, err := f.client.CreateFile(c, "stuck.png", src, "")
	if err != nil {
		t.Fatal(err)
	}
	outer, cancel := context.WithTimeout(c, 10*time.Second)
	defer cancel()
	start := time.Now()
	st, err := f.client.WaitMediaReady(outer, 300*time.Millisecond, id)
	if !errors.Is(err, admin.ErrWaitTimeout) {
		t.Fatalf("err = %v, want ErrWaitTimeout", err)
	}
	if outer.Err() != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("the wait lasted %s, past its deadline", time.Since(start))
	}
	if st[id] != "PROCESSING" {
		t.Fatalf("last status seen = %q, want PROCESSING", st[id])
	}
	if admin.IsRetryable(err) && errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("a wait timeout must not look like the caller's context ending")
	}

	// The client's own bound applies when the caller names none.
	short := admin.New(admin.Options{Shop: shop, Token: admin.StaticToken(f.token), BaseURL: f.store.URL(),
		PollInterval: 5 * time.Millisecond, MaxWait: 200 * time.Millisecond})
	if _, err := short.WaitMediaReady(outer, 0, id); !errors.Is(err, admin.ErrWaitTimeout) {
		t.Fatalf("err = %v, want ErrWaitTimeout from MaxWait", err)
	}
}

// FindFile takes only a READY file of exactly the asked name (Shopify's
// search is loose and shows a name only once the file is READY): a
// processing look-alike means "look again later", a failed one is no match.
func TestFindFileMatchesTheExactNameOnly(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	c := ctx(t)
	upload := func(name, mime string, data []byte) string {
		t.Helper()
		src, err := f.client.StageUpload(c, name, mime, data)
		if err != nil {
			t.Fatal(err)
		}
		id, err := f.client.CreateFile(c, name, src, "")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ready := upload("kept-1.jpg", "image/jpeg", shopifytest.SampleJPEG(4, 4, color.White))
	if _, err := f.client.WaitMediaReady(c, 0, ready); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kept-1.JPG", "kept-1.jpeg", "kept-1"} {
		if got, err := f.client.FindFile(c, name); got != nil || err != nil {
			t.Errorf("FindFile(%s) = %+v, %v; want none: only kept-1.jpg exists", name, got, err)
		}
	}
	if got, err := f.client.FindFile(c, "kept-1.jpg"); err != nil || got == nil || got.ID != ready {
		t.Fatalf("FindFile(kept-1.jpg) = %+v, %v", got, err)
	}

	f.store.FailNextProcessing(1)
	failed := upload("lost-2.png", "image/png", shopifytest.SamplePNG(4, 4, color.White))
	if st, err := f.client.WaitMediaReady(c, 0, failed); err != nil || st[failed] != "FAILED" {
		t.Fatalf("status %v, %v", st, err)
	}
	if got, err := f.client.FindFile(c, "lost-2.jpg"); got != nil || err != nil {
		t.Errorf("FindFile(lost-2.jpg) = %+v, %v; a FAILED look-alike is no match", got, err)
	}

	f.store.StallProcessing(true)
	upload("busy-3.png", "image/png", shopifytest.SamplePNG(4, 4, color.White))
	if got, err := f.client.FindFile(c, "busy-3.jpg"); got != nil || !errors.Is(err, admin.ErrFilePending) {
		t.Errorf("FindFile(busy-3.jpg) = %+v, %v; want ErrFilePending", got, err)
	}
}

// A media just given bytes is never READY at once: WaitNewMediaReady waits
// one poll interval before its first look, so it does not pay for a look
// that can only answer "processing"; WaitMediaReady looks at once.
func TestWaitNewMediaReadyLooksAfterOneInterval(t *testing.T) {
	f := setup(t, shopifytest.Options{MediaProcessingDelay: 40 * time.Millisecond})
	c := ctx(t)
	client := admin.New(admin.Options{Shop: shop, Token: admin.StaticToken(f.token), BaseURL: f.store.URL(), PollInterval: 150 * time.Millisecond})
	looks := func() int {
		n := 0
		for _, r := range f.store.Requests() {
			if r.Operation == "MediaStatus" {
				n++
			}
		}
		return n
	}
	for _, wait := range []struct {
		name  string
		fn    func(context.Context, time.Duration, ...string) (map[string]string, error)
		looks int
	}{{"WaitNewMediaReady", func(c context.Context, d time.Duration, ids ...string) (map[string]string, error) {
		return client.WaitNewMediaReady(c, d, time.Now(), ids...)
	}, 1}, {"WaitMediaReady", client.WaitMediaReady, 2}} {
		src, err := client.StageUpload(c, wait.name+".png", "image/png", shopifytest.SamplePNG(4, 4, color.White))
		if err != nil {
			t.Fatal(err)
		}
		id, err := client.CreateFile(c, wait.name+".png", src, "")
		if err != nil {
			t.Fatal(err)
		}
		before := looks()
		st, err := wait.fn(c, 5*time.Second, id)
		if err != nil || st[id] != "READY" {
			t.Fatalf("%s: %v, %v", wait.name, st, err)
		}
		if n := looks() - before; n != wait.looks {
			t.Errorf("%s looked %d times at a media READY after 40 ms, polling every 150 ms; want %d", wait.name, n, wait.looks)
		}
	}
}
