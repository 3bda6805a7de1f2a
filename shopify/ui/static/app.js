// The embedded admin: settings and the jobs dashboard, in plain JavaScript.
// Everything shown from the API goes through textContent; no markup is ever
// built from strings.
// App Bridge is used when it loaded; without it (direct visit, no network)
// the page uses the launch URL's id_token, then the demo's token endpoint.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var ACTIVE = { queued: 1, submitting: 1, awaiting_rtb: 1, writing_back: 1, retrying: 1 };
  var STATES = ["queued", "submitting", "awaiting_rtb", "writing_back", "done", "retrying",
    "failed", "cancelled", "skipped", "over_budget", "reverted"];
  var PAGE = 50;
  var $ = function (id) { return document.getElementById(id); };

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
        var res = await fetch("/dev/session-token?shop=" + encodeURIComponent(this.shop),
          { headers: { Accept: "application/json" }, cache: "no-store" }).catch(function () { return null; });
        if (res && res.ok) {
          var body = await res.json();
          if (body && body.token) return this.remember(body.token);
        }
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

  // ---- banner ------------------------------------------------------------

  function banner(tone, text) {
    var b = $("banner");
    b.className = "banner banner-" + tone;
    b.setAttribute("role", tone === "critical" ? "alert" : "status");
    $("banner-text").textContent = text;
    b.hidden = false;
  }

  function fail(err) {
    banner("critical", err && err.message ? err.message : "Something went wrong. Try again.");
  }

  $("banner-close").addEventListener("click", function () { $("banner").hidden = true; });

  // ---- settings ----------------------------------------------------------

  var settings = null;
  var templatesLoadedFor = null; // the contact email templates were loaded for

  var list = function (id) {
    return $(id).value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  };

  function showSettings(s) {
    settings = s;
    $("f-enabled").checked = !!s.enabled;
    $("f-email").value = s.rtb.contactEmail || "";
    ["f-contact-key", "f-developer-key"].forEach(function (id) { $(id).value = ""; });
    $("f-contact-key").placeholder = s.rtb.contactApiKey || "Not set";
    $("f-developer-key").placeholder = s.rtb.developerApiKey || "Not set";
    setTemplateOption(s.templateId, s.templateName);
    $("f-scope").value = s.imageScope;
    $("f-mode").value = s.writeMode;
    $("f-hours").value = s.deliveryHours;
    $("f-budget").value = s.monthlyBudget || "";
    $("f-types").value = s.filters.productTypes.join(", ");
    $("f-vendors").value = s.filters.vendors.join(", ");
    $("f-tags-in").value = s.filters.tagsInclude.join(", ");
    $("f-tags-out").value = s.filters.tagsExclude.join(", ");
    showStatus(s);
  }

  function showStatus(s) {
    var ready = $("ready");
    ready.className = "ready " + (s.ready ? "ready-yes" : "ready-no");
    ready.textContent = s.ready
      ? "Processing is on" + (s.templateName ? " with the template " + s.templateName : "") + "."
      : s.readyMessage || "Processing is off.";
    var spent = "Spent this month: " + (s.spentThisMonth || "0.00");
    spent += s.monthlyBudget ? " of a " + s.monthlyBudget + " budget." : " (no budget limit).";
    if (s.templatePrice) spent += " Each image costs " + s.templatePrice + ".";
    $("spend").textContent = spent;
  }

  // setTemplateOption makes sure the select holds (and selects) id, even
  // before the template list loaded.
  function setTemplateOption(id, name) {
    var sel = $("f-template");
    if (id && !Array.prototype.some.call(sel.options, function (o) { return o.value === id; })) {
      sel.appendChild(new Option(name ? name + " (" + id + ")" : id, id));
    }
    sel.value = id || "";
  }

  async function loadTemplates() {
    if (!settings || !settings.rtb.contactEmail || !settings.rtb.contactApiKey) return;
    if (templatesLoadedFor === settings.rtb.contactEmail) return;
    try {
      var data = await api("GET", "/api/templates");
      var sel = $("f-template");
      var current = settings.templateId;
      while (sel.options.length > 1) sel.remove(1);
      data.templates.forEach(function (t) {
        sel.appendChild(new Option(t.name + " — " + t.price + " per image", t.id));
      });
      setTemplateOption(current, settings.templateName);
      templatesLoadedFor = settings.rtb.contactEmail;
      $("hint-template").textContent = "Each image is billed at the template's price.";
    } catch (err) {
      fail(err);
    }
  }

  function clearFieldErrors() {
    document.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    document.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  // showFieldErrors puts each message next to its field; it returns the
  // messages that have no field on the page.
  function showFieldErrors(fields) {
    var rest = [];
    var first = null;
    Object.keys(fields).forEach(function (key) {
      var p = document.getElementById("err-" + key);
      if (!p) {
        rest.push(key + " " + fields[key]);
        return;
      }
      p.textContent = fields[key];
      var input = document.querySelector("[aria-describedby~='err-" + key + "']");
      if (input) {
        input.setAttribute("aria-invalid", "true");
        first = first || input;
      }
    });
    if (first) first.focus();
    return rest;
  }

  function formBody() {
    var key = function (id, masked) { return $(id).value.trim() || masked || ""; };
    return {
      enabled: $("f-enabled").checked,
      rtb: {
        contactEmail: $("f-email").value.trim(),
        contactApiKey: key("f-contact-key", settings && settings.rtb.contactApiKey),
        developerApiKey: key("f-developer-key", settings && settings.rtb.developerApiKey)
      },
      templateId: $("f-template").value,
      imageScope: $("f-scope").value,
      writeMode: $("f-mode").value,
      deliveryHours: parseInt($("f-hours").value, 10) || 0,
      monthlyBudget: $("f-budget").value.trim(),
      filters: { productTypes: list("f-types"), vendors: list("f-vendors"),
        tagsInclude: list("f-tags-in"), tagsExclude: list("f-tags-out") }
    };
  }

  $("settings").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var save = $("save");
    save.disabled = true;
    save.textContent = "Saving…";
    clearFieldErrors();
    try {
      showSettings(await api("PUT", "/api/settings", formBody()));
      banner("success", "Settings saved.");
      loadTemplates();
    } catch (err) {
      if (err.status === 422 && err.fields) {
        var rest = showFieldErrors(err.fields);
        banner("critical", rest.length ? err.message : "Some settings need attention; see the messages next to them.");
      } else {
        fail(err);
      }
    } finally {
      save.disabled = false;
      save.textContent = "Save";
    }
  });

  // ---- jobs --------------------------------------------------------------

  var jobs = { cursor: "", shown: 0, timer: null };

  function stateLabel(s) { return s.replace(/_/g, " "); }

  function safeURL(u) {
    try {
      var parsed = new URL(u, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "";
    } catch (e) {
      return "";
    }
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function button(text, onClick, cls) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  function jobRow(j) {
    var tr = document.createElement("tr");
    tr.dataset.id = j.id;
    tr.dataset.state = j.state;
    var title = j.productTitle || j.productId.replace("gid://shopify/Product/", "Product ");
    cell(tr, title, "product");
    var img = cell(tr, "", "thumb");
    var src = safeURL(j.processedUrl || j.originalUrl);
    if (src) {
      var el = document.createElement("img");
      el.src = src;
      el.alt = (j.processedUrl ? "Edited image of " : "Original image of ") + title;
      el.loading = "lazy";
      el.width = 48;
      el.height = 48;
      img.appendChild(el);
    }
    var st = cell(tr, "", "state");
    var badge = document.createElement("span");
    badge.className = "badge badge-" + j.state;
    badge.textContent = j.revertRequested ? "reverting" : stateLabel(j.state);
    st.appendChild(badge);
    cell(tr, String(j.attempts), "num");
    cell(tr, j.error || "", "error");
    var when = new Date(j.updatedAt);
    var upd = cell(tr, isNaN(when) ? j.updatedAt : when.toLocaleString(), "when");
    upd.title = j.updatedAt;
    var actions = document.createElement("div");
    actions.className = "row-actions";
    cell(tr, "", "action-cell").appendChild(actions);
    if (j.canRetry) {
      actions.appendChild(button(j.uncertain ? "Resubmit" : "Retry", function (ev) {
        act(ev.currentTarget, j, "retry");
      }));
    }
    if (j.canRevert) {
      actions.appendChild(button("Revert", function (ev) { act(ev.currentTarget, j, "revert"); }));
    }
    return tr;
  }

  function confirmResubmit() {
    var text = "Remove The Background may already have this image. Resubmitting it may bill it again. Resubmit?";
    var dlg = $("confirm");
    if (typeof dlg.showModal !== "function") return Promise.resolve(window.confirm(text));
    $("confirm-text").textContent = text;
    return new Promise(function (resolve) {
      dlg.addEventListener("close", function onClose() {
        dlg.removeEventListener("close", onClose);
        resolve(dlg.returnValue === "ok");
      });
      dlg.returnValue = "";
      dlg.showModal();
    });
  }

  async function act(btn, j, action) {
    if (action === "retry" && j.uncertain && !(await confirmResubmit())) return;
    btn.disabled = true;
    try {
      await api("POST", "/api/jobs/" + encodeURIComponent(j.id) + "/" + action);
      banner("success", action === "revert" ? "Restoring the original image." : "The image is queued again.");
      await refreshRow(j.id);
    } catch (err) {
      fail(err);
      btn.disabled = false;
    }
  }

  async function refreshRow(id) {
    var j = await api("GET", "/api/jobs/" + encodeURIComponent(id));
    var old = document.querySelector("#jobs-body tr[data-id='" + CSS.escape(id) + "']");
    if (old) old.replaceWith(jobRow(j));
    scheduleJobs();
  }

  function jobsQuery(cursor, limit) {
    var q = new URLSearchParams();
    if ($("jobs-state").value) q.set("state", $("jobs-state").value);
    q.set("limit", String(limit));
    if (cursor) q.set("cursor", cursor);
    return "/api/jobs?" + q.toString();
  }

  // loadJobs replaces the list (keeping as many rows as were shown) or,
  // with more, appends the next page.
  async function loadJobs(more) {
    var limit = more ? PAGE : Math.min(200, Math.max(PAGE, jobs.shown));
    try {
      var data = await api("GET", jobsQuery(more ? jobs.cursor : "", limit));
      var body = $("jobs-body");
      if (!more) {
        body.textContent = "";
        jobs.shown = 0;
      }
      data.jobs.forEach(function (j) { body.appendChild(jobRow(j)); });
      jobs.shown += data.jobs.length;
      jobs.cursor = data.nextCursor || "";
      $("jobs-more").hidden = !jobs.cursor;
      $("jobs-empty").hidden = jobs.shown > 0;
    } catch (err) {
      fail(err);
    }
    scheduleJobs();
  }

  // scheduleJobs refreshes every 5 s while an image is on its way, and
  // every 30 s otherwise so new products show up.
  function scheduleJobs() {
    clearTimeout(jobs.timer);
    var busy = Array.prototype.some.call(document.querySelectorAll("#jobs-body tr"), function (tr) {
      return ACTIVE[tr.dataset.state] || tr.querySelector(".badge").textContent === "reverting";
    });
    jobs.timer = setTimeout(function () {
      if (document.hidden) return scheduleJobs();
      loadJobs(false);
    }, busy ? 5000 : 30000);
  }

  STATES.forEach(function (s) { $("jobs-state").appendChild(new Option(stateLabel(s), s)); });
  $("jobs-state").addEventListener("change", function () { jobs.shown = 0; loadJobs(false); });
  $("jobs-refresh").addEventListener("click", function () { loadJobs(false); });
  $("jobs-more").addEventListener("click", function () { loadJobs(true); });

  // ---- backfill ----------------------------------------------------------

  var backfillTimer = null;
  var backfillRunning = false;

  function showBackfill(b) {
    var text;
    var counts = b.productsSeen + " products looked at, " + b.imagesQueued + " images queued, " +
      b.imagesSkipped + " skipped";
    if (b.state === "running") text = "Running: " + counts + ".";
    else if (b.state === "failed") text = "Stopped with an error: " + (b.error || "unknown") + " (" + counts + ").";
    else text = "Finished: " + counts + ".";
    $("backfill-status").textContent = text;
    $("backfill-progress").hidden = b.state !== "running";
    $("backfill-start").disabled = b.state === "running";
  }

  async function loadBackfill() {
    clearTimeout(backfillTimer);
    try {
      var data = await api("GET", "/api/backfill");
      showBackfill(data.backfill);
      var running = data.backfill.state === "running";
      if (running) backfillTimer = setTimeout(loadBackfill, 2000);
      if (backfillRunning && !running) loadJobs(false); // the last images it queued
      backfillRunning = running;
    } catch (err) {
      if (err.status !== 404) fail(err);
    }
  }

  $("backfill-start").addEventListener("click", async function () {
    var btn = $("backfill-start");
    btn.disabled = true;
    try {
      var data = await api("POST", "/api/backfill");
      showBackfill(data.backfill);
      backfillRunning = data.backfill.state === "running";
      banner("success", "Processing the existing catalogue.");
      backfillTimer = setTimeout(loadBackfill, 2000);
      loadJobs(false);
    } catch (err) {
      fail(err);
      btn.disabled = false;
    }
  });

  // ---- start -------------------------------------------------------------

  async function start() {
    try {
      showSettings(await api("GET", "/api/settings"));
    } catch (err) {
      fail(err);
      $("ready").textContent = "The settings could not be loaded.";
      return;
    }
    loadTemplates();
    loadJobs(false);
    loadBackfill();
  }

  document.documentElement.classList.add("js");
  start();
})();
