package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// estimate reads GET /api/backfill/estimate.
func (h *harness) estimate() map[string]any {
	h.t.Helper()
	status, body := h.api("GET", "/api/backfill/estimate", nil)
	if status != 200 {
		h.t.Fatalf("estimate: %d %s", status, body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// startBackfill confirms amount and expects the backfill to start.
func (h *harness) startBackfill(amount string) {
	h.t.Helper()
	if status, body := h.api("POST", "/api/backfill", map[string]any{"confirmAmount": amount}); status != 202 {
		h.t.Fatalf("backfill confirming %s: %d %s", amount, status, body)
	}
}

func TestBackfillSpendsNoMoreThanConfirmed(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{budget: "100.00", noStart: true})
		for _, name := range []string{"a", "b", "c"} {
			waitReady(t, h, h.createProduct(oneImage(name)).ID)
		}
		// Under scope "featured" a product's second image is not counted.
		two := oneImage("d")
		two.Images = append(two.Images, shopifytest.NewImage{Filename: "d2.jpg", Data: photo("jpeg", sand), Alt: "Side"})
		waitReady(t, h, h.createProduct(two).ID)
		status, body := h.api("PUT", "/api/settings", map[string]any{"imageScope": "featured"})
		if status != 200 {
			t.Fatalf("settings: %d %s", status, body)
		}

		est := h.estimate()
		want := map[string]any{"images": float64(4), "price": "0.95", "amount": "3.80", "currencyId": "1", "budgetLeft": "100.00"}
		for k, v := range want {
			if est[k] != v {
				t.Fatalf("estimate %s = %v, want %v (%v)", k, est[k], v, est)
			}
		}
		for _, body := range []any{nil, map[string]any{}, map[string]any{"confirmAmount": "3.79"}, map[string]any{"confirmAmount": "lots"}} {
			status, raw := h.api("POST", "/api/backfill", body)
			if status != 422 || !strings.Contains(string(raw), `"confirmAmount"`) {
				t.Fatalf("backfill with %v: %d %s, want 422 naming confirmAmount", body, status, raw)
			}
		}
		if status, _ := h.api("GET", "/api/backfill", nil); status != 404 {
			t.Fatalf("a refused confirmation started a backfill: %d", status)
		}
		h.startBackfill("3.80")
		// Two products arrive before the backfill reaches them: it finds
		// them, but spends no more than was confirmed.
		for _, name := range []string{"e", "f"} {
			waitReady(t, h, h.createProduct(oneImage(name)).ID)
		}
		h.start()
		jobs := h.waitJobs("four done, two held", func(jobs []models.ImageJob) bool {
			return countIn(jobs, models.JobDone) == 4 && countIn(jobs, models.JobOverBudget) == 2
		})
		for _, j := range jobs {
			if j.State == models.JobOverBudget && !strings.Contains(j.Error, "confirmed amount of 3.80") {
				t.Errorf("held job %d says %q", j.ID, j.Error)
			}
		}
		time.Sleep(200 * time.Millisecond) // nothing else is submitted meanwhile
		if n := len(h.rtb.Jobs()); n != 4 {
			t.Fatalf("%d images submitted, want the 4 confirmed", n)
		}

		// This month's spend by day shows today's 3.80 and 4 images.
		status, body = h.api("GET", "/api/spend", nil)
		var spend struct {
			CurrencyID string `json:"currencyId"`
			Days       []struct {
				Date      string `json:"date"`
				Spend     string `json:"spend"`
				Processed int    `json:"processed"`
			} `json:"days"`
		}
		if status != 200 || json.Unmarshal(body, &spend) != nil || len(spend.Days) != time.Now().UTC().Day() || spend.CurrencyID != "1" {
			t.Fatalf("spend: %d %s", status, body)
		}
		today := spend.Days[len(spend.Days)-1]
		if today.Date != time.Now().UTC().Format("2006-01-02") || today.Spend != "3.80" || today.Processed != 4 {
			t.Fatalf("today = %+v, want 3.80 and 4 images (%s)", today, body)
		}

		// The held images are what a new backfill would submit; confirming
		// them lets them through.
		est = h.estimate()
		if est["images"] != float64(2) || est["amount"] != "1.90" || est["budgetLeft"] != "96.20" {
			t.Fatalf("second estimate = %v, want 2 images for 1.90 with 96.20 left", est)
		}
		h.waitBackfillDone()
		h.startBackfill("1.90")
		h.waitJobs("six done", func(jobs []models.ImageJob) bool { return countIn(jobs, models.JobDone) == 6 })
		if n := len(h.rtb.Jobs()); n != 6 {
			t.Fatalf("%d images submitted, want 6", n)
		}
	})
}

// waitBackfillDone waits until the running backfill finished its walk.
func (h *harness) waitBackfillDone() {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := h.api("GET", "/api/backfill", nil)
		if strings.Contains(string(body), `"state":"done"`) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("backfill never finished: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countIn(jobs []models.ImageJob, state string) int {
	n := 0
	for _, j := range jobs {
		if j.State == state {
			n++
		}
	}
	return n
}
