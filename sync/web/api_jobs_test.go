package web_test

import (
	"context"
	"encoding/json"
	"fmt"
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

var seedTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// seedJob records a job directly; mod adjusts it before the insert.
func (e *apiEnv) seedJob(shop string, n int, state string, mod func(j *models.ImageJob)) *models.ImageJob {
	e.t.Helper()
	at := seedTime.Add(time.Duration(n) * time.Minute)
	j := &models.ImageJob{
		ShopID: e.shop(shop).ID, ProductID: fmt.Sprintf("gid://shopify/Product/%d", 100+n), ProductTitle: fmt.Sprintf("Shirt %d", n),
		MediaID: fmt.Sprintf("gid://shopify/MediaImage/%d", 500+n), OriginalURL: fmt.Sprintf("https://cdn.example.com/%d.png", n),
		WriteMode: "replace", TemplateID: "2000045", State: state, CreatedAt: at, UpdatedAt: at,
	}
	if mod != nil {
		mod(j)
	}
	if err := e.db.Create(j).Error; err != nil {
		e.t.Fatalf("seed job: %v", err)
	}
	return j
}

func (e *apiEnv) job(id uint64) models.ImageJob {
	e.t.Helper()
	var j models.ImageJob
	if err := e.db.Where("id = ?", id).Take(&j).Error; err != nil {
		e.t.Fatal(err)
	}
	return j
}

func ptr[T any](v T) *T { return &v }

func jobIDs(t *testing.T, a answer) []string {
	t.Helper()
	list, ok := a.body["jobs"].([]any)
	if !ok {
		t.Fatalf("jobs is not a list: %s", a.raw)
	}
	ids := make([]string, len(list))
	for i, j := range list {
		ids[i] = j.(map[string]any)["id"].(string)
	}
	return ids
}

func TestAPIJobsPaging(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "GET", "/api/settings", nil)
		e.must(200, shopB, "GET", "/api/settings", nil)
		if a := e.must(200, shopA, "GET", "/api/jobs", nil); a.raw != `{"jobs":[],"nextCursor":""}` {
			t.Fatalf("no jobs: %s", a.raw)
		}
		states := []string{models.JobQueued, models.JobFailed, models.JobDone, models.JobAwaitingRTB, models.JobFailed, models.JobQueued, models.JobDone}
		var want []string // newest first
		for i, s := range states {
			j := e.seedJob(shopA, i, s, func(j *models.ImageJob) {
				if s == models.JobAwaitingRTB {
					j.Ticket, j.Attempts = ptr("6f1c-ticket"), 1
				}
			})
			want = append([]string{strconv.FormatUint(j.ID, 10)}, want...)
			if i%3 == 0 {
				e.seedJob(shopB, i, s, nil)
			}
		}

		all := e.must(200, shopA, "GET", "/api/jobs", nil)
		if got := jobIDs(t, all); strings.Join(got, ",") != strings.Join(want, ",") || all.body["nextCursor"] != "" {
			t.Fatalf("all jobs = %v next %v, want %v", got, all.body["nextCursor"], want)
		}
		// The contract's Job JSON, exactly typed.
		first := all.body["jobs"].([]any)[len(want)-1].(map[string]any)
		for k, typ := range map[string]string{"id": "string", "productId": "string", "productTitle": "string", "mediaId": "string",
			"originalUrl": "string", "processedUrl": "string", "state": "string", "ticket": "string", "attempts": "float64",
			"error": "string", "createdAt": "string", "updatedAt": "string"} {
			if got := fmt.Sprintf("%T", first[k]); got != typ {
				t.Errorf("job %s is %s, want %s", k, got, typ)
			}
		}
		if first["productId"] != "gid://shopify/Product/100" || first["ticket"] != "" || first["createdAt"] != "2026-03-01T12:00:00Z" {
			t.Errorf("job = %v", first)
		}
		awaiting := all.body["jobs"].([]any)[len(want)-4].(map[string]any)
		if awaiting["ticket"] != "6f1c-ticket" || awaiting["attempts"] != float64(1) || awaiting["state"] != "awaiting_rtb" {
			t.Errorf("awaiting job = %v", awaiting)
		}

		// Pages of 3 follow the cursor to the end.
		var paged []string
		cursor, pages := "", 0
		for {
			a := e.must(200, shopA, "GET", "/api/jobs?limit=3&cursor="+cursor, nil)
			ids := jobIDs(t, a)
			paged = append(paged, ids...)
			pages++
			cursor, _ = a.body["nextCursor"].(string)
			if cursor == "" || pages > 5 {
				break
			}
			if len(ids) != 3 {
				t.Fatalf("a middle page has %d jobs", len(ids))
			}
		}
		if pages != 3 || strings.Join(paged, ",") != strings.Join(want, ",") {
			t.Fatalf("%d pages: %v, want %v", pages, paged, want)
		}
		if a := e.must(200, shopA, "GET", "/api/jobs?limit=7", nil); len(jobIDs(t, a)) != 7 || a.body["nextCursor"] != "" {
			t.Fatalf("limit equal to the count: %s", a.raw)
		}

		failed := e.must(200, shopA, "GET", "/api/jobs?state=failed&limit=1", nil)
		next, _ := failed.body["nextCursor"].(string)
		rest := e.must(200, shopA, "GET", "/api/jobs?state=failed&limit=1&cursor="+next, nil)
		got := append(jobIDs(t, failed), jobIDs(t, rest)...)
		if strings.Join(got, ",") != want[2]+","+want[5] || rest.body["nextCursor"] != "" {
			t.Fatalf("failed jobs = %v (next %v), want %v", got, rest.body["nextCursor"], []string{want[2], want[5]})
		}
		if a := e.must(200, shopB, "GET", "/api/jobs?state=done", nil); len(jobIDs(t, a)) != 1 {
			t.Fatalf("shop B done jobs: %s", a.raw)
		}

		for _, q := range []string{"state=bogus", "state=DONE", "limit=0", "limit=201", "limit=abc", "limit=-1", "cursor=abc", "cursor=-5", "cursor=0"} {
			if a := e.call(shopA, "GET", "/api/jobs?"+q, nil); a.status != 400 || a.errCode() != "bad_request" {
				t.Errorf("%s: %d %s", q, a.status, a.raw)
			}
		}
		e.must(200, shopA, "GET", "/api/jobs?limit=200", nil)
	})
}

