// The existing catalogue and the month's spend: a backfill starts only after the merchant saw
// what it costs now (the estimate) and confirmed that amount, which is then the most it may
// spend; the month's spend and the images processed, day by day, as two small charts.
(function () {
  "use strict";

  var admin = window.rtbAdmin;
  var $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";

  // ---- backfill ----------------------------------------------------------

  var backfillTimer = null;
  var backfillRunning = false;
  var estimate = null; // the last estimate shown, whose amount the merchant confirms

  function showBackfill(b) {
    var counts = b.productsSeen + " products looked at, " + b.imagesQueued + " images queued, " +
      b.imagesSkipped + " skipped";
    var text = "Finished: " + counts + ".";
    if (b.state === "running") text = "Running: " + counts + ".";
    else if (b.state === "failed") text = "Stopped with an error: " + (b.error || "unknown") + " (" + counts + ").";
    $("backfill-status").textContent = text;
    $("backfill-start").loading = b.state === "running";
    $("backfill-start").disabled = b.state === "running";
  }

  async function loadBackfill() {
    clearTimeout(backfillTimer);
    try {
      var data = await admin.api("GET", "/api/backfill");
      showBackfill(data.backfill);
      var running = data.backfill.state === "running";
      if (running) backfillTimer = setTimeout(loadBackfill, 2000);
      if (backfillRunning && !running) { admin.loadJobs(); loadMonth(); } // the last images it queued
      backfillRunning = running;
    } catch (err) {
      if (err.status !== 404) admin.fail(err);
    }
  }

  function estimateText(e) {
    var cur = e.currencyId ? " (currency " + e.currencyId + ")" : "";
    var text = e.images === 0 ? "No image would be sent now: every product image is processed or excluded by the settings."
      : e.images + (e.images === 1 ? " image" : " images") + " would be sent now at " + e.price + " each: " + e.amount + cur + ".";
    if (e.budgetLeft !== "") text += " This month's budget has " + e.budgetLeft + " left.";
    return text;
  }

  // confirming shows (with the amount on it) or removes the button that confirms the estimate.
  // The button sends the amount it shows, whatever estimate comes after it.
  function confirming(on) {
    var slot = $("backfill-confirm-slot");
    slot.replaceChildren();
    if (on) {
      var amount = estimate.amount;
      var label = "Confirm and spend up to " + amount;
      var btn = admin.el("s-button", { id: "backfill-confirm", variant: "primary", "accessibility-label": label }, label);
      btn.addEventListener("click", function () { confirmBackfill(btn, amount); });
      slot.appendChild(btn);
    }
    $("backfill-cancel").hidden = !on;
    $("backfill-start").hidden = on;
  }

  // loadEstimate shows what a backfill would cost now; with ask, it asks the merchant to confirm.
  // A confirmation already open then asks for the new amount, or closes when there is none.
  async function loadEstimate(ask) {
    try {
      estimate = await admin.api("GET", "/api/backfill/estimate");
    } catch (err) {
      estimate = null;
      if ($("backfill-confirm")) confirming(false);
      if (err.status === 409) { $("estimate").textContent = err.message; return; }
      admin.fail(err);
      return;
    }
    $("estimate").textContent = estimateText(estimate);
    var open = $("backfill-confirm");
    if (!ask && (!open || open.loading)) return; // a confirmation being sent ends by itself
    var focus = ask || open.contains(document.activeElement);
    confirming(true);
    var btn = $("backfill-confirm");
    if (focus) setTimeout(function () { btn.focus(); }, 0); // once the button rendered
  }

  $("backfill-start").addEventListener("click", async function () {
    var btn = $("backfill-start");
    btn.loading = true;
    await loadEstimate(true);
    btn.loading = false;
  });

  $("backfill-cancel").addEventListener("click", function () {
    confirming(false);
    $("backfill-start").focus();
  });

  async function confirmBackfill(btn, amount) {
    btn.loading = true;
    try {
      var data = await admin.api("POST", "/api/backfill", { confirmAmount: amount });
      confirming(false);
      showBackfill(data.backfill);
      backfillRunning = data.backfill.state === "running";
      admin.toast("Processing the existing catalogue, up to " + amount);
      backfillTimer = setTimeout(loadBackfill, 2000);
      admin.loadJobs();
    } catch (err) {
      if (err.status === 422) {
        // The catalogue changed since the estimate: show the new amount to confirm.
        btn.loading = false;
        await loadEstimate(true);
        return;
      }
      admin.fail(err);
      confirming(false);
    }
    btn.loading = false;
  }

  // ---- this month, day by day ---------------------------------------------

  function bars(svg, values, label) {
    var max = Math.max.apply(null, values.map(function (v) { return v.value; }).concat([0]));
    var w = 310 / Math.max(values.length, 1);
    var nodes = values.map(function (v, i) {
      var h = max > 0 ? Math.max(v.value > 0 ? 2 : 0, 56 * v.value / max) : 0;
      var r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", String(i * w + 1));
      r.setAttribute("y", String(60 - h));
      r.setAttribute("width", String(Math.max(w - 2, 1)));
      r.setAttribute("height", String(h));
      var t = document.createElementNS(SVG, "title");
      t.textContent = v.date + ": " + v.text;
      r.appendChild(t);
      return r;
    });
    svg.replaceChildren.apply(svg, nodes);
    svg.setAttribute("aria-label", label + ": " + values.filter(function (v) { return v.value > 0; })
      .map(function (v) { return v.date + " " + v.text; }).join(", ") || label + ": none yet");
  }

  async function loadMonth() {
    try {
      var data = await admin.api("GET", "/api/spend");
      bars($("chart-spend"), data.days.map(function (d) { return { date: d.date, value: parseFloat(d.spend) || 0, text: d.spend }; }),
        "Spent per day this month");
      bars($("chart-processed"), data.days.map(function (d) { return { date: d.date, value: d.processed, text: String(d.processed) }; }),
        "Images processed per day");
    } catch (err) {
      admin.fail(err);
    }
  }

  // The estimate reads the whole catalogue from Shopify: it is worked out when the merchant asks
  // for it, and again after a save of the settings once it was shown (they may change it), not
  // on every visit of the page.
  document.addEventListener("rtb:loaded", function () { loadBackfill(); loadMonth(); });
  document.addEventListener("rtb:settings-saved", function () { if (estimate) loadEstimate(false); });
})();
