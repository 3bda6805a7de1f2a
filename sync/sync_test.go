package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb"
	"rtbshopify/shopify"
)

// newTestPipeline is a pipeline on db that is never started; tests drive
// its parts directly. Collaborators that would reach a service are nil.
func newTestPipeline(t *testing.T, db *gorm.DB) *Pipeline {
	t.Helper()
	sealer, err := models.NewSealer([]config.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := rtb.NewTokenSigner([]rtb.TokenKey{{ID: "k1", Secret: bytes.Repeat([]byte{2}, 32)}})
	return New(Options{DB: db, Sealer: sealer, Signer: signer, Schedule: Schedule{Disabled: true}})
}

func addShop(t *testing.T, p *Pipeline, domain string, s Settings) *models.Shop {
	t.Helper()
	now := time.Now().UTC()
	shop := &models.Shop{Domain: domain, State: models.ShopInstalled, CreatedAt: now, UpdatedAt: now}
	if err := p.o.DB.Create(shop).Error; err != nil {
		t.Fatal(err)
	}
	s.ShopID = shop.ID
	if err := SaveSettings(context.Background(), p.o.DB, p.o.Sealer, shop, s); err != nil {
		t.Fatal(err)
	}
	return shop
}

func readySettings() Settings {
	s := DefaultSettings(0)
	s.Enabled = true
	s.Credentials = rtb.Credentials{ContactEmail: "m@example.com", ContactAPIKey: "key"}
	s.TemplateID, s.TemplatePrice = "2000045", "0.95"
	return s
}

func webhookOf(productID string, media ...shopify.WebhookMedia) shopify.ProductWebhook {
	return shopify.ProductWebhook{ID: productID, Title: "P", ProductType: "Shirts", Vendor: "Acme", Tags: []string{"summer"}, Media: media}
}

func image(id string, pos int) shopify.WebhookMedia {
	return shopify.WebhookMedia{ID: id, ContentType: "IMAGE", Status: "READY", Position: pos, PreviewURL: "https://cdn.example/" + id + ".jpg"}
}

func enqueue(t *testing.T, p *Pipeline, shop *models.Shop, w shopify.ProductWebhook) {
	t.Helper()
	err := p.o.DB.Transaction(func(tx *gorm.DB) error { return p.EnqueueProduct(context.Background(), tx, shop, w) })
	if err != nil {
		t.Fatal(err)
	}
}

// testClock is a clock the test moves.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// queuedJob is a test pipeline on a clock the test moves, with one shop
// and one queued image job.
func queuedJob(t *testing.T, db *gorm.DB) (*Pipeline, *testClock) {
	t.Helper()
	p := newTestPipeline(t, db)
	clock := &testClock{t: time.Now()}
	p.o.Now = clock.Now
	shop := addShop(t, p, "a.myshopify.com", readySettings())
	enqueue(t, p, shop, webhookOf("gid://shopify/Product/1", image("gid://shopify/MediaImage/1", 1)))
	return p, clock
}

func TestClaimIsFairAcrossShops(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		clock := &testClock{t: time.Now()}
		p.o.Now = clock.Now
		big := addShop(t, p, "big.myshopify.com", readySettings())
		small := addShop(t, p, "small.myshopify.com", readySettings())
		// A large import: 300 products of 2 images each.
		for i := range 300 {
			enqueue(t, p, big, webhookOf(fmt.Sprint("gid://shopify/Product/", i), image(fmt.Sprint("gid://shopify/MediaImage/b", i, "a"), 1), image(fmt.Sprint("gid://shopify/MediaImage/b", i, "b"), 2)))
		}
		// Workers are busy with the import when the small shop's image arrives.
		for range 5 {
			l, err := p.claim(context.Background())
			if err != nil || l == nil || l.job.ShopID != big.ID {
				t.Fatalf("claim: %v %v", l, err)
			}
			if err := l.release(context.Background(), map[string]any{"state": models.JobAwaitingRTB}, nil, ""); err != nil {
				t.Fatal(err)
			}
		}
		// An hour later (the import is slow), whatever the wall clock says.
		clock.Advance(time.Hour)
		enqueue(t, p, small, webhookOf("gid://shopify/Product/s1", image("gid://shopify/MediaImage/s1", 1)))
		for n := 1; n <= 3; n++ {
			l, err := p.claim(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if l.job.ShopID == small.ID {
				return
			}
		}
		t.Fatal("the small shop's image was not among the next 3 claims behind a 600-image import")
	})
}

