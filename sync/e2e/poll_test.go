package e2e_test

import (
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
	imgsync "rtbshopify/sync"
)

// TestADroppedCallbackIsPolledAfterThePollInterval: no callback ever
// comes; the job asks GET Status by itself the poll interval after it was
// submitted, then at growing intervals, until the image is delivered. No
// cron runs in this test.
func TestADroppedCallbackIsPolledAfterThePollInterval(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{
			tune: func(o *imgsync.Options) { o.Schedule.PollInterval = 200 * time.Millisecond },
			rtb:  func(o *rtbtest.Options) { o.ProductionFor = 600 * time.Millisecond },
		})
		h.rtb.SetCallbackFaults(rtbtest.CallbackFaults{Drop: 100})
		rec := h.createProduct(oneImage("nocallback"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("done by polling", allIn(1, models.JobDone))
		polls := 0
		for _, r := range h.rtb.Requests() {
			if r.Endpoint == rtbtest.EndpointStatus {
				polls++
			}
		}
		// Delivered ~0.65 s after submission: asked at 0.2, 0.4, 0.8 s
		// (the interval doubles), not every 0.2 s.
		if polls < 2 || polls > 4 {
			t.Errorf("GET Status asked %d times, want 2 to 4 (growing intervals)", polls)
		}
		if jobs[0].CallbackAt != nil {
			t.Error("a callback was recorded although every one was dropped")
		}
	})
}

// TestACallbackBeforeDeliveryIsFollowedByPolling: a callback arrives while
// GET Status still says the image is in production (the service's own
// order of events can differ). The job is asked again with backoff and
// finishes, without waiting for a second callback or the daily sweep.
func TestACallbackBeforeDeliveryIsFollowedByPolling(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{
			tune: func(o *imgsync.Options) { o.Schedule.PollInterval = 200 * time.Millisecond },
			rtb:  func(o *rtbtest.Options) { o.ProductionFor = time.Second },
		})
		rec := h.createProduct(oneImage("early"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("submitted", allIn(1, models.JobAwaitingRTB))
		if got := postCallback(t, h.url+"/rtb/callback/"+h.app.Signer.Token(jobs[0].ID), *jobs[0].Ticket); got != 200 {
			t.Fatalf("early callback: %d", got)
		}
		h.waitJobs("done", allIn(1, models.JobDone))
	})
}
