package e2e_test

import (
	"encoding/json"
	"image/color"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// An Admin API 403 from Shopify's IP allowlist holds the job (no retry loop, no attempts spent),
// shows on the dashboard's API and in /metrics, and the job finishes once the allowlist admits the
// server.
func TestIPAllowlistRefusalWaitsAndShows(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, harnessOptions{})
		h.store.SetIPAllowlist(netip.MustParsePrefix("203.0.113.0/24"))
		rec := h.createProduct(shopifytest.NewProduct{Title: "Mug", Images: []shopifytest.NewImage{
			{Filename: "mug.jpg", Data: photo("jpg", color.RGBA{200, 180, 90, 255}), Alt: "mug"}}})
		h.webhook("products/create", rec.ID)
		jobs := h.waitJobs("the job held by the allowlist", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].Error == imgsync.AllowlistMessage
		})
		if j := jobs[0]; (j.State != models.JobWritingBack && j.State != models.JobRetrying) || j.Attempts != 0 || j.RunAt == nil || *j.RunAt < time.Now().Add(10*time.Minute).UnixMilli() {
			t.Fatalf("held job: %s attempts %d run_at %v", j.State, j.Attempts, j.RunAt)
		}
		refused := 0
		for _, r := range h.store.Requests() {
			if r.Status == http.StatusForbidden {
				refused++
			}
		}
		if refused != 1 {
			t.Fatalf("%d refused requests, want exactly 1 (a 403 is not retried)", refused)
		}

		status, body := h.api("GET", "/api/jobs", nil)
		var list struct {
			Notices []struct {
				Code    string
				Jobs    int
				Message string
			}
		}
		if err := json.Unmarshal(body, &list); status != 200 || err != nil {
			t.Fatalf("GET /api/jobs: %d %s", status, body)
		}
		if len(list.Notices) != 1 || list.Notices[0].Code != "ip_allowlist" || list.Notices[0].Jobs != 1 || !strings.Contains(list.Notices[0].Message, "IP allowlist") {
			t.Fatalf("notices = %+v", list.Notices)
		}
		resp, err := http.Get(h.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), "rtbshopify_shopify_ip_allowlist_refusals_total 1") {
			t.Fatalf("/metrics lacks the refusal count:\n%s", grepLines(string(metrics), "rtbshopify_shopify"))
		}

		// The operator fixes the allowlist; the job comes back at its time (moved to now here).
		h.store.SetIPAllowlist()
		h.db.Model(&models.ImageJob{}).Where("id = ?", jobs[0].ID).Update("run_at", time.Now().UnixMilli())
		h.app.Pipeline.Notify()
		h.waitJobs("the job written back", allIn(1, models.JobDone))
		_, body = h.api("GET", "/api/jobs", nil)
		if strings.Contains(string(body), `"ip_allowlist"`) {
			t.Fatalf("notice still shown after the job finished: %s", body)
		}
	})
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