func TestLeaseFencing(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		first, _ := p.claim(context.Background())
		if again, _ := p.claim(context.Background()); again != nil {
			t.Fatal("a leased job was claimed twice")
		}
		// The first worker stalls past its lease; another takes the job.
		clock.Advance(p.o.Lease + time.Second)
		second, _ := p.claim(context.Background())
		if second == nil || second.job.ID != first.job.ID {
			t.Fatal("an expired lease was not taken over")
		}
		if err := first.update(context.Background(), map[string]any{"state": models.JobFailed}, "late write"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("stale worker's write: %v, want ErrLeaseLost", err)
		}
		if err := second.update(context.Background(), map[string]any{"error": "x"}, ""); err != nil {
			t.Fatalf("current worker's write: %v", err)
		}
		var j models.ImageJob
		db.Take(&j, first.job.ID)
		if j.State != models.JobQueued {
			t.Fatalf("the stale worker changed the job to %s", j.State)
		}
	})
}

func TestEligibility(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		s := readySettings()
		s.ImageScope = ScopeFeatured
		s.Filters = Filters{ProductTypes: []string{"shirts"}, TagsExclude: []string{"no-rtb"}}
		shop := addShop(t, p, "a.myshopify.com", s)
		video := image("gid://shopify/MediaImage/v", 3)
		video.ContentType = "VIDEO"
		// The app's own images carry names a merchant would give them: they
		// are known by the ids recorded, one written back and one held.
		own := image("gid://shopify/MediaImage/own", 4)
		own.PreviewURL = "https://cdn.example/files/shirt-background-removed-ab12cd.png?v=1"
		held := image("gid://shopify/MediaImage/held", 5)
		held.PreviewURL = "https://cdn.example/files/shirt-background-removed-ef34gh.png?v=1"
		for i, m := range map[string]string{"result_media_id": own.ID, "review_file_id": held.ID} {
			j := models.ImageJob{ShopID: shop.ID, ProductID: "gid://shopify/Product/9", MediaID: "gid://shopify/MediaImage/orig-" + i, State: models.JobDone}
			if err := db.Create(&j).Error; err != nil {
				t.Fatal(err)
			}
			db.Model(&models.ImageJob{}).Where("id = ?", j.ID).Update(i, m)
		}
		// An image that merely looks like the app's old names is the merchant's.
		lookalike := image("gid://shopify/MediaImage/look", 1)
		lookalike.PreviewURL = "https://cdn.example/files/rtbshopify-processed-7.png?v=1"
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/1", image("gid://shopify/MediaImage/f", 1), image("gid://shopify/MediaImage/s", 2), video, own, held))
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/4", lookalike))
		w := webhookOf("gid://shopify/Product/2", image("gid://shopify/MediaImage/x", 1))
		w.Tags = []string{"No-RTB"}
		enqueue(t, p, shop, w)
		w3 := webhookOf("gid://shopify/Product/3", image("gid://shopify/MediaImage/y", 1))
		w3.ProductType = "Mugs"
		enqueue(t, p, shop, w3)

		want := map[string]string{
			"gid://shopify/MediaImage/f":    "",
			"gid://shopify/MediaImage/s":    "Only the featured image is processed (settings: image scope).",
			"gid://shopify/MediaImage/v":    "Not an image (video).",
			"gid://shopify/MediaImage/own":  "This is an image the app uploaded.",
			"gid://shopify/MediaImage/held": "This is an image the app uploaded.",
			"gid://shopify/MediaImage/look": "",
			"gid://shopify/MediaImage/x":    "The product has a tag the settings exclude.",
			"gid://shopify/MediaImage/y":    "The product type is not in the settings' product types.",
		}
		var jobs []models.ImageJob
		db.Where("product_id <> ?", "gid://shopify/Product/9").Find(&jobs)
		if len(jobs) != len(want) {
			t.Fatalf("%d jobs, want %d", len(jobs), len(want))
		}
		for _, j := range jobs {
			wantState := models.JobSkipped
			if want[j.MediaID] == "" {
				wantState = models.JobQueued
			}
			if j.State != wantState || j.Error != want[j.MediaID] {
				t.Errorf("%s: %s %q, want %s %q", j.MediaID, j.State, j.Error, wantState, want[j.MediaID])
			}
		}
		// The tag is removed: the skipped image is looked at again.
		w.Tags = nil
		enqueue(t, p, shop, w)
		var x models.ImageJob
		db.Where("media_id = ?", "gid://shopify/MediaImage/x").Take(&x)
		if x.State != models.JobQueued || x.RunAt == nil {
			t.Fatalf("re-tagged product's image is %s", x.State)
		}
		// The same webhook again adds nothing.
		var before, after int64
		db.Model(&models.ImageJob{}).Count(&before)
		enqueue(t, p, shop, w)
		db.Model(&models.ImageJob{}).Count(&after)
		if before != after {
			t.Fatal("a repeated webhook created jobs")
		}
	})
}

