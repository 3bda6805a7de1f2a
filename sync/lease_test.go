package sync

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb"
)

// TestActionsLeaveAJobAWorkerHolds: uninstall, the overdue sweep and the
// merchant's actions change a job only when no live lease holds it, so the
// worker's fenced writes (and what they record: a ticket) still land.
func TestActionsLeaveAJobAWorkerHolds(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		l, err := p.claim(context.Background())
		if err != nil || l == nil {
			t.Fatalf("claim: %v %v", l, err)
		}
		start := clock.Now()
		if err := l.update(context.Background(), map[string]any{"state": models.JobSubmitting, "submit_started_at": start, "run_at": nil}, "submitting"); err != nil {
			t.Fatal(err)
		}
		cancel := func() {
			t.Helper()
			if err := db.Transaction(func(tx *gorm.DB) error {
				// As the app/uninstalled webhook does.
				if err := tx.Model(&models.Shop{}).Where("id = ?", l.job.ShopID).Update("state", models.ShopUninstalled).Error; err != nil {
					return err
				}
				return p.CancelShopJobs(context.Background(), tx, l.job.ShopID, "The app was uninstalled.")
			}); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		var j models.ImageJob
		db.Take(&j, l.job.ID)
		if j.State != models.JobSubmitting || j.LeaseOwner == nil || *j.LeaseOwner != l.token {
			t.Fatalf("uninstall changed a job a worker holds: %s lease %v", j.State, j.LeaseOwner)
		}
		ok, err := p.transition(context.Background(), db, &j, []string{models.JobSubmitting}, map[string]any{"state": models.JobFailed}, "overdue")
		if err != nil || ok {
			t.Fatalf("transition of a held job: changed %v, err %v", ok, err)
		}
		// The worker's answer arrives: it lands, ticket and all.
		if err := p.submitted(context.Background(), l, "T-1"); err != nil {
			t.Fatalf("the worker's write after uninstall: %v", err)
		}
		db.Take(&j, l.job.ID)
		if j.State != models.JobCancelled || j.Ticket == nil || *j.Ticket != "T-1" || j.LeaseOwner != nil {
			t.Fatalf("after the worker finished: %s ticket %v lease %v; want cancelled with ticket T-1", j.State, j.Ticket, j.LeaseOwner)
		}
	})
}

// TestATicketOutlivesALostLease: a worker whose lease expired while its
// submission was in flight (the rescuer marked it unconfirmed) still writes
// the ticket it got, so the paid image is followed, not lost.
func TestATicketOutlivesALostLease(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		l, _ := p.claim(context.Background())
		if err := l.update(context.Background(), map[string]any{"state": models.JobSubmitting, "submit_started_at": clock.Now(), "run_at": nil}, "submitting"); err != nil {
			t.Fatal(err)
		}
		clock.Advance(p.o.Lease + time.Minute)
		if err := p.RescueLeases(context.Background()); err != nil {
			t.Fatal(err)
		}
		err := p.submitted(context.Background(), l, "T-2")
		if err == nil {
			t.Fatal("a worker whose lease was taken reported success")
		}
		var j models.ImageJob
		db.Take(&j, l.job.ID)
		if j.State != models.JobAwaitingRTB || j.Ticket == nil || *j.Ticket != "T-2" {
			t.Fatalf("after a lost lease: %s ticket %v; want awaiting_rtb with ticket T-2", j.State, j.Ticket)
		}
	})
}

// TestACancelledUnconfirmedSubmissionIsRecovered: the worker died while
// submitting and the merchant uninstalled; the job is cancelled with no
// ticket. Its callback still adopts the ticket (the job stays cancelled
// while the app is uninstalled), and the reinstall's next webhook brings
// it back to wait for the delivery, without a second submission.
func TestACancelledUnconfirmedSubmissionIsRecovered(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		var j models.ImageJob
		db.Take(&j)
		db.Model(&j).Updates(map[string]any{"state": models.JobCancelled, "submit_started_at": clock.Now(), "submit_month": clock.Now().Format("2006-01"),
			"price": "0.95", "run_at": nil, "error": "The app was uninstalled."})
		db.Model(&models.Shop{}).Where("id = ?", j.ShopID).Update("state", models.ShopUninstalled)
		out, err := p.RecordCallback(context.Background(), j.ID, rtb.Callback{Ticket: "T-3"})
		if err != nil || out != rtb.CallbackRecorded {
			t.Fatalf("callback on a cancelled unconfirmed submission: %v %v", out, err)
		}
		db.Take(&j, j.ID)
		if j.State != models.JobCancelled || j.Ticket == nil || *j.Ticket != "T-3" {
			t.Fatalf("after the callback: %s ticket %v; want cancelled with ticket T-3", j.State, j.Ticket)
		}
		// The merchant installs again; the product's next webhook revives it.
		var shop models.Shop
		db.Model(&models.Shop{}).Where("id = ?", j.ShopID).Update("state", models.ShopInstalled)
		db.Take(&shop, j.ShopID)
		enqueue(t, p, &shop, webhookOf(j.ProductID, image(j.MediaID, 1)))
		db.Take(&j, j.ID)
		if j.State != models.JobAwaitingRTB || j.Ticket == nil || *j.Ticket != "T-3" {
			t.Fatalf("after the reinstall: %s ticket %v; want awaiting_rtb with ticket T-3", j.State, j.Ticket)
		}
	})
}

// TestACancelledSubmissionOfUnknownOutcomeWaitsAgain: with no callback
// yet, a reinstall brings an unconfirmed cancelled submission back to wait
// for its callback or the merchant's Retry: never resubmitted by itself.
func TestACancelledSubmissionOfUnknownOutcomeWaitsAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p, clock := queuedJob(t, db)
		var j models.ImageJob
		db.Take(&j)
		db.Model(&j).Updates(map[string]any{"state": models.JobCancelled, "submit_started_at": clock.Now(), "run_at": nil})
		var shop models.Shop
		db.Take(&shop, j.ShopID)
		enqueue(t, p, &shop, webhookOf(j.ProductID, image(j.MediaID, 1)))
		db.Take(&j, j.ID)
		if j.State != models.JobSubmitting || j.RunAt != nil || j.Error == "" {
			t.Fatalf("after the reinstall: %s run_at %v error %q; want an unconfirmed submission waiting", j.State, j.RunAt, j.Error)
		}
		if l, _ := p.claim(context.Background()); l != nil {
			t.Fatal("an unconfirmed submission was claimed (it would be paid twice)")
		}
	})
}
