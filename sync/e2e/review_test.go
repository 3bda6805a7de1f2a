package e2e_test

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// jobJSON reads one job through the API.
func (h *harness) jobJSON(id uint64) map[string]any {
	h.t.Helper()
	status, body := h.api("GET", "/api/jobs/"+itoa(id), nil)
	var v map[string]any
	if status != 200 || json.Unmarshal(body, &v) != nil {
		h.t.Fatalf("job %d: %d %s", id, status, body)
	}
	return v
}

// same reports whether two snapshots show the same gallery: media, their
// bytes, alt texts and variant links.
func same(a, b shopifytest.ProductSnapshot) bool {
	if len(a.Media) != len(b.Media) || len(a.Variants) != len(b.Variants) {
		return false
	}
	for i := range a.Media {
		x, y := a.Media[i], b.Media[i]
		if x.ID != y.ID || x.Alt != y.Alt || x.Version != y.Version || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	for i := range a.Variants {
		if !slices.Equal(a.Variants[i].MediaIDs, b.Variants[i].MediaIDs) {
			return false
		}
	}
	return true
}

func TestReviewHoldsResultsUntilTheMerchantDecides(t *testing.T) {
	for _, mode := range []string{"replace", "add"} {
		t.Run(mode, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				testReview(t, db, mode)
			})
		})
	}
}

func testReview(t *testing.T, db *gorm.DB, mode string) {
	h := newHarness(t, db, harnessOptions{writeMode: mode})
	if status, body := h.api("PUT", "/api/settings", map[string]any{"publish": "review"}); status != 200 || !strings.Contains(string(body), `"publish":"review"`) {
		t.Fatalf("review mode: %d %s", status, body)
	}
	var before []shopifytest.ProductSnapshot
	var ids []string
	for _, name := range []string{"approve", "reject", "all"} {
		rec := h.createProduct(oneImage(name))
		before = append(before, waitReady(t, h, rec.ID))
		ids = append(ids, rec.ID)
		h.webhook("products/create", rec.ID)
	}
	jobs := h.waitJobs("three held", allIn(3, models.JobAwaitingReview))
	for i, j := range jobs {
		now := h.store.Product(shopDomain, ids[i])
		if !same(before[i], now) {
			t.Fatalf("a held image changed product %d", i)
		}
		held := false
		for _, f := range now.Files {
			held = held || f.ID == j.ReviewFileID && f.Status == "READY" && len(f.ProductIDs) == 0 && f.Alt == "A mug"
		}
		if !held || j.ProcessedURL == "" {
			t.Fatalf("job %d: the processed image is not in Files, off the product, with the alt text (file %q, url %q)", j.ID, j.ReviewFileID, j.ProcessedURL)
		}
		v := h.jobJSON(j.ID)
		r, _ := v["review"].(map[string]any)
		if v["state"] != "awaiting_review" || r == nil || r["heldAt"] == "" || r["decidedAt"] != "" || r["reason"] != "" {
			t.Fatalf("held job JSON: %v", v)
		}
	}

	// Approve one: written back as in auto mode, from the file already in Files.
	if status, body := h.api("POST", "/api/jobs/"+itoa(jobs[0].ID)+"/approve", nil); status != 202 {
		t.Fatalf("approve: %d %s", status, body)
	}
	h.waitJobs("approved one done", func(js []models.ImageJob) bool { return js[0].State == models.JobDone })
	after := h.store.Product(shopDomain, ids[0])
	if same(before[0], after) {
		t.Fatal("the approved image did not reach the product")
	}
	if status, body := h.api("POST", "/api/jobs/"+itoa(jobs[0].ID)+"/approve", nil); status != 202 || !strings.Contains(string(body), `"state":"done"`) {
		t.Fatalf("second approve: %d %s, want 202 and the job as it is", status, body)
	}
	if status, body := h.api("POST", "/api/jobs/"+itoa(jobs[0].ID)+"/reject", map[string]any{"reason": "late"}); status != 409 || !strings.Contains(string(body), "approved already") {
		t.Fatalf("reject after approve: %d %s, want 409", status, body)
	}

	// Reject one with a reason: the product stays as it was; the file stays in Files.
	reason := "Ручка срезана 🙁"
	if status, body := h.api("POST", "/api/jobs/"+itoa(jobs[1].ID)+"/reject", map[string]any{"reason": reason}); status != 202 {
		t.Fatalf("reject: %d %s", status, body)
	}
	if status, body := h.api("POST", "/api/jobs/"+itoa(jobs[1].ID)+"/reject", map[string]any{"reason": "other"}); status != 202 || !strings.Contains(string(body), `"state":"rejected"`) {
		t.Fatalf("second reject: %d %s, want 202 and no change", status, body)
	}
	if status, body := h.api("POST", "/api/jobs/"+itoa(jobs[1].ID)+"/approve", nil); status != 409 || !strings.Contains(string(body), "was rejected") {
		t.Fatalf("approve after reject: %d %s, want 409", status, body)
	}
	v := h.jobJSON(jobs[1].ID)
	if r, _ := v["review"].(map[string]any); v["state"] != "rejected" || r["reason"] != reason || r["decidedAt"] == "" {
		t.Fatalf("rejected job JSON: %v", v)
	}

	// Approve all: only the one still held.
	status, body := h.api("POST", "/api/jobs/approve", map[string]any{"all": true})
	if status != 202 || !strings.Contains(string(body), `"count":1`) {
		t.Fatalf("approve all: %d %s", status, body)
	}
	final := h.waitJobs("the last approved", func(js []models.ImageJob) bool { return js[2].State == models.JobDone })
	if final[1].State != models.JobRejected || !same(before[1], h.store.Product(shopDomain, ids[1])) {
		t.Fatalf("the rejected image's product changed, or its job did (%s)", final[1].State)
	}
	if status, body := h.api("POST", "/api/jobs/reject", map[string]any{"ids": []string{itoa(final[0].ID), itoa(final[2].ID)}}); status != 202 || !strings.Contains(string(body), `"count":0`) {
		t.Fatalf("reject of decided jobs: %d %s, want count 0", status, body)
	}
	// Each approved image is one processed file in Files (the held one), and
	// each image was submitted once.
	for _, j := range []models.ImageJob{final[0], final[2]} {
		n := 0
		for _, f := range h.store.Product(shopDomain, j.ProductID).Files {
			if f.ID == j.ReviewFileID || strings.Contains(f.Filename, "processed-"+itoa(j.ID)) {
				n++
			}
		}
		if mode == "add" && (n != 1 || j.ResultMediaID != j.ReviewFileID) {
			t.Errorf("job %d: %d processed files, result %s, held %s: approval must attach the held file", j.ID, n, j.ResultMediaID, j.ReviewFileID)
		}
	}
	if n := len(h.rtb.Jobs()); n != 3 {
		t.Fatalf("%d submissions, want 3", n)
	}

	// A job never held for review cannot be approved or rejected.
	if status, _ := h.api("PUT", "/api/settings", map[string]any{"publish": "auto"}); status != 200 {
		t.Fatal("auto mode")
	}
	rec := h.createProduct(oneImage("auto"))
	waitReady(t, h, rec.ID)
	h.webhook("products/create", rec.ID)
	auto := h.waitJobs("auto done", func(js []models.ImageJob) bool { return len(js) == 4 && js[3].State == models.JobDone })[3]
	for _, path := range []string{"/approve", "/reject"} {
		if status, body := h.api("POST", "/api/jobs/"+itoa(auto.ID)+path, nil); status != 409 {
			t.Fatalf("%s of a job never in review: %d %s, want 409", path, status, body)
		}
	}
}