func TestNothingRecordedForAShopThatIsNotSetUp(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		s := readySettings()
		s.Enabled = false
		shop := addShop(t, p, "a.myshopify.com", s)
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/1", image("gid://shopify/MediaImage/1", 1)))
		var n int64
		db.Model(&models.ImageJob{}).Count(&n)
		if n != 0 {
			t.Fatalf("%d jobs for a disabled shop", n)
		}
	})
}

func TestRescueLeavesAnUnconfirmedSubmissionForTheMerchant(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		l, _ := p.claim(context.Background())
		// The worker marks the job submitting and dies before the answer.
		if err := l.update(context.Background(), map[string]any{"state": models.JobSubmitting, "submit_started_at": clock.Now(), "run_at": nil}, "submitting"); err != nil {
			t.Fatal(err)
		}
		clock.Advance(p.o.Lease + time.Minute)
		if err := p.RescueLeases(context.Background()); err != nil {
			t.Fatal(err)
		}
		if again, _ := p.claim(context.Background()); again != nil {
			t.Fatal("an unconfirmed submission was claimed again (it would be paid twice)")
		}
		var j models.ImageJob
		db.Take(&j, l.job.ID)
		if j.State != models.JobSubmitting || j.LeaseOwner != nil || j.Error == "" {
			t.Fatalf("job after rescue: %s lease %v err %q", j.State, j.LeaseOwner, j.Error)
		}
		// Its callback, on its own secret URL, resolves it.
		out, err := p.RecordCallback(context.Background(), j.ID, rtb.Callback{Ticket: "t-1"})
		if err != nil || out != rtb.CallbackRecorded {
			t.Fatalf("callback: %v %v", out, err)
		}
		db.Take(&j, l.job.ID)
		if j.State != models.JobAwaitingRTB || j.Ticket == nil || *j.Ticket != "t-1" || j.RunAt == nil {
			t.Fatalf("job after callback: %s ticket %v", j.State, j.Ticket)
		}
	})
}

func TestRecordCallback(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		shop := addShop(t, p, "a.myshopify.com", readySettings())
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/1", image("gid://shopify/MediaImage/1", 1)))
		var j models.ImageJob
		db.Take(&j)
		db.Model(&j).Updates(map[string]any{"state": models.JobAwaitingRTB, "ticket": "ABC-1", "run_at": nil})
		cases := []struct {
			id     uint64
			ticket string
			want   rtb.CallbackOutcome
		}{
			{j.ID + 100, "ABC-1", rtb.CallbackUnknownJob},
			{j.ID, "other", rtb.CallbackTicketMismatch},
			{j.ID, "abc-1", rtb.CallbackRecorded},
			{j.ID, "ABC-1", rtb.CallbackDuplicate},
		}
		for _, c := range cases {
			got, err := p.RecordCallback(context.Background(), c.id, rtb.Callback{Ticket: c.ticket})
			if err != nil || got != c.want {
				t.Errorf("callback %d %s = %v %v, want %v", c.id, c.ticket, got, err, c.want)
			}
		}
		db.Take(&j, j.ID)
		if j.CallbackAt == nil || j.RunAt == nil {
			t.Fatal("the recorded callback did not wake the job")
		}
		var events int64
		db.Model(&models.JobEvent{}).Where("job_id = ? AND message = ?", j.ID, "callback received").Count(&events)
		if events != 1 {
			t.Fatalf("%d callback events, want 1", events)
		}
	})
}