func TestAPIRetryAndRevert(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "GET", "/api/settings", nil)
		e.must(200, shopB, "GET", "/api/settings", nil)
		now := time.Now().UTC()
		failedNew := e.seedJob(shopA, 1, models.JobFailed, func(j *models.ImageJob) { j.Attempts, j.Error = 8, "Could not reach Remove The Background." })
		failedTicket := e.seedJob(shopA, 2, models.JobFailed, func(j *models.ImageJob) { j.Ticket = ptr("t-2") })
		failedDelivered := e.seedJob(shopA, 3, models.JobFailed, func(j *models.ImageJob) { j.Ticket, j.DeliveredAt = ptr("t-3"), &now })
		uncertain := e.seedJob(shopA, 4, models.JobSubmitting, func(j *models.ImageJob) { j.SubmitStartedAt = &now })
		leased := e.seedJob(shopA, 5, models.JobSubmitting, func(j *models.ImageJob) {
			j.LeaseOwner, j.LeaseUntil = ptr("w1"), ptr(now.Add(time.Minute).UnixMilli())
		})
		done := e.seedJob(shopA, 6, models.JobDone, func(j *models.ImageJob) {
			j.ResultMediaID, j.ProcessedURL = "gid://shopify/MediaImage/9", "https://cdn/p.png"
		})
		other := e.seedJob(shopB, 7, models.JobFailed, nil)

		list := e.must(200, shopA, "GET", "/api/jobs", nil).body["jobs"].([]any)
		flags := map[string]string{}
		for _, j := range list {
			m := j.(map[string]any)
			flags[m["id"].(string)] = fmt.Sprint(m["canRetry"], m["canRevert"], m["uncertain"])
		}
		for j, want := range map[*models.ImageJob]string{failedNew: "true false false", uncertain: "true false true",
			leased: "false false false", done: "false true false"} {
			if got := flags[strconv.FormatUint(j.ID, 10)]; got != want {
				t.Errorf("job %d (%s): canRetry canRevert uncertain = %s, want %s", j.ID, j.State, got, want)
			}
		}

		path := func(j *models.ImageJob, action string) string {
			return "/api/jobs/" + strconv.FormatUint(j.ID, 10) + "/" + action
		}
		for j, want := range map[*models.ImageJob]string{failedNew: models.JobQueued, failedTicket: models.JobAwaitingRTB,
			failedDelivered: models.JobWritingBack, uncertain: models.JobQueued} {
			a := e.must(202, shopA, "POST", path(j, "retry"), nil)
			if a.body["state"] != want || a.body["id"] != strconv.FormatUint(j.ID, 10) || a.body["attempts"] != float64(0) || a.body["error"] != "" {
				t.Errorf("retry of job %d: %s, want state %s", j.ID, a.raw, want)
			}
			if got := e.job(j.ID); got.State != want || got.RunAt == nil {
				t.Errorf("job %d in the database: %s run_at %v", j.ID, got.State, got.RunAt)
			}
		}
		for _, tc := range []struct {
			job    *models.ImageJob
			action string
			msg    string
		}{
			{leased, "retry", "Only a failed job can be retried; this one is submitting."},
			{done, "retry", "Only a failed job can be retried; this one is done."},
			{failedNew, "retry", "Only a failed job can be retried; this one is queued."},
			{failedTicket, "revert", "Only a finished job can be reverted; this one is awaiting_rtb."},
		} {
			a := e.must(409, shopA, "POST", path(tc.job, tc.action), nil)
			if a.errCode() != "conflict" || a.body["error"].(map[string]any)["message"] != tc.msg {
				t.Errorf("%s of %s job: %s", tc.action, tc.job.State, a.raw)
			}
		}

		for range 2 { // asking twice is harmless
			a := e.must(202, shopA, "POST", path(done, "revert"), nil)
			if a.body["state"] != models.JobDone || a.body["revertRequested"] != true || a.body["canRevert"] != false {
				t.Fatalf("revert: %s", a.raw)
			}
		}
		if got := e.job(done.ID); got.Step != "revert_requested" || got.RunAt == nil {
			t.Fatalf("reverted job: step %q run_at %v", got.Step, got.RunAt)
		}

		// Another shop's job, or none at all, is not found and untouched.
		for _, p := range []string{path(other, "retry"), path(other, "revert"), "/api/jobs/abc/retry", "/api/jobs/0/revert", "/api/jobs/99999/retry"} {
			if a := e.call(shopA, "POST", p, nil); a.status != 404 || a.errCode() != "not_found" {
				t.Errorf("%s: %d %s", p, a.status, a.raw)
			}
		}
		if a := e.call(shopA, "GET", "/api/jobs/"+strconv.FormatUint(other.ID, 10), nil); a.status != 404 {
			t.Errorf("GET another shop's job: %d", a.status)
		}
		if got := e.job(other.ID); got.State != models.JobFailed {
			t.Fatalf("another shop's job became %s", got.State)
		}
		e.must(202, shopB, "POST", path(other, "retry"), nil)
		if a := e.must(200, shopB, "GET", "/api/jobs/"+strconv.FormatUint(other.ID, 10), nil); a.body["state"] != models.JobQueued {
			t.Fatalf("own job after retry: %s", a.raw)
		}
	})
}

