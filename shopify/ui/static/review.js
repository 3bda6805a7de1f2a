// Review before publish: a held image's row gets a checkbox and a Review button; the review
// panel compares the original and the processed image side by side or with a slider over the
// original, at fitted or actual size (100 %), and approves or rejects it (with a reason).
// Approve selected and Approve all decide many at once. A rejected image can be sent again: a new
// paid submission, made only once the merchant confirmed the price it costs now.
(function () {
  "use strict";

  var admin = window.rtbAdmin;
  var $ = function (id) { return document.getElementById(id); };
  var el = admin.el;
  var current = null; // the job in the review panel

  admin.rowHooks.push(function (j, tr, actions, title) {
    if (j.state === "rejected" && j.review && j.review.reason) tr.querySelector(".error").textContent = "Rejected: " + j.review.reason;
    if (j.state === "rejected") {
      var again = el("s-button", { "accessibility-label": "Send " + title + " again" }, "Send again");
      again.addEventListener("click", function () { askAgain(j, title, again); });
      actions.appendChild(again);
    }
    if (!j.canDecide) return;
    var pick = el("s-checkbox", { "class": "review-pick", label: "Select " + title });
    pick.dataset.id = j.id;
    actions.appendChild(pick);
    var b = el("s-button", { "accessibility-label": "Review " + title }, "Review");
    b.addEventListener("click", function () { open(j, title); });
    actions.appendChild(b);
  });

  document.addEventListener("rtb:jobs", function (ev) {
    var held = !!document.querySelector("#jobs-body s-table-row[data-state='awaiting_review']");
    $("review-approve-selected").hidden = !held;
    $("review-approve-all").hidden = !held;
    var notice = (ev.detail.notices || []).filter(function (n) { return n.code === "review_waiting"; })[0];
    $("review-notice").hidden = !notice;
    if (notice) {
      $("review-notice-text").textContent = notice.message + " (" + notice.jobs + (notice.jobs === 1 ? " image.)" : " images.)");
    }
  });

  $("review-notice").addEventListener("dismiss", async function () {
    try { await admin.api("POST", "/api/review/reminder"); } catch (err) { admin.fail(err); }
  });

  function picture(url, alt, cls) {
    var src = admin.safeURL(url);
    if (!src) return el("span", { "class": "no-thumb", role: "img", "aria-label": alt + " (none)" }, "—");
    var img = el("img", { src: src, alt: alt, "class": cls || "", decoding: "async" });
    return img;
  }

  // compare builds the chosen view of the job's two images.
  function compare() {
    if (!current) return;
    var box = $("review-compare");
    var j = current.job;
    var before = "Original: " + current.title, after = "Processed: " + current.title;
    box.classList.toggle("actual", !!$("review-zoom").checked);
    if ($("review-view").value === "slider") {
      var stack = el("div", { "class": "stack" });
      stack.appendChild(picture(j.originalUrl, before));
      var top = picture(j.processedUrl, after, "over");
      stack.appendChild(top);
      var range = el("input", { type: "range", min: "0", max: "100", value: "50", id: "review-slider",
        "aria-label": "Share of the processed image shown over the original" });
      var reveal = function () { stack.style.setProperty("--reveal", (100 - Number(range.value)) + "%"); };
      range.addEventListener("input", reveal);
      reveal();
      box.replaceChildren(stack, range);
      return;
    }
    var a = el("figure", {}), b = el("figure", {});
    a.append(picture(j.originalUrl, before), el("figcaption", {}, "Original"));
    b.append(picture(j.processedUrl, after), el("figcaption", {}, "Processed"));
    box.replaceChildren(a, b);
  }

  function open(j, title) {
    current = { job: j, title: title };
    $("review-title").textContent = title + ": held since " + new Date(j.review.heldAt).toLocaleString() +
      ". Nothing on the product changes until you approve it.";
    $("review-reason").value = "";
    $("review").hidden = false;
    compare();
    $("review").scrollIntoView();
    setTimeout(function () { $("review-view").focus(); }, 0);
  }

  function close() {
    var id = current && current.job.id;
    current = null;
    $("review").hidden = true;
    $("review-compare").replaceChildren();
    var back = id && document.querySelector("#jobs-body s-table-row[data-id='" + CSS.escape(id) + "'] s-button");
    (back || $("jobs-refresh")).focus();
  }

  $("review-view").addEventListener("change", compare);
  $("review-zoom").addEventListener("change", compare);
  $("review-close").addEventListener("click", close);

  async function decide(btn, approve) {
    if (!current) return;
    var j = current.job;
    btn.loading = true;
    try {
      var body = approve ? {} : { reason: String($("review-reason").value || "").trim() };
      var got = await admin.api("POST", "/api/jobs/" + encodeURIComponent(j.id) + (approve ? "/approve" : "/reject"), body);
      admin.toast(got.state === "rejected" ? "Rejected; the product is unchanged" : "Publishing the processed image");
      close();
      await admin.loadJobs();
    } catch (err) {
      if (err.status !== 409) admin.fail(err);
      else { // decided the other way meanwhile: say so, and show the image as it is now
        admin.toast(err.message);
        close();
        await admin.loadJobs();
      }
    }
    btn.loading = false;
  }
  $("review-approve").addEventListener("click", function () { decide($("review-approve"), true); });
  $("review-reject").addEventListener("click", function () { decide($("review-reject"), false); });

  async function approveMany(btn, body) {
    btn.loading = true;
    try {
      var data = await admin.api("POST", "/api/jobs/approve", body);
      admin.toast(data.count === 1 ? "1 image approved" : data.count + " images approved");
      await admin.loadJobs();
    } catch (err) {
      admin.fail(err);
    }
    btn.loading = false;
  }
  $("review-approve-selected").addEventListener("click", function () {
    var ids = Array.prototype.filter.call(document.querySelectorAll("#jobs-body .review-pick"), function (c) { return c.checked; })
      .map(function (c) { return c.dataset.id; });
    if (!ids.length) { admin.toast("Select the images to approve first"); return; }
    approveMany($("review-approve-selected"), { ids: ids });
  });
  $("review-approve-all").addEventListener("click", function () { approveMany($("review-approve-all"), { all: true }); });

  // ---- send again ----------------------------------------------------------

  var resend = null; // the rejected image whose price the merchant is asked to confirm

  // askAgain shows what sending the image again costs now, with the button that confirms it.
  async function askAgain(j, title, btn) {
    btn.loading = true;
    var s = null;
    try { s = await admin.api("GET", "/api/settings"); } catch (err) { admin.fail(err); }
    btn.loading = false;
    if (!s) return;
    if (!s.templatePrice) { admin.fail({ message: "The template's price is not known yet. Save the settings, then send the image again." }); return; }
    resend = { job: j, title: title, price: s.templatePrice };
    $("send-again-text").textContent = "Send " + title + " to Remove The Background again? It is a new submission, billed " +
      s.templatePrice + ". The rejected result is deleted from Files; the new one is held for review or published as the settings say.";
    var label = "Confirm and pay " + s.templatePrice;
    var ok = el("s-button", { id: "send-again-confirm", variant: "primary", "accessibility-label": label + " to send " + title + " again" }, label);
    ok.addEventListener("click", function () { sendAgain(ok); });
    $("send-again-slot").replaceChildren(ok);
    $("send-again").hidden = false;
    $("send-again").scrollIntoView();
    setTimeout(function () { ok.focus(); }, 0); // once the button rendered
  }

  function closeAgain() {
    var id = resend && resend.job.id;
    resend = null;
    $("send-again").hidden = true;
    $("send-again-slot").replaceChildren();
    var back = id && document.querySelector("#jobs-body s-table-row[data-id='" + CSS.escape(id) + "'] s-button");
    (back || $("jobs-refresh")).focus();
  }

  async function sendAgain(btn) {
    if (!resend) return;
    var r = resend;
    btn.loading = true;
    try {
      await admin.api("POST", "/api/jobs/" + encodeURIComponent(r.job.id) + "/send-again", { confirmAmount: r.price });
      await admin.loadJobs();
      closeAgain();
      admin.toast("Sent again for " + r.price + "; the image is queued");
    } catch (err) {
      btn.loading = false;
      if (err.status === 422) { await askAgain(r.job, r.title, btn); return; } // the price changed: confirm the new one
      closeAgain();
      admin.fail(err);
      admin.loadJobs();
    }
  }

  $("send-again-cancel").addEventListener("click", closeAgain);
})();
