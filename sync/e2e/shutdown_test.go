package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
	imgsync "rtbshopify/sync"
)

// gatedSubmits holds every submission to Remove The Background until the
// gate opens, before the transport has a connection for it (as a slow
// network does): a submission waiting here has not left the process.
func gatedSubmits(gate <-chan struct{}) *http.Client {
	return &http.Client{Transport: gatedTransport{gate: gate, next: http.DefaultTransport}}
}

type gatedTransport struct {
	gate <-chan struct{}
	next http.RoundTripper
}

func (g gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost {
		select {
		case <-g.gate:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.next.RoundTrip(r)
}

// TestShutdownDuringASubmitThatNeverLeft: the process stops while the
// submission is still waiting for a connection. Nothing reached Remove The
// Background, so the job goes back to the queue with its charge released
// (not an unconfirmed submission the merchant must resolve), and the next
// process submits it once.
func TestShutdownDuringASubmitThatNeverLeft(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		gate := make(chan struct{})
		h := newHarness(t, db, harnessOptions{rtbHTTP: gatedSubmits(gate)})
		rec := h.createProduct(oneImage("neverleft"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitting", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].State == models.JobSubmitting && js[0].LeaseOwner != nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		h.app.Pipeline.Stop(ctx)
		j := h.jobs()[0]
		if j.State != models.JobQueued || j.LeaseOwner != nil || j.SubmitStartedAt != nil || j.SubmitMonth != nil || j.RunAt == nil {
			t.Fatalf("after shutdown, a submission that never left is %s (lease %v, started %v, month %v, run_at %v); want queued again with no charge",
				j.State, j.LeaseOwner, j.SubmitStartedAt, j.SubmitMonth, j.RunAt)
		}
		close(gate)
		next := buildApp(t, h.cfg, db, h.log, func(o *imgsync.Options) {
			o.Idle = 20 * time.Millisecond
			o.MediaRecheck = 50 * time.Millisecond
			o.Schedule.Disabled = true
		}, nil, nil, nil)
		sctx, scancel := context.WithCancel(context.Background())
		next.Pipeline.Start(sctx)
		t.Cleanup(func() { next.Pipeline.Stop(context.Background()); scancel() })
		h.waitJobs("done", allIn(1, models.JobDone))
		if n := h.rtb.Submissions()[rtbEmail]; n != 1 {
			t.Fatalf("billed %d times, want 1", n)
		}
	})
}

// TestShutdownLetsASubmitInFlightFinish: a submission already at Remove The
// Background when the process stops gets the shutdown budget to bring its
// ticket home.
func TestShutdownLetsASubmitInFlightFinish(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{rtb: func(o *rtbtest.Options) { o.ProductionFor = time.Hour }})
		h.rtb.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{Delay: 400 * time.Millisecond, Count: 1})
		rec := h.createProduct(oneImage("inflight"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		h.waitJobs("submitting", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].State == models.JobSubmitting && js[0].LeaseOwner != nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.app.Pipeline.Stop(ctx)
		j := h.jobs()[0]
		if j.State != models.JobAwaitingRTB || j.Ticket == nil || j.LeaseOwner != nil {
			t.Fatalf("after shutdown the in-flight submission is %s ticket %v lease %v; want awaiting_rtb with its ticket", j.State, j.Ticket, j.LeaseOwner)
		}
	})
}