func TestAPISettingsResumeOverBudget(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		e.must(200, shopA, "GET", "/api/settings", nil)
		held := e.seedJob(shopA, 1, models.JobOverBudget, func(j *models.ImageJob) { j.Error = "This month's budget is used up." })
		month := time.Now().UTC().Format("2006-01")
		e.seedJob(shopA, 2, models.JobDone, func(j *models.ImageJob) { j.SubmitMonth, j.Price = &month, "0.95" })
		e.seedJob(shopA, 3, models.JobDone, func(j *models.ImageJob) { j.SubmitMonth, j.Price = &month, "1.25" })
		e.seedJob(shopA, 4, models.JobDone, func(j *models.ImageJob) { j.SubmitMonth, j.Price = ptr("2001-01"), "9.00" })
		body := validSettings()
		body["monthlyBudget"] = "100"
		a := e.must(200, shopA, "PUT", "/api/settings", body)
		if a.body["spentThisMonth"] != "2.20" || a.body["monthlyBudget"] != "100" {
			t.Fatalf("settings: %s", a.raw)
		}
		if got := e.job(held.ID); got.State != models.JobQueued || got.Error != "" {
			t.Fatalf("over-budget job after saving settings: %s %q", got.State, got.Error)
		}
	})
}

func TestAPIBackfill(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		if a := e.call(shopA, "GET", "/api/backfill", nil); a.status != 404 || a.errCode() != "not_found" {
			t.Fatalf("before any backfill: %d %s", a.status, a.raw)
		}
		if a := e.call(shopA, "POST", "/api/backfill", nil); a.status != 409 || a.errCode() != "not_ready" {
			t.Fatalf("backfill without settings: %d %s", a.status, a.raw)
		}
		body := validSettings()
		body["imageScope"], body["filters"] = "all", map[string]any{"productTypes": []string{}, "tagsInclude": []string{}}
		e.must(200, shopA, "PUT", "/api/settings", body)
		png := shopifytest.SamplePNG(8, 8, color.RGBA{200, 30, 30, 255})
		for i, images := range []int{2, 1} {
			np := shopifytest.NewProduct{Title: fmt.Sprintf("Shirt %d", i), ProductType: "Shirts"}
			for k := range images {
				np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprintf("s%d-%d.png", i, k), Data: png})
			}
			if _, err := e.store.CreateProduct(shopA, np); err != nil {
				t.Fatal(err)
			}
		}

		check := func(a answer, state string, seen, queued int, finished bool) {
			t.Helper()
			b, ok := a.body["backfill"].(map[string]any)
			if !ok || b["state"] != state || b["productsSeen"] != float64(seen) || b["imagesQueued"] != float64(queued) ||
				b["imagesSkipped"] != float64(0) || (b["finishedAt"] != "") == !finished || b["error"] != "" {
				t.Fatalf("backfill = %s, want %s seen %d queued %d finished %v", a.raw, state, seen, queued, finished)
			}
			if _, err := time.Parse(time.RFC3339, b["startedAt"].(string)); err != nil {
				t.Fatalf("startedAt: %v", err)
			}
		}
		est := e.must(200, shopA, "GET", "/api/backfill/estimate", nil)
		if est.body["images"] != float64(3) || est.body["amount"] != "2.85" || est.body["price"] != "0.95" || est.body["budgetLeft"] != "50.00" {
			t.Fatalf("estimate = %s, want 3 images for 2.85 of 50.00 left", est.raw)
		}
		for _, body := range []any{nil, map[string]any{"confirmAmount": "2.80"}, `{"confirmAmount": 2.85}`} {
			if a := e.call(shopA, "POST", "/api/backfill", body); a.status != 422 || a.fields()["confirmAmount"] == nil {
				t.Fatalf("backfill confirming %v: %d %s, want 422 naming confirmAmount", body, a.status, a.raw)
			}
		}
		confirm := map[string]any{"confirmAmount": "2.85"}
		check(e.must(202, shopA, "POST", "/api/backfill", confirm), "running", 0, 0, false)
		check(e.must(202, shopA, "POST", "/api/backfill", confirm), "running", 0, 0, false)
		check(e.must(200, shopA, "GET", "/api/backfill", nil), "running", 0, 0, false)
		if a := e.call(shopB, "GET", "/api/backfill", nil); a.status != 404 {
			t.Fatalf("another shop sees the backfill: %d", a.status)
		}

		ctx := context.Background()
		for i := 0; ; i++ {
			ran, err := e.pipeline.RunBackfillStep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ran {
				break
			}
			if i > 10 {
				t.Fatal("the backfill does not finish")
			}
		}
		check(e.must(200, shopA, "GET", "/api/backfill", nil), "done", 2, 3, true)
		jobs := e.must(200, shopA, "GET", "/api/jobs?state=queued", nil)
		if n := len(jobIDs(t, jobs)); n != 3 {
			t.Fatalf("%d queued jobs after the backfill: %s", n, jobs.raw)
		}
		// A finished backfill can be started again.
		raw, _ := json.Marshal(e.must(202, shopA, "POST", "/api/backfill", confirm).body) // the three queued, not yet submitted, are counted again
		if !strings.Contains(string(raw), `"state":"running"`) {
			t.Fatalf("restart: %s", raw)
		}
	})
}
