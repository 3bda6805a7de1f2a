package web_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
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
			t.Fatalf("a PUT without publish changed it: %s", a.raw)
		}
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

		// Reject one; a second reject, or an approve, changes nothing.
		a = e.must(202, shopA, "POST", "/api/jobs/"+itoa(int(fresh.ID))+"/reject", map[string]any{"reason": "  The handle is cut off  "})
		if r, _ := a.body["review"].(map[string]any); a.body["state"] != "rejected" || r["reason"] != "The handle is cut off" || r["decidedAt"] == "" {
			t.Fatalf("reject: %s", a.raw)
		}
		decided := e.job(fresh.ID)
		e.must(202, shopA, "POST", "/api/jobs/"+itoa(int(fresh.ID))+"/reject", map[string]any{"reason": "again"})
		e.must(202, shopA, "POST", "/api/jobs/"+itoa(int(fresh.ID))+"/approve", nil)
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
		if j := e.job(old.ID); j.State != models.JobWritingBack || j.ReviewDecidedAt == nil || j.RunAt == nil {
			t.Fatalf("approved job: %s, want writing_back and due", j.State)
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
