package e2e_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"rtbshopify/models"
)

// The review flow with the keyboard alone: compare a held image side by
// side, with the slider and at 100 %, approve it; reject another with a
// reason; approve all that are left; send the rejected one again once its
// price is confirmed.
func TestReviewFlowInHeadlessChromium(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	h := newUIHarness(t)
	h.turnOn(map[string]any{"publish": "review"})
	for _, name := range []string{"approve", "reject", "rest"} {
		rec := h.createProduct(oneImage(name))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
	}
	jobs := h.waitJobs("three held", allIn(3, models.JobAwaitingReview))
	row := func(j models.ImageJob) string { return `#jobs-body s-table-row[data-id="` + itoa(j.ID) + `"]` }

	b.do("open the page",
		chromedp.Navigate(launchURL(h)),
		waitJS(`document.body.dataset.loaded === "1"`),
		waitJS(`document.querySelectorAll("#jobs-body s-table-row[data-state='awaiting_review']").length === 3`),
		waitJS(`!document.getElementById("review-approve-all").hidden`),
	)
	b.do("the list drawn anew keeps the keyboard's place",
		focusOn(row(jobs[0])+` s-button button`),
		waitJS(`(function () { window.rtbBefore = document.activeElement; document.querySelector("#jobs-refresh button").click(); return true; })()`),
		waitJS(`document.activeElement !== window.rtbBefore && document.activeElement === document.querySelector('`+row(jobs[0])+` s-button button')`),
	)
	b.do("review the first side by side",
		focusOn(row(jobs[0])+` s-button button`),
		key("\r"),
		waitJS(`!document.getElementById("review").hidden`),
		waitJS(`document.activeElement === document.querySelector("#review-view select")`),
		waitJS(`(function () { var i = document.querySelectorAll("#review-compare figure img");
  return i.length === 2 && Array.prototype.every.call(i, function (x) { return x.complete && x.naturalWidth > 0; }); })()`),
	)
	b.do("switch to the slider",
		key(kb.ArrowDown),
		waitJS(`!!document.querySelector("#review-compare .stack .over") && !!document.getElementById("review-slider")`),
	)
	b.do("move the slider and zoom to actual size",
		focusOn(`#review-slider`),
		key(kb.ArrowRight),
		waitJS(`document.querySelector("#review-compare .stack").style.getPropertyValue("--reveal") === "49%"`),
		focusOn(`#review-zoom input`),
		key(" "),
		waitJS(`document.getElementById("review-compare").classList.contains("actual")`),
		waitJS(`(function () { var i = document.querySelector("#review-compare .stack img"); return i.complete && i.getBoundingClientRect().width === i.naturalWidth; })()`),
	)
	b.screenshot("review.png")
	b.do("approve it",
		focusOn(`#review-approve button`),
		key("\r"),
		toastSays("Publishing the processed image"),
		waitJS(`document.getElementById("review").hidden`),
	)
	h.waitJobs("the first done", func(js []models.ImageJob) bool { return js[0].State == models.JobDone })

	reason := "Shadow under the mug is gone"
	b.do("reject the second with a reason",
		focusOn(row(jobs[1])+` s-button button`),
		key("\r"),
		waitJS(`!document.getElementById("review").hidden`),
		// The panel puts the keyboard on its view picker once it is drawn; type the reason after
		// that, or the keys land in the picker.
		waitJS(`document.activeElement === document.querySelector("#review-view select")`),
		focusOn(`#review-reason input`),
		chromedp.SendKeys(chromedp.CSS(`#review-reason input`), reason),
		focusOn(`#review-reject button`),
		key("\r"),
		toastSays("Rejected; the product is unchanged"),
		waitJS(`!!document.querySelector('`+row(jobs[1])+`[data-state="rejected"]')`),
		waitJS(`document.querySelector('`+row(jobs[1])+` .error').textContent === "Rejected: `+reason+`"`),
	)
	if j := h.jobFor(jobs[1].MediaID); j.State != models.JobRejected || j.ReviewReason != reason {
		t.Fatalf("rejected job: %s %q", j.State, j.ReviewReason)
	}
	b.do("approve all that are left",
		focusOn(`#review-approve-all button`),
		key("\r"),
		toastSays("1 image approved"),
	)
	final := h.waitJobs("the last done", func(js []models.ImageJob) bool { return js[2].State == models.JobDone })
	if final[1].State != models.JobRejected {
		t.Fatalf("approve all touched the rejected image: %s", final[1].State)
	}

	// Send the rejected image again: the price is shown first; Cancel (reached with Tab) sends
	// nothing, and only the confirmation does.
	again := row(jobs[1]) + ` s-button button`
	b.do("ask to send the rejected image again, and cancel",
		focusOn(again),
		key("\r"),
		waitJS(`!document.getElementById("send-again").hidden`),
		waitJS(`document.getElementById("send-again-text").textContent.indexOf("billed 0.95") > 0`),
		waitJS(`document.activeElement === document.querySelector("#send-again-confirm button") && document.activeElement.textContent === "Confirm and pay 0.95"`),
		key(kb.Tab),
		waitJS(`document.activeElement === document.querySelector("#send-again-cancel button")`),
		key("\r"),
		waitJS(`document.getElementById("send-again").hidden`),
		waitJS(`document.activeElement === document.querySelector('`+again+`')`),
	)
	if j := h.jobFor(jobs[1].MediaID); j.State != models.JobRejected || len(h.rtb.Jobs()) != 3 {
		t.Fatalf("a cancelled send-again changed the job (%s) or submitted it (%d submissions)", j.State, len(h.rtb.Jobs()))
	}
	b.do("send it again, confirming the price",
		key(" "),
		waitJS(`document.activeElement === document.querySelector("#send-again-confirm button")`),
		key(" "),
		toastSays("Sent again for 0.95; the image is queued"),
		waitJS(`document.getElementById("send-again").hidden`),
		waitJS(`!document.querySelector('`+row(jobs[1])+`[data-state="rejected"]')`),
	)
	held := h.waitJobs("the image sent again held for review", func(js []models.ImageJob) bool { return js[1].State == models.JobAwaitingReview })
	if n := len(h.rtb.Jobs()); n != 4 || held[1].ReviewFileID == jobs[1].ReviewFileID {
		t.Fatalf("%d submissions, want 4; held file %s, rejected %s", n, held[1].ReviewFileID, jobs[1].ReviewFileID)
	}
	if errs := b.scriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}
}
