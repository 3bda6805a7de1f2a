package web_test

import (
	"image/color"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

func TestAPIPublishSetting(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "PUT", "/api/settings", validSettings())
		if a := e.must(200, shopA, "GET", "/api/settings", nil); a.body["publish"] != "auto" || a.body["reviewReminderDays"] != float64(7) {
			t.Fatalf("settings saved without publish: %s, want auto and 7 days", a.raw)
		}
		a := e.must(200, shopA, "PUT", "/api/settings", map[string]any{"publish": "review", "reviewReminderDays": 3})
		if a.body["publish"] != "review" || a.body["reviewReminderDays"] != float64(3) {
			t.Fatalf("review mode not saved: %s", a.raw)
		}
		if a := e.must(200, shopA, "GET", "/api/settings", nil); a.body["publish"] != "review" {
			t.Fatalf("review mode not stored: %s", a.raw)
		}
		// A missing publish means auto (the contract), whatever was stored.
		if a := e.must(200, shopA, "PUT", "/api/settings", validSettings()); a.body["publish"] != "auto" {
			t.Fatalf("a PUT without publish kept %v, want auto", a.body["publish"])
		}
		if a := e.must(200, shopA, "GET", "/api/settings", nil); a.body["publish"] != "auto" || a.body["reviewReminderDays"] != float64(3) {
			t.Fatalf("after a PUT without publish: %s, want auto and the 3 days kept", a.raw)
		}
		e.must(200, shopA, "PUT", "/api/settings", map[string]any{"publish": "review"})
		for field, body := range map[string]map[string]any{
			"publish":            {"publish": "later"},
			"reviewReminderDays": {"reviewReminderDays": 0},
		} {
			if a := e.call(shopA, "PUT", "/api/settings", body); a.status != 422 || a.fields()[field] == nil {
				t.Errorf("PUT %v: %d %s, want 422 naming %s", body, a.status, a.raw, field)
			}
		}
		if a := e.must(200, shopA, "PUT", "/api/settings", map[string]any{"publish": ""}); a.body["publish"] != "auto" {
			t.Fatalf(`publish "" = %v, want auto`, a.body["publish"])
		}
	})
}

