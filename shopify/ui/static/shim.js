// A stand-in for Shopify's polaris.js and the parts of App Bridge the page uses, served only in
// tests and the demo, where Shopify's CDN is out of reach. It defines each Polaris element the page
// uses just enough to render and operate it with native controls (labels, focus, keyboard, forms),
// and only when polaris.js did not define it. It is never sent to a merchant.
(function () {
  "use strict";
  if (window.customElements.get("s-page")) return; // the real Polaris loaded

  var uid = 0;
  var nextId = function (p) { uid += 1; return "shim-" + p + "-" + uid; };
  var make = function (tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // Base renders once the element's children are parsed (at DOMContentLoaded for the page's own
  // markup, at once for elements the script adds) and keeps properties set before that.
  class Base extends HTMLElement {
    connectedCallback() {
      if (this._rendered) return;
      var go = () => { if (!this._rendered) { this._rendered = true; this.render(); this.sync(); } };
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go);
      else go();
    }
    get s() { return this._s || (this._s = {}); }
    prop(name, v) { this.s[name] = v; if (this._rendered) this.sync(); }
    render() {}
    sync() {}
  }
  var props = function (cls, names) {
    names.forEach(function (n) {
      Object.defineProperty(cls.prototype, n, {
        get: function () { return this.getValue ? this.getValue(n) : this.s[n]; },
        set: function (v) { this.prop(n, v); },
        configurable: true
      });
    });
  };

  // Fields: a native input with its label, details and error message.
  class Field extends Base {
    inputType() { return "text"; }
    render() {
      var id = nextId("f");
      this.input = make("input", { id: id, type: this.inputType() });
      ["name", "autocomplete", "min", "max", "step", "placeholder"].forEach((a) => {
        if (this.hasAttribute(a)) this.input.setAttribute(a, this.getAttribute(a));
      });
      this.details = make("p", { id: id + "-d", "class": "shim-details" }, this.getAttribute("details") || "");
      this.err = make("p", { id: id + "-e", "class": "shim-error" });
      this.replaceChildren(make("label", { "for": id }, this.getAttribute("label") || ""), this.input, this.details, this.err);
    }
    sync() {
      var s = this.s;
      if ("value" in s) { this.input.value = s.value; delete s.value; }
      if ("placeholder" in s) this.input.placeholder = s.placeholder;
      this.input.disabled = !!s.disabled;
      this.err.textContent = s.error || "";
      this.input.toggleAttribute("aria-invalid", !!s.error);
      var by = [this.getAttribute("details") ? this.details.id : "", s.error ? this.err.id : ""].filter(Boolean);
      if (by.length) this.input.setAttribute("aria-describedby", by.join(" "));
      else this.input.removeAttribute("aria-describedby");
    }
    getValue(n) {
      if (n === "value") return this.input ? this.input.value : (this.s.value || "");
      return this.s[n];
    }
    focus() { if (this.input) this.input.focus(); }
  }
  props(Field, ["value", "error", "placeholder", "disabled"]);
  class EmailField extends Field { inputType() { return "email"; } }
  class PasswordField extends Field { inputType() { return "password"; } }
  class NumberField extends Field { inputType() { return "number"; } }

  class Checkbox extends Base {
    render() {
      var id = nextId("c");
      this.input = make("input", { id: id, type: "checkbox", name: this.getAttribute("name") || "" });
      this.replaceChildren(this.input, make("label", { "for": id }, this.getAttribute("label") || ""));
    }
    sync() { if ("checked" in this.s) { this.input.checked = !!this.s.checked; delete this.s.checked; } }
    getValue(n) { return n === "checked" ? (this.input ? this.input.checked : !!this.s.checked) : this.s[n]; }
    focus() { if (this.input) this.input.focus(); }
  }
  props(Checkbox, ["checked"]);

  // Select: a native select mirroring the s-option children, kept in step as they change.
  class Select extends Base {
    render() {
      var id = nextId("s");
      this.select = make("select", { id: id, name: this.getAttribute("name") || "" });
      this.details = make("p", { id: id + "-d", "class": "shim-details" });
      this.err = make("p", { id: id + "-e", "class": "shim-error" });
      this.select.setAttribute("aria-describedby", id + "-d " + id + "-e");
      this.prepend(make("label", { "for": id }, this.getAttribute("label") || ""), this.select, this.details, this.err);
      new MutationObserver(() => this.options()).observe(this, { childList: true, attributes: true, attributeFilter: ["details"] });
      this.options();
    }
    options() {
      var want = this.select.value || this.s.value;
      var opts = Array.prototype.filter.call(this.children, function (c) { return c.localName === "s-option"; });
      this.select.replaceChildren.apply(this.select, opts.map(function (o) {
        return new Option(o.textContent, o.getAttribute("value") || "");
      }));
      if (want !== undefined) this.select.value = want;
      this.details.textContent = this.getAttribute("details") || "";
    }
    sync() {
      if ("value" in this.s) { this.select.value = this.s.value; delete this.s.value; }
      this.err.textContent = this.s.error || "";
      this.select.toggleAttribute("aria-invalid", !!this.s.error);
    }
    getValue(n) { return n === "value" ? (this.select ? this.select.value : (this.s.value || "")) : this.s[n]; }
    focus() { if (this.select) this.select.focus(); }
  }
  props(Select, ["value", "error"]);

  // Button: a native button around the element's content; type=submit submits its form.
  class Button extends Base {
    render() {
      this.button = make("button", { type: this.getAttribute("type") === "submit" ? "submit" : "button" });
      if (this.hasAttribute("variant")) this.button.className = "shim-" + this.getAttribute("variant");
      if (this.hasAttribute("accessibility-label")) this.button.setAttribute("aria-label", this.getAttribute("accessibility-label"));
      this.button.append.apply(this.button, Array.prototype.slice.call(this.childNodes));
      this.replaceChildren(this.button);
    }
    sync() {
      this.button.disabled = !!(this.s.disabled || this.s.loading);
      this.button.toggleAttribute("aria-busy", !!this.s.loading);
    }
    focus() { if (this.button) this.button.focus(); }
  }
  props(Button, ["disabled", "loading"]);

  class Banner extends Base {
    render() {
      this.setAttribute("role", this.getAttribute("tone") === "critical" ? "alert" : "status");
      if (this.hasAttribute("heading")) this.prepend(make("strong", { "class": "shim-heading" }, this.getAttribute("heading")));
      if (this.hasAttribute("dismissible")) {
        var b = make("button", { type: "button", "class": "shim-dismiss", "aria-label": "Dismiss message" }, "×");
        b.addEventListener("click", () => { this.hidden = true; this.dispatchEvent(new Event("dismiss")); });
        this.append(b);
      }
    }
    static get observedAttributes() { return ["tone"]; }
    attributeChangedCallback() { if (this._rendered) this.setAttribute("role", this.getAttribute("tone") === "critical" ? "alert" : "status"); }
  }

  class Heading extends Base {
    render() {
      if (!this.hasAttribute("heading")) return;
      var id = nextId("h");
      this.prepend(make(this.localName === "s-page" ? "h1" : "h2", { id: id }, this.getAttribute("heading")));
      if (this.localName === "s-section") { this.setAttribute("role", "region"); this.setAttribute("aria-labelledby", id); }
    }
  }

  class Role extends Base {
    render() {
      var roles = { "s-table-header-row": "row", "s-table-row": "row", "s-table-header": "columnheader",
        "s-table-cell": "cell", "s-table-body": "rowgroup", "s-heading": "heading", "s-app-nav": "navigation" };
      this.setAttribute("role", roles[this.localName]);
      if (this.localName === "s-heading") this.setAttribute("aria-level", "3");
      if (this.localName === "s-app-nav") this.setAttribute("aria-label", "App sections");
    }
  }

  // Table: rows styled as a table (ARIA roles), and the Previous/Next pager of paginate.
  class Table extends Base {
    render() {
      this.setAttribute("role", "table");
      this.pager = make("div", { "class": "shim-pager", role: "group", "aria-label": "Pages" });
      this.prev = make("button", { type: "button", "aria-label": "Previous page" }, "‹ Previous");
      this.next = make("button", { type: "button", "aria-label": "Next page" }, "Next ›");
      this.prev.addEventListener("click", () => this.dispatchEvent(new Event("previouspage")));
      this.next.addEventListener("click", () => this.dispatchEvent(new Event("nextpage")));
      this.pager.append(this.prev, this.next);
      this.after(this.pager);
    }
    sync() {
      this.pager.hidden = !this.s.paginate;
      this.prev.disabled = !this.s.hasPreviousPage;
      this.next.disabled = !this.s.hasNextPage;
      this.toggleAttribute("aria-busy", !!this.s.loading);
    }
  }
  props(Table, ["paginate", "hasNextPage", "hasPreviousPage", "loading"]);

  class Thumbnail extends Base {
    render() {
      var px = { "small-200": 32, small: 40, base: 60, large: 80 }[this.getAttribute("size") || "base"] || 60;
      this.replaceChildren(make("img", { src: this.getAttribute("src") || "", alt: this.getAttribute("alt") || "",
        width: px, height: px, decoding: "async" }));
    }
  }

  class Link extends Base {
    render() {
      var a = make("a", { href: this.getAttribute("href") || "#" });
      if (this.hasAttribute("target")) a.target = this.getAttribute("target");
      a.append.apply(a, Array.prototype.slice.call(this.childNodes));
      this.replaceChildren(a);
    }
  }

  var defs = {
    "s-page": Heading, "s-section": Heading, "s-text-field": Field, "s-email-field": EmailField,
    "s-password-field": PasswordField, "s-number-field": NumberField, "s-checkbox": Checkbox,
    "s-select": Select, "s-button": Button, "s-banner": Banner, "s-table": Table, "s-thumbnail": Thumbnail,
    "s-link": Link, "s-table-header-row": Role, "s-table-header": Role, "s-table-body": Role,
    "s-table-row": Role, "s-table-cell": Role, "s-heading": Role, "s-app-nav": Role
  };
  Object.keys(defs).forEach(function (name) {
    if (!customElements.get(name)) customElements.define(name, class extends defs[name] {});
  });
  ["s-option", "s-badge", "s-paragraph"].forEach(function (name) {
    if (!customElements.get(name)) customElements.define(name, class extends HTMLElement {});
  });

  // App Bridge stand-ins: toasts, and the save bar of forms marked data-save-bar. No idToken:
  // the page must find its session token without App Bridge.
  var bridge = window.shopify = window.shopify || {};
  if (!bridge.toast) {
    bridge.toast = {
      show: function (text) {
        var t = document.querySelector(".shim-toast");
        if (!t) { t = make("div", { "class": "shim-toast", role: "status" }); document.body.append(t); }
        t.textContent = text;
        t.hidden = false;
        clearTimeout(t._timer);
        t._timer = setTimeout(function () { t.hidden = true; }, 5000);
      }
    };
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-save-bar]").forEach(function (form) {
      var bar = make("div", { "class": "shim-save-bar", role: "region", "aria-label": "Unsaved changes" });
      var discard = make("button", { type: "button" }, "Discard");
      var save = make("button", { type: "button", "class": "shim-primary" }, "Save");
      discard.addEventListener("click", function () { form.reset(); });
      save.addEventListener("click", function () { form.requestSubmit(); });
      bar.append(make("span", {}, "Unsaved changes"), discard, save);
      bar.hidden = true;
      document.body.prepend(bar);
      var show = function () { bar.hidden = false; };
      form.addEventListener("input", show);
      form.addEventListener("change", show);
      form.addEventListener("submit", function () { bar.hidden = true; });
      form.addEventListener("reset", function () { bar.hidden = true; });
    });
  });
})();