func TestPeriodOf(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 7, 30, 0, time.UTC)
	every, _ := cron.ParseStandard("@every 5m")
	daily, _ := cron.ParseStandard("0 3 * * *")
	if got := periodOf(every, at); got != "2026-11-27T10:05:00Z" {
		t.Errorf("every 5m: %s", got)
	}
	if got := periodOf(daily, at); got != "2026-11-27T03:00:00Z" {
		t.Errorf("daily: %s", got)
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt <= 6; attempt++ {
		base := time.Duration(attempt*attempt*attempt*attempt) * time.Second
		for range 50 {
			d := backoff(attempt)
			if d < base*9/10 || d > base*11/10 {
				t.Fatalf("backoff(%d) = %s, want %s ± 10%%", attempt, d, base)
			}
		}
	}
}

func TestMoney(t *testing.T) {
	for in, want := range map[string]int64{"0.95": 9500, "50": 500000, "50.00": 500000, "0.0001": 1} {
		if got, ok := parseMoney(in); !ok || got != want {
			t.Errorf("parseMoney(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "abc", "1e3", "1/2", "0.00001", "--1"} {
		if _, ok := parseMoney(bad); ok {
			t.Errorf("parseMoney(%q) accepted", bad)
		}
	}
	if got := formatMoney(22000); got != "2.20" {
		t.Errorf("formatMoney = %s", got)
	}
}

func TestRetryableFailuresBackOffThenFailWithAReason(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		p.o.MaxAttempts = 3
		transient := &rtb.TransientError{Op: rtb.OpSubmit, Err: errors.New("connection refused")}
		for attempt := 1; attempt <= 3; attempt++ {
			clock.Advance(2 * time.Hour)
			l, err := p.claim(context.Background())
			if err != nil || l == nil {
				t.Fatalf("attempt %d: claim %v %v", attempt, l, err)
			}
			if err := p.fail(context.Background(), l, transient, "Could not reach Remove The Background."); err != nil {
				t.Fatal(err)
			}
			var j models.ImageJob
			db.Take(&j, l.job.ID)
			if attempt < 3 {
				wantAt := clock.Now().Add(backoff(attempt)).UnixMilli()
				if j.State != models.JobRetrying || j.RunAt == nil || *j.RunAt < wantAt-int64(float64(backoff(attempt).Milliseconds())*0.25) {
					t.Fatalf("attempt %d: %s run_at %v", attempt, j.State, j.RunAt)
				}
				continue
			}
			if j.State != models.JobFailed || j.RunAt != nil || j.Attempts != 3 || j.Error == "" {
				t.Fatalf("after the last attempt: %s attempts %d run_at %v error %q", j.State, j.Attempts, j.RunAt, j.Error)
			}
		}
	})
}