func TestAPIReviewDecisions(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "PUT", "/api/settings", validSettings())
		e.must(200, shopB, "GET", "/api/settings", nil) // installs the other shop
		held := func(n int, ago time.Duration) *models.ImageJob {
			return e.seedJob(shopA, n, models.JobAwaitingReview, func(j *models.ImageJob) {
				j.ReviewHeldAt = ptr(time.Now().UTC().Add(-ago))
				j.ReviewFileID, j.ProcessedURL = "gid://shopify/MediaImage/9"+strconv.Itoa(n), "https://cdn.example.com/p.png"
			})
		}
		old, fresh, other := held(1, 8*24*time.Hour), held(2, time.Hour), held(3, 9*24*time.Hour)
		done := e.seedJob(shopA, 4, models.JobDone, nil)
		theirs := e.seedJob(shopB, 5, models.JobAwaitingReview, func(j *models.ImageJob) { j.ReviewHeldAt = ptr(time.Now().UTC()) })

		// Held images older than the reminder days are pointed out until dismissed, then never again.
		reminder := func() float64 {
			t.Helper()
			a := e.must(200, shopA, "GET", "/api/jobs", nil)
			notices, _ := a.body["notices"].([]any)
			for _, n := range notices {
				if m := n.(map[string]any); m["code"] == "review_waiting" {
					return m["jobs"].(float64)
				}
			}
			return 0
		}
		if n := reminder(); n != 2 {
			t.Fatalf("reminder names %v images, want the 2 held over 7 days", n)
		}
		if n := reminder(); n != 2 {
			t.Fatal("the reminder went away without the merchant dismissing it")
		}
		e.must(200, shopA, "POST", "/api/review/reminder", nil)
		if n := reminder(); n != 0 {
			t.Fatalf("reminder after dismissal names %v images", n)
		}
		if j := e.job(old.ID); j.State != models.JobAwaitingReview {
			t.Fatalf("a reminded image changed state: %s", j.State)
		}

		// Held jobs carry the review object; others do not.
		a := e.must(200, shopA, "GET", "/api/jobs/"+itoa(int(fresh.ID)), nil)
		r, _ := a.body["review"].(map[string]any)
		if r == nil || r["heldAt"] == "" || r["decidedAt"] != "" || a.body["canDecide"] != true {
			t.Fatalf("held job: %s", a.raw)
		}
		if a := e.must(200, shopA, "GET", "/api/jobs/"+itoa(int(done.ID)), nil); a.body["review"] != nil {
			t.Fatalf("a job never held carries review: %s", a.raw)
		}

		// Reject one; a second reject changes nothing and answers the job as it is; an approve
		// of the rejected image is a conflict that changes nothing either.
		a = e.must(202, shopA, "POST", "/api/jobs/"+itoa(int(fresh.ID))+"/reject", map[string]any{"reason": "  The handle is cut off  "})
		if r, _ := a.body["review"].(map[string]any); a.body["state"] != "rejected" || r["reason"] != "The handle is cut off" || r["decidedAt"] == "" {
			t.Fatalf("reject: %s", a.raw)
		}
		decided := e.job(fresh.ID)
		a = e.must(202, shopA, "POST", "/api/jobs/"+itoa(int(fresh.ID))+"/reject", map[string]any{"reason": "again"})
		if r, _ := a.body["review"].(map[string]any); a.body["state"] != "rejected" || r["reason"] != "The handle is cut off" {
			t.Fatalf("second reject: %s, want the job as it was", a.raw)
		}
		a = e.call(shopA, "POST", "/api/jobs/"+itoa(int(fresh.ID))+"/approve", nil)
		if a.status != 409 || a.errCode() != "conflict" || !strings.Contains(a.raw, "was rejected") {
			t.Fatalf("approve of a rejected image: %d %s, want 409 saying it was rejected", a.status, a.raw)
		}
		if j := e.job(fresh.ID); j.State != models.JobRejected || j.ReviewReason != "The handle is cut off" || !j.UpdatedAt.Equal(decided.UpdatedAt) {
			t.Fatalf("a second decision changed the job: %s %q", j.State, j.ReviewReason)
		}
		// Never in review: 409; another shop's job or an unknown one: 404.
		if a := e.call(shopA, "POST", "/api/jobs/"+itoa(int(done.ID))+"/approve", nil); a.status != 409 {
			t.Fatalf("approve of a job never held: %d %s", a.status, a.raw)
		}
		for _, id := range []uint64{theirs.ID, 999999} {
			if a := e.call(shopA, "POST", "/api/jobs/"+itoa(int(id))+"/reject", nil); a.status != 404 {
				t.Fatalf("reject of job %d: %d %s", id, a.status, a.raw)
			}
		}

		// Bulk: the named held jobs of this shop only, then all that are left.
		if a := e.call(shopA, "POST", "/api/jobs/approve", map[string]any{}); a.status != 422 {
			t.Fatalf("bulk without a selection: %d %s", a.status, a.raw)
		}
		a = e.must(202, shopA, "POST", "/api/jobs/approve", map[string]any{"ids": []string{itoa(int(old.ID)), itoa(int(fresh.ID)), itoa(int(theirs.ID)), "x"}})
		if a.body["count"] != float64(1) {
			t.Fatalf("bulk approve: %s, want 1", a.raw)
		}
		approved := e.job(old.ID)
		if approved.State != models.JobWritingBack || approved.ReviewDecidedAt == nil || approved.RunAt == nil {
			t.Fatalf("approved job: %s, want writing_back and due", approved.State)
		}
		// Approving it again is answered with the job as it is; rejecting it is a conflict.
		if a := e.must(202, shopA, "POST", "/api/jobs/"+itoa(int(old.ID))+"/approve", nil); a.body["state"] != "writing_back" {
			t.Fatalf("second approve: %s", a.raw)
		}
		a = e.call(shopA, "POST", "/api/jobs/"+itoa(int(old.ID))+"/reject", map[string]any{"reason": "changed my mind"})
		if a.status != 409 || !strings.Contains(a.raw, "approved already") {
			t.Fatalf("reject of an approved image: %d %s, want 409 saying it was approved", a.status, a.raw)
		}
		if j := e.job(old.ID); j.State != models.JobWritingBack || j.ReviewReason != "" || !j.UpdatedAt.Equal(approved.UpdatedAt) {
			t.Fatalf("a decision against the approval changed the job: %s %q", j.State, j.ReviewReason)
		}
		a = e.must(202, shopA, "POST", "/api/jobs/reject", map[string]any{"all": true, "reason": "Not this season"})
		if a.body["count"] != float64(1) || e.job(other.ID).State != models.JobRejected || e.job(other.ID).ReviewReason != "Not this season" {
			t.Fatalf("reject all: %s", a.raw)
		}
		if j := e.job(theirs.ID); j.State != models.JobAwaitingReview {
			t.Fatalf("another shop's held job changed: %s", j.State)
		}
		if !strings.Contains(e.must(200, shopA, "GET", "/api/jobs?state=rejected", nil).raw, `"reason":"Not this season"`) {
			t.Fatal("the rejected list lacks the reason")
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestAPISendAgain(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "PUT", "/api/settings", validSettings()) // the template costs 0.95
		e.must(200, shopB, "GET", "/api/settings", nil)
		rec, err := e.store.CreateProduct(shopA, shopifytest.NewProduct{Title: "Mug",
			Images: []shopifytest.NewImage{{Filename: "mug.png", Data: shopifytest.SamplePNG(8, 8, color.RGBA{200, 30, 30, 255})}}})
		if err != nil {
			t.Fatal(err)
		}
		month := time.Now().UTC().Format("2006-01")
		rejected := func(n int, mod func(j *models.ImageJob)) *models.ImageJob {
			return e.seedJob(shopA, n, models.JobRejected, func(j *models.ImageJob) {
				now := time.Now().UTC()
				j.ProductID, j.MediaID = rec.ID, rec.MediaIDs[0]
				j.Ticket, j.SubmitStartedAt, j.SubmittedAt, j.SubmitMonth, j.Price = ptr("T-"+itoa(n)), &now, &now, &month, "0.95"
				j.DeliveredAt, j.FinalImageURL, j.ProcessedURL = &now, "https://rtb.example.com/final.png", "https://cdn.example.com/p.png"
				j.ReviewHeldAt, j.ReviewDecidedAt, j.ReviewReason = &now, &now, "The handle is cut off"
				j.ReviewFileID = "gid://shopify/MediaImage/999" + itoa(n) // already gone from Files: nothing to delete
				if mod != nil {
					mod(j)
				}
			})
		}
		run := int64(3)
		job := rejected(1, func(j *models.ImageJob) { j.BackfillRun = &run })
		if err := db.Create(&models.Backfill{ShopID: job.ShopID, State: "done", Run: run, ConfirmAmount: "0.95",
			StartedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}).Error; err != nil {
			t.Fatal(err)
		}
		path := "/api/jobs/" + itoa(int(job.ID)) + "/send-again"
		spent := func() string {
			t.Helper()
			s, _ := e.must(200, shopA, "GET", "/api/settings", nil).body["spentThisMonth"].(string)
			return s
		}
		if s := spent(); s != "0.95" {
			t.Fatalf("spent before sending again: %s", s)
		}

		// Without a confirmed amount covering the price now: 422 naming confirmAmount, nothing changes.
		for _, body := range []any{nil, map[string]any{}, map[string]any{"confirmAmount": ""}, map[string]any{"confirmAmount": "0.94"},
			map[string]any{"confirmAmount": "lots"}, map[string]any{"confirmAmount": 0.95}, "{not json"} {
			a := e.call(shopA, "POST", path, body)
			if a.status != 422 || a.errCode() != "invalid_confirm_amount" || a.fields()["confirmAmount"] == nil {
				t.Fatalf("send again with %v: %d %s, want 422 naming confirmAmount", body, a.status, a.raw)
			}
		}
		if a := e.call(shopA, "POST", path, nil); !strings.Contains(a.raw, "0.95") {
			t.Fatalf("the 422 does not state the price: %s", a.raw)
		}
		if j := e.job(job.ID); j.State != models.JobRejected || j.Ticket == nil {
			t.Fatalf("a refused send-again changed the job: %s", j.State)
		}

		// Confirmed: queued as a new submission, the earlier charge kept in the month and the run.
		a := e.must(202, shopA, "POST", path, map[string]any{"confirmAmount": "0.95"})
		if a.body["state"] != "queued" || a.body["ticket"] != "" || a.body["processedUrl"] != "" || a.body["review"] != nil || a.body["price"] != "" {
			t.Fatalf("sent again: %s", a.raw)
		}
		j := e.job(job.ID)
		if j.State != models.JobQueued || j.RunAt == nil || j.Ticket != nil || j.SubmitStartedAt != nil || j.SubmitMonth != nil ||
			j.DeliveredAt != nil || j.ReviewHeldAt != nil || j.ReviewDecidedAt != nil || j.ReviewReason != "" || j.ReviewFileID != "" {
			t.Fatalf("sent-again job not cleared for a fresh submission: %+v", j)
		}
		var charges []models.JobCharge
		db.Where("job_id = ?", job.ID).Find(&charges)
		if len(charges) != 1 || charges[0].Price != "0.95" || charges[0].Month != month {
			t.Fatalf("kept charges: %+v, want the earlier 0.95 of %s", charges, month)
		}
		if s := spent(); s != "0.95" {
			t.Fatalf("spent after sending again: %s, want the earlier charge still counted", s)
		}
		var b models.Backfill
		db.Where("shop_id = ?", job.ShopID).Take(&b)
		if b.ConfirmAmount != "1.90" {
			t.Fatalf("the run's confirmed amount is %s, want 1.90 with the confirmed resubmission", b.ConfirmAmount)
		}
		var events []models.JobEvent
		db.Where("job_id = ? AND to_state = ?", job.ID, models.JobQueued).Find(&events)
		if len(events) != 1 || events[0].FromState != models.JobRejected || !strings.Contains(events[0].Message, "sent again by the merchant") {
			t.Fatalf("events: %+v", events)
		}

		// A second click finds it queued: 409, and no second charge or submission.
		a = e.call(shopA, "POST", path, map[string]any{"confirmAmount": "0.95"})
		if a.status != 409 || a.errCode() != "conflict" || !strings.Contains(a.raw, "queued") {
			t.Fatalf("second send-again: %d %s, want 409", a.status, a.raw)
		}
		var n int64
		db.Model(&models.JobCharge{}).Where("job_id = ?", job.ID).Count(&n)
		if n != 1 {
			t.Fatalf("%d kept charges after a double click, want 1", n)
		}

		// Only a rejected image of this shop, on a product that still shows it.
		held := e.seedJob(shopA, 2, models.JobAwaitingReview, func(j *models.ImageJob) { j.ReviewHeldAt = ptr(time.Now().UTC()) })
		done := e.seedJob(shopA, 3, models.JobDone, nil)
		for _, id := range []uint64{held.ID, done.ID} {
			if a := e.call(shopA, "POST", "/api/jobs/"+itoa(int(id))+"/send-again", map[string]any{"confirmAmount": "0.95"}); a.status != 409 {
				t.Fatalf("send again of a %s job: %d %s", e.job(id).State, a.status, a.raw)
			}
		}
		gone := rejected(4, func(j *models.ImageJob) {
			j.ProductID, j.MediaID = "gid://shopify/Product/404404", "gid://shopify/MediaImage/404404"
		})
		if a := e.call(shopA, "POST", "/api/jobs/"+itoa(int(gone.ID))+"/send-again", map[string]any{"confirmAmount": "1"}); a.status != 409 || !strings.Contains(a.raw, "deleted") {
			t.Fatalf("send again on a deleted product: %d %s", a.status, a.raw)
		}
		theirs := e.seedJob(shopB, 5, models.JobRejected, nil)
		for _, id := range []uint64{theirs.ID, 999999} {
			if a := e.call(shopA, "POST", "/api/jobs/"+itoa(int(id))+"/send-again", map[string]any{"confirmAmount": "0.95"}); a.status != 404 {
				t.Fatalf("send again of job %d: %d %s", id, a.status, a.raw)
			}
		}
		if j := e.job(gone.ID); j.State != models.JobRejected {
			t.Fatalf("a refused send-again changed the job: %s", j.State)
		}
	})
}
