// The embedded admin: status, the images and their states, settings and the existing catalogue,
// built from Polaris web components (polaris.js from Shopify's CDN; in tests and the demo a small
// shim defines the same elements). Everything shown from the API goes through textContent or
// element properties; no markup is ever built from strings.
// App Bridge is used when it loaded; without it (direct visit, no network) the page uses the
// launch URL's id_token, then the demo's token endpoint.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var ACTIVE = { queued: 1, submitting: 1, awaiting_rtb: 1, writing_back: 1, retrying: 1 };
  var STATES = ["queued", "submitting", "awaiting_rtb", "awaiting_review", "writing_back", "done",
    "retrying", "failed", "cancelled", "skipped", "over_budget", "reverted", "rejected"];
  var TONES = { done: "success", failed: "critical", over_budget: "warning", retrying: "warning",
    awaiting_review: "attention", cancelled: "neutral", skipped: "neutral", reverted: "neutral", rejected: "neutral" };
  var PAGE = 50;
  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, props, text) {
    var e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) { e.setAttribute(k, props[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // ---- session tokens ----------------------------------------------------

  function jwtClaims(tok) {
    try {
      var part = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (e) {
      return {};
    }
  }

  function shopFromToken(tok) {
    var dest = jwtClaims(tok).dest || "";
    return dest.replace(/^https:\/\//, "");
  }

  var tokens = {
    cached: null, // {token, exp} from the URL or the dev endpoint
    bridgeFailed: false,
    urlToken: params.get("id_token"),
    shop: params.get("shop") || shopFromToken(params.get("id_token") || ""),

    remember: function (token) {
      var exp = (jwtClaims(token).exp || 0) * 1000;
      this.cached = { token: token, exp: exp };
      return token;
    },

    usable: function (exp) { return exp - 5000 > Date.now(); },

    // get returns a session token; fresh discards what was cached (the API
    // refused it).
    get: async function (fresh) {
      if (fresh) {
        this.cached = null;
        this.urlToken = null;
      }
      var bridge = window.shopify;
      if (!this.bridgeFailed && bridge && typeof bridge.idToken === "function") {
        try {
          var t = await Promise.race([bridge.idToken(), new Promise(function (_, reject) {
            setTimeout(function () { reject(new Error("App Bridge timed out")); }, 4000);
          })]);
          if (t) return t;
        } catch (e) { /* not inside the admin */ }
        this.bridgeFailed = true; // don't wait for it on every request
      }
      if (this.cached && this.usable(this.cached.exp)) return this.cached.token;
      if (this.urlToken && this.usable((jwtClaims(this.urlToken).exp || 0) * 1000)) {
        return this.remember(this.urlToken);
      }
      if (this.shop) {
        // Requests made at once (the first page load makes several) share one fetch.
        var self = this;
        this.pending = this.pending || fetch("/dev/session-token?shop=" + encodeURIComponent(this.shop),
          { headers: { Accept: "application/json" }, cache: "no-store" })
          .then(function (res) { return res.ok ? res.json() : null; })
          .catch(function () { return null; })
          .finally(function () { self.pending = null; });
        var body = await this.pending;
        if (body && body.token) return this.remember(body.token);
      }
      throw new ApiError(401, "no_session", "Your session has ended. Open the app again from your Shopify admin.");
    }
  };

  // ---- API ---------------------------------------------------------------

  function ApiError(status, code, message, fields) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.fields = fields || null;
  }

  async function api(method, path, body) {
    for (var attempt = 0; ; attempt++) {
      var token = await tokens.get(attempt > 0);
      var init = { method: method, cache: "no-store",
        headers: { Authorization: "Bearer " + token, Accept: "application/json" } };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      var res;
      try {
        res = await fetch(path, init);
      } catch (e) {
        throw new ApiError(0, "network", "Could not reach the app. Check your connection and try again.");
      }
      if (res.status === 401 && attempt === 0 && res.headers.get("X-Shopify-Retry-Invalid-Session-Request")) {
        continue;
      }
      var data = null;
      try { data = await res.json(); } catch (e) { /* not JSON */ }
      if (!res.ok) {
        var err = (data && data.error) || {};
        throw new ApiError(res.status, err.code || "http_" + res.status,
          err.message || "The app answered with status " + res.status + ". Try again.", err.fields);
      }
      return data;
    }
  }

  // ---- messages ----------------------------------------------------------

  function banner(tone, text) {
    var b = $("banner");
    b.setAttribute("tone", tone);
    $("banner-text").textContent = text;
    b.hidden = false;
  }

  function fail(err) {
    if (err && err.code === "ip_allowlist") {
      // Shopify refused the app itself: the allowlist banner says what the operator must change.
      $("notice-text").textContent = err.message;
      $("notice").hidden = false;
      return;
    }
    banner("critical", err && err.message ? err.message : "Something went wrong. Try again.");
  }

  // toast confirms an action: App Bridge's toast in the admin, the banner elsewhere.
  function toast(text) {
    var bridge = window.shopify;
    if (bridge && bridge.toast && typeof bridge.toast.show === "function") bridge.toast.show(text);
    else banner("success", text);
  }

  $("banner").addEventListener("dismiss", function () { $("banner").hidden = true; });

  function showNotices(list) {
    var n = $("notice");
    var notice = (list || []).filter(function (x) { return x.code === "ip_allowlist"; })[0];
    n.hidden = !notice;
    if (notice) {
      $("notice-text").textContent = notice.message + " (" + notice.jobs + (notice.jobs === 1 ? " image waits.)" : " images wait.)");
    }
  }

  // ---- settings ----------------------------------------------------------

  var settings = null;
  var templatesLoadedFor = null; // the contact email templates were loaded for
  var FIELDS = {
    enabled: "f-enabled", "rtb.contactEmail": "f-email", "rtb.contactApiKey": "f-contact-key",
    "rtb.developerApiKey": "f-developer-key", templateId: "f-template", imageScope: "f-scope",
    writeMode: "f-mode", deliveryHours: "f-hours", monthlyBudget: "f-budget",
    publish: "f-publish", reviewReminderDays: "f-review-days",
    "filters.productTypes": "f-types", "filters.vendors": "f-vendors",
    "filters.tagsInclude": "f-tags-in", "filters.tagsExclude": "f-tags-out"
  };

  var list = function (id) {
    return String($(id).value || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  };

  function showSettings(s) {
    settings = s;
    $("f-enabled").checked = !!s.enabled;
    $("f-email").value = s.rtb.contactEmail || "";
    $("f-contact-key").value = "";
    $("f-developer-key").value = "";
    $("f-contact-key").placeholder = s.rtb.contactApiKey || "Not set";
    $("f-developer-key").placeholder = s.rtb.developerApiKey || "Not set";
    setTemplateOption(s.templateId, s.templateName);
    $("f-scope").value = s.imageScope;
    $("f-mode").value = s.writeMode;
    $("f-hours").value = String(s.deliveryHours);
    $("f-budget").value = s.monthlyBudget || "";
    $("f-publish").value = s.publish || "auto";
    $("f-review-days").value = String(s.reviewReminderDays || 7);
    $("f-types").value = s.filters.productTypes.join(", ");
    $("f-vendors").value = s.filters.vendors.join(", ");
    $("f-tags-in").value = s.filters.tagsInclude.join(", ");
    $("f-tags-out").value = s.filters.tagsExclude.join(", ");
    showStatus(s);
  }

  function showStatus(s) {
    var ready = $("ready");
    ready.dataset.ready = s.ready ? "yes" : "no";
    ready.textContent = s.ready
      ? "Processing is on" + (s.templateName ? " with the template " + s.templateName : "") + "."
      : s.readyMessage || "Processing is off.";
    var spent = "Spent this month: " + (s.spentThisMonth || "0.00");
    spent += s.monthlyBudget ? " of a " + s.monthlyBudget + " budget." : " (no budget limit).";
    if (s.templatePrice) spent += " Each image costs " + s.templatePrice + ".";
    $("spend").textContent = spent;
  }

  function option(value, text) { return el("s-option", { value: value }, text); }

  // setTemplateOption makes sure the select holds (and selects) id, even before the template
  // list loaded.
  function setTemplateOption(id, name) {
    var sel = $("f-template");
    if (id && !sel.querySelector("s-option[value='" + CSS.escape(id) + "']")) {
      sel.appendChild(option(id, name ? name + " (" + id + ")" : id));
    }
    sel.value = id || "";
  }

  async function loadTemplates() {
    if (!settings || !settings.rtb.contactEmail || !settings.rtb.contactApiKey) return;
    if (templatesLoadedFor === settings.rtb.contactEmail) return;
    try {
      var data = await api("GET", "/api/templates");
      var sel = $("f-template");
      sel.querySelectorAll("s-option").forEach(function (o) { if (o.getAttribute("value")) o.remove(); });
      data.templates.forEach(function (t) { sel.appendChild(option(t.id, t.name + " — " + t.price + " per image")); });
      setTemplateOption(settings.templateId, settings.templateName);
      templatesLoadedFor = settings.rtb.contactEmail;
      sel.setAttribute("details", "Each image is billed at the template's price.");
    } catch (err) {
      fail(err);
    }
  }

  function clearFieldErrors() {
    Object.keys(FIELDS).forEach(function (k) { $(FIELDS[k]).error = ""; });
  }

  // showFieldErrors puts each message on its field and focuses the first; it returns the messages
  // that have no field on the page.
  function showFieldErrors(fields) {
    var rest = [];
    var first = null;
    Object.keys(fields).forEach(function (key) {
      var f = FIELDS[key] && $(FIELDS[key]);
      if (!f) {
        rest.push(key + " " + fields[key]);
        return;
      }
      f.error = fields[key];
      first = first || f;
    });
    if (first) first.focus();
    return rest;
  }

  function formBody() {
    var key = function (id, masked) { return String($(id).value || "").trim() || masked || ""; };
    return {
      enabled: !!$("f-enabled").checked,
      rtb: {
        contactEmail: String($("f-email").value || "").trim(),
        contactApiKey: key("f-contact-key", settings && settings.rtb.contactApiKey),
        developerApiKey: key("f-developer-key", settings && settings.rtb.developerApiKey)
      },
      templateId: $("f-template").value || "",
      imageScope: $("f-scope").value,
      writeMode: $("f-mode").value,
      deliveryHours: parseInt($("f-hours").value, 10) || 0,
      monthlyBudget: String($("f-budget").value || "").trim(),
      publish: $("f-publish").value || "auto",
      reviewReminderDays: parseInt($("f-review-days").value, 10) || 0,
      filters: { productTypes: list("f-types"), vendors: list("f-vendors"),
        tagsInclude: list("f-tags-in"), tagsExclude: list("f-tags-out") }
    };
  }

  // The form carries data-save-bar: App Bridge shows its save bar while the form has unsaved
  // changes and submits or resets the form from it.
  $("settings").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var save = $("save");
    save.loading = true;
    save.disabled = true;
    clearFieldErrors();
    try {
      showSettings(await api("PUT", "/api/settings", formBody()));
      $("banner").hidden = true; // whatever it said about the last attempt no longer holds
      toast("Settings saved");
      loadTemplates();
      document.dispatchEvent(new Event("rtb:settings-saved")); // what a backfill would cost may have changed
    } catch (err) {
      if (err.status === 422 && err.fields) {
        var rest = showFieldErrors(err.fields);
        banner("critical", rest.length ? err.message : "Some settings need attention; see the messages next to them.");
      } else {
        fail(err);
      }
    } finally {
      save.loading = false;
      save.disabled = false;
    }
  });
  // Discard: the form resets its fields to their initial values; show the saved settings again.
  $("settings").addEventListener("reset", function () {
    setTimeout(function () { if (settings) showSettings(settings); clearFieldErrors(); }, 0);
  });

  // ---- jobs --------------------------------------------------------------

  // pages holds the cursor of every page up to the one shown: the API pages forward only.
  var jobs = { pages: [""], next: "", timer: null };

  function stateLabel(s) { return s.replace(/_/g, " "); }

  function safeURL(u) {
    if (!u) return ""; // "" would resolve to this page's own address
    try {
      var parsed = new URL(u, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "";
    } catch (e) {
      return "";
    }
  }

  // adminURL is where the product opens in the Shopify admin: App Bridge resolves shopify://admin
  // inside the admin; elsewhere the admin's own address for the store.
  function adminURL(productId) {
    var id = productId.replace("gid://shopify/Product/", "");
    var bridge = window.shopify;
    if (bridge && typeof bridge.idToken === "function") return "shopify://admin/products/" + id;
    var store = (tokens.shop || "").replace(/\.myshopify\.com$/, "");
    return "https://admin.shopify.com/store/" + encodeURIComponent(store) + "/products/" + encodeURIComponent(id);
  }

  function cell(row, child) {
    var c = el("s-table-cell");
    if (typeof child === "string") c.textContent = child;
    else if (child) c.appendChild(child);
    row.appendChild(c);
    return c;
  }

  function thumb(url, alt) {
    var src = safeURL(url);
    if (!src) return el("span", { "class": "no-thumb", role: "img", "aria-label": alt + " (none yet)" }, "—");
    return el("s-thumbnail", { src: src, alt: alt, size: "small" });
  }

  function jobRow(j) {
    var tr = el("s-table-row");
    tr.dataset.id = j.id;
    tr.dataset.state = j.state;
    var title = j.productTitle || j.productId.replace("gid://shopify/Product/", "Product ");
    var link = el("s-link", { href: adminURL(j.productId), target: "_top" }, title);
    cell(tr, link).className = "product";
    var pair = el("div", { "class": "pair" });
    pair.appendChild(thumb(j.originalUrl, "Before: " + title));
    pair.appendChild(thumb(j.processedUrl, "After: " + title));
    cell(tr, pair).className = "thumbs";
    var label = j.revertRequested ? "reverting" : stateLabel(j.state);
    var badge = el("s-badge", { tone: TONES[j.state] || "info" }, label);
    cell(tr, badge).className = "state";
    cell(tr, String(j.attempts));
    cell(tr, j.error || "").className = "error";
    var when = new Date(j.updatedAt);
    cell(tr, isNaN(when) ? j.updatedAt : when.toLocaleString()).title = j.updatedAt;
    var actions = el("div", { "class": "row-actions" });
    cell(tr, actions);
    if (j.canRetry) actions.appendChild(action(j.uncertain ? "Resubmit" : "Retry", title, j, "retry"));
    if (j.canRevert) actions.appendChild(action("Revert", title, j, "revert"));
    rowHooks.forEach(function (fn) { fn(j, tr, actions, title); });
    tr.dataset.busy = ACTIVE[j.state] || j.revertRequested ? "1" : "";
    return tr;
  }

  // rowHooks add to a job's row (review.js: the review controls of a held image).
  var rowHooks = [];

  function action(text, title, j, what) {
    var b = el("s-button", { "accessibility-label": text + " " + title }, text);
    b.addEventListener("click", function () { act(b, j, what); });
    return b;
  }

  async function act(btn, j, what) {
    if (what === "retry" && j.uncertain &&
      !window.confirm("Remove The Background may already have this image. Resubmitting it may bill it again. Resubmit?")) {
      return;
    }
    btn.loading = true;
    try {
      await api("POST", "/api/jobs/" + encodeURIComponent(j.id) + "/" + what);
      toast(what === "revert" ? "Restoring the original image" : "The image is queued again");
      await refreshRow(j.id);
    } catch (err) {
      fail(err);
      btn.loading = false;
    }
  }

  async function refreshRow(id) {
    var j = await api("GET", "/api/jobs/" + encodeURIComponent(id));
    var old = document.querySelector("#jobs-body s-table-row[data-id='" + CSS.escape(id) + "']");
    var place = focusPlace();
    if (old) old.replaceWith(jobRow(j));
    restoreFocus(place);
    scheduleJobs();
  }

  // The table is drawn again every few seconds while images are on their way: a keyboard or
  // screen-reader user keeps their place, the control they were on, in the row drawn anew.
  var CONTROLS = "s-button, s-link, s-checkbox, button, a[href], input, select";
  function focusPlace() {
    var a = document.activeElement;
    var row = a && a.closest && a.closest("#jobs-body s-table-row[data-id]");
    if (!row) return null;
    return { id: row.dataset.id, index: Array.prototype.indexOf.call(row.querySelectorAll(CONTROLS), a) };
  }
  function restoreFocus(place) {
    if (!place || place.index < 0) return;
    var row = document.querySelector("#jobs-body s-table-row[data-id='" + CSS.escape(place.id) + "']");
    var c = row && row.querySelectorAll(CONTROLS)[place.index];
    if (c && document.activeElement !== c) c.focus();
  }

  function jobsQuery(cursor) {
    var q = new URLSearchParams();
    if ($("jobs-state").value) q.set("state", $("jobs-state").value);
    q.set("limit", String(PAGE));
    if (cursor) q.set("cursor", cursor);
    return "/api/jobs?" + q.toString();
  }

  // loadJobs shows the page whose cursor is last in jobs.pages.
  async function loadJobs() {
    var table = $("jobs");
    table.loading = true;
    try {
      var data = await api("GET", jobsQuery(jobs.pages[jobs.pages.length - 1]));
      var rows = document.createDocumentFragment();
      data.jobs.forEach(function (j) { rows.appendChild(jobRow(j)); });
      var place = focusPlace();
      $("jobs-body").replaceChildren(rows);
      restoreFocus(place);
      jobs.next = data.nextCursor || "";
      table.paginate = jobs.pages.length > 1 || !!jobs.next;
      table.hasNextPage = !!jobs.next;
      table.hasPreviousPage = jobs.pages.length > 1;
      $("jobs-empty").hidden = data.jobs.length > 0 || jobs.pages.length > 1;
      showNotices(data.notices);
      document.dispatchEvent(new CustomEvent("rtb:jobs", { detail: data }));
    } catch (err) {
      fail(err);
    }
    table.loading = false;
    scheduleJobs();
  }

  // scheduleJobs refreshes every 5 s while an image on screen is on its way, every 30 s otherwise
  // so new products show up.
  function scheduleJobs() {
    clearTimeout(jobs.timer);
    var busy = !!document.querySelector("#jobs-body s-table-row[data-busy='1']");
    jobs.timer = setTimeout(function () {
      if (document.hidden) return scheduleJobs();
      loadJobs();
    }, busy ? 5000 : 30000);
  }

  STATES.forEach(function (s) { $("jobs-state").appendChild(option(s, stateLabel(s))); });
  $("jobs-state").addEventListener("change", function () { jobs.pages = [""]; loadJobs(); });
  $("jobs-refresh").addEventListener("click", function () { loadJobs(); });
  $("jobs").addEventListener("nextpage", function () {
    if (!jobs.next) return;
    jobs.pages.push(jobs.next);
    loadJobs();
  });
  $("jobs").addEventListener("previouspage", function () {
    if (jobs.pages.length < 2) return;
    jobs.pages.pop();
    loadJobs();
  });

  // ---- reconciliation ----------------------------------------------------

  // The regular check for images whose webhooks never came: when it last
  // ran and what it caught.
  async function loadReconciliation() {
    try {
      var r = (await api("GET", "/api/reconciliation")).reconciliation;
      if (!r.lastRunAt) return;
      var when = new Date(r.lastRunAt);
      $("reconcile-status").textContent = "Last check for images Shopify did not announce: " +
        (isNaN(when) ? r.lastRunAt : when.toLocaleString()) + ", found " + r.lastCaught +
        " (" + r.caughtTotal + " in all).";
    } catch (err) {
      fail(err);
    }
  }

  // ---- start -------------------------------------------------------------

  // The sections stay hidden until the first answers are in, then appear together: nothing on
  // screen moves when the data arrives (no layout shift).
  function reveal() {
    document.querySelectorAll(".wait").forEach(function (s) { s.hidden = false; });
    document.body.dataset.loaded = "1";
    var target = window.location.hash && document.getElementById(window.location.hash.slice(1));
    if (target) target.scrollIntoView();
  }

  async function start() {
    var jobsLoaded = loadJobs();
    try {
      showSettings(await api("GET", "/api/settings"));
    } catch (err) {
      fail(err);
      $("ready").textContent = "The settings could not be loaded.";
    }
    await jobsLoaded;
    reveal();
    loadTemplates();
    loadReconciliation();
    document.dispatchEvent(new Event("rtb:loaded"));
  }

  // What the page's other parts (catalogue.js) use.
  window.rtbAdmin = { api: api, fail: fail, toast: toast, el: el, loadJobs: loadJobs, rowHooks: rowHooks,
    thumb: thumb, safeURL: safeURL };

  start();
})();