func TestDailyFailsOverdueJobsAndPurgesOldDeliveries(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		now := time.Now().UTC()
		p.o.Now = func() time.Time { return now }
		shop := addShop(t, p, "a.myshopify.com", readySettings())
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/1", image("gid://shopify/MediaImage/1", 1), image("gid://shopify/MediaImage/2", 2)))
		var jobs []models.ImageJob
		db.Order("id").Find(&jobs)
		overdue, onTime := now.Add(-3*24*time.Hour), now.Add(time.Hour)
		db.Model(&jobs[0]).Updates(map[string]any{"state": models.JobAwaitingRTB, "ticket": "T1", "due_by": overdue, "run_at": nil})
		db.Model(&jobs[1]).Updates(map[string]any{"state": models.JobAwaitingRTB, "ticket": "T2", "due_by": onTime, "run_at": nil})
		db.Create(&models.WebhookDelivery{WebhookID: "old", Topic: "products/update", ShopDomain: shop.Domain, ReceivedAt: now.Add(-8 * 24 * time.Hour)})
		db.Create(&models.WebhookDelivery{WebhookID: "new", Topic: "products/update", ShopDomain: shop.Domain, ReceivedAt: now.Add(-time.Hour)})
		if err := p.Daily(context.Background()); err != nil {
			t.Fatal(err)
		}
		db.Order("id").Find(&jobs)
		if jobs[0].State != models.JobFailed || jobs[0].Error == "" || jobs[1].State != models.JobAwaitingRTB {
			t.Fatalf("after daily: %s %q / %s", jobs[0].State, jobs[0].Error, jobs[1].State)
		}
		var left []string
		db.Model(&models.WebhookDelivery{}).Pluck("webhook_id", &left)
		if len(left) != 1 || left[0] != "new" {
			t.Fatalf("deliveries left: %v", left)
		}
	})
}

func TestABusyShopDoesNotHoldEveryWorker(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		p.o.MaxPerShop = 2
		big := addShop(t, p, "big.myshopify.com", readySettings())
		small := addShop(t, p, "small.myshopify.com", readySettings())
		for i := range 10 {
			enqueue(t, p, big, webhookOf(fmt.Sprint("gid://shopify/Product/", i), image(fmt.Sprint("gid://shopify/MediaImage/b", i), 1)))
		}
		enqueue(t, p, small, webhookOf("gid://shopify/Product/s", image("gid://shopify/MediaImage/s", 1)))
		// Put the small shop's job last in the fair order: with two of the
		// big shop's jobs in hand, the next worker still takes it.
		db.Model(&models.ImageJob{}).Where("shop_id = ?", small.ID).Update("queue_key", int64(1)<<50)
		var shops []uint64
		for range 3 {
			l, err := p.claim(context.Background())
			if err != nil || l == nil {
				t.Fatalf("claim: %v %v", l, err)
			}
			shops = append(shops, l.job.ShopID)
		}
		if shops[0] != big.ID || shops[1] != big.ID || shops[2] != small.ID {
			t.Fatalf("claimed shops %v, want big, big, small (%d, %d, %d)", shops, big.ID, big.ID, small.ID)
		}
		if l, _ := p.claim(context.Background()); l != nil {
			t.Fatalf("a third job of the big shop was claimed while two are in hand: job %d", l.job.ID)
		}
	})
}

func TestAShopBackFromAnOldImportIsNotQueuedBehindAnother(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		p.o.MaxPerShop = 100 // fairness alone, not the per-shop cap
		a := addShop(t, p, "a.myshopify.com", readySettings())
		b := addShop(t, p, "b.myshopify.com", readySettings())
		// Shop a imported 50 images long ago; all are done.
		for i := range 50 {
			enqueue(t, p, a, webhookOf(fmt.Sprint("gid://shopify/Product/a", i), image(fmt.Sprint("gid://shopify/MediaImage/a", i), 1)))
		}
		db.Model(&models.ImageJob{}).Where("shop_id = ?", a.ID).Updates(map[string]any{"state": models.JobDone, "run_at": nil})
		// Shop b imports 20 now; two are being worked on.
		for i := range 20 {
			enqueue(t, p, b, webhookOf(fmt.Sprint("gid://shopify/Product/b", i), image(fmt.Sprint("gid://shopify/MediaImage/b", i), 1)))
		}
		for range 2 {
			if l, _ := p.claim(context.Background()); l == nil || l.job.ShopID != b.ID {
				t.Fatalf("claim: %v", l)
			}
		}
		enqueue(t, p, a, webhookOf("gid://shopify/Product/a-new", image("gid://shopify/MediaImage/a-new", 1)))
		l, err := p.claim(context.Background())
		if err != nil || l == nil || l.job.MediaID != "gid://shopify/MediaImage/a-new" {
			t.Fatalf("next claim: %+v %v, want shop a's new image", l, err)
		}
	})
}