// A rejected image sent again is one new paid submission, after the
// merchant confirmed its price: it waits while the month's budget has no
// room for it, then is submitted exactly once more, and its new result —
// never the rejected file — is held again (replace) or published at once
// (add, with the shop now publishing automatically). The month counts both
// payments.
func TestRejectedImageSentAgain(t *testing.T) {
	for _, mode := range []string{"replace", "add"} {
		t.Run(mode, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				testSendAgain(t, db, mode)
			})
		})
	}
}

func testSendAgain(t *testing.T, db *gorm.DB, mode string) {
	h := newHarness(t, db, harnessOptions{writeMode: mode, budget: "1.00"})
	if status, body := h.api("PUT", "/api/settings", map[string]any{"publish": "review"}); status != 200 {
		t.Fatalf("review mode: %d %s", status, body)
	}
	rec := h.createProduct(oneImage("again"))
	before := waitReady(t, h, rec.ID)
	h.webhook("products/create", rec.ID)
	first := h.waitJobs("held", allIn(1, models.JobAwaitingReview))[0]
	path := "/api/jobs/" + itoa(first.ID)
	if status, body := h.api("POST", path+"/send-again", map[string]any{"confirmAmount": "0.95"}); status != 409 {
		t.Fatalf("send again of a held image: %d %s, want 409", status, body)
	}
	if status, body := h.api("POST", path+"/reject", map[string]any{"reason": "Cut too close"}); status != 202 {
		t.Fatalf("reject: %d %s", status, body)
	}
	spent := func() string {
		t.Helper()
		_, body := h.api("GET", "/api/settings", nil)
		var s struct{ SpentThisMonth string }
		json.Unmarshal(body, &s)
		return s.SpentThisMonth
	}
	if s := spent(); s != "0.95" {
		t.Fatalf("spent after one submission: %s", s)
	}

	// The price must be confirmed; then the image waits while the budget has no room.
	if status, body := h.api("POST", path+"/send-again", nil); status != 422 || !strings.Contains(string(body), `"confirmAmount"`) || !strings.Contains(string(body), "0.95") {
		t.Fatalf("send again without confirming: %d %s", status, body)
	}
	status, body := h.api("POST", path+"/send-again", map[string]any{"confirmAmount": "0.95"})
	if status != 202 || !strings.Contains(string(body), `"state":"queued"`) {
		t.Fatalf("send again: %d %s", status, body)
	}
	if status, body := h.api("POST", path+"/send-again", map[string]any{"confirmAmount": "0.95"}); status != 409 {
		t.Fatalf("a double click: %d %s, want 409", status, body)
	}
	h.waitJobs("over budget", allIn(1, models.JobOverBudget))
	if n := len(h.rtb.Jobs()); n != 1 {
		t.Fatalf("%d submissions over budget, want 1", n)
	}
	if f := fileByID(h.store.Product(shopDomain, rec.ID), first.ReviewFileID); f != nil {
		t.Fatalf("the rejected file %s is still in Files; the new result would be taken for it", first.ReviewFileID)
	}
	if !same(before, h.store.Product(shopDomain, rec.ID)) {
		t.Fatal("sending again changed the product")
	}

	// Room in the budget: submitted once more.
	settings := map[string]any{"monthlyBudget": "1.90", "publish": "review"}
	if mode == "add" {
		settings["publish"] = "auto"
	}
	if status, body := h.api("PUT", "/api/settings", settings); status != 200 {
		t.Fatalf("raise the budget: %d %s", status, body)
	}
	var j models.ImageJob
	if mode == "replace" {
		j = h.waitJobs("held again", allIn(1, models.JobAwaitingReview))[0]
		if j.ReviewFileID == "" || j.ReviewFileID == first.ReviewFileID || j.ReviewDecidedAt != nil || j.ReviewReason != "" {
			t.Fatalf("held again with file %q (rejected %q), decided %v, reason %q", j.ReviewFileID, first.ReviewFileID, j.ReviewDecidedAt, j.ReviewReason)
		}
		if !same(before, h.store.Product(shopDomain, rec.ID)) {
			t.Fatal("the held new result changed the product")
		}
		if status, body := h.api("POST", path+"/approve", nil); status != 202 {
			t.Fatalf("approve: %d %s", status, body)
		}
	}
	j = h.waitJobs("written back", allIn(1, models.JobDone))[0]
	after := h.store.Product(shopDomain, rec.ID)
	if same(before, after) {
		t.Fatal("the new result did not reach the product")
	}
	if mode == "add" {
		if j.ResultMediaID == "" || j.ResultMediaID == first.ReviewFileID || len(after.Media) != 2 || after.Media[1].ID != j.ResultMediaID {
			t.Fatalf("add mode: result %s (rejected %s), media %d", j.ResultMediaID, first.ReviewFileID, len(after.Media))
		}
	}
	time.Sleep(300 * time.Millisecond) // a second submission, were there one, would show by now
	if n := len(h.rtb.Jobs()); n != 2 {
		t.Fatalf("%d submissions, want 2: the first and the one sent again", n)
	}
	if s := spent(); s != "1.90" {
		t.Fatalf("spent this month: %s, want both charges (1.90)", s)
	}
	_, body = h.api("GET", "/api/spend", nil)
	var month struct{ Days []struct{ Spend string } }
	json.Unmarshal(body, &month)
	total := 0.0
	for _, d := range month.Days {
		v, _ := strconv.ParseFloat(d.Spend, 64)
		total += v
	}
	if math.Abs(total-1.90) > 1e-9 {
		t.Fatalf("the month's chart adds up to %.2f, want 1.90: %s", total, body)
	}
	var events []models.JobEvent
	db.Where("job_id = ? AND message LIKE ?", j.ID, "sent again by the merchant%").Find(&events)
	if len(events) != 1 {
		t.Fatalf("%d events of the merchant sending it again, want 1", len(events))
	}
}
