package ui_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	scriptSrcRE = regexp.MustCompile(`<script[^>]*\ssrc="([^"]+)"`)
	stylesRE    = regexp.MustCompile(`<link[^>]*\shref="([^"]+)"`)
	tagRE       = regexp.MustCompile(`<(s-[a-z-]+)([^>]*)>`)
	labelRE     = regexp.MustCompile(`\slabel="([^"]+)"`)
)

func srcs(page string, re *regexp.Regexp) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// In production the page loads Shopify's App Bridge and Polaris and nothing else but its own
// script and stylesheet; the shim is neither linked nor served.
func TestProductionPageLoadsOnlyShopifysScripts(t *testing.T) {
	app := newApp(nil)
	_, page := get(t, app, "/")
	scripts := srcs(page, scriptSrcRE)
	if len(scripts) != 3 || scripts[0] != "https://cdn.shopify.com/shopifycloud/app-bridge.js" ||
		scripts[1] != "https://cdn.shopify.com/shopifycloud/polaris.js" || !strings.HasPrefix(scripts[2], "/ui/app.js?v=") {
		t.Fatalf("scripts %v, want app-bridge.js, polaris.js and the page's own", scripts)
	}
	if styles := srcs(page, stylesRE); len(styles) != 1 || !strings.HasPrefix(styles[0], "/ui/app.css?v=") {
		t.Fatalf("stylesheets %v, want only the page's own", styles)
	}
	for _, path := range []string{"/ui/shim.js", "/ui/shim.css"} {
		if resp, _ := get(t, app, path); resp.StatusCode != 404 {
			t.Errorf("%s: status %d in production, want 404", path, resp.StatusCode)
		}
	}
}

func TestShimOnlyWhenAsked(t *testing.T) {
	app := newAppWith(nil, true)
	_, page := get(t, app, "/")
	scripts := srcs(page, scriptSrcRE)
	// The shim comes right after polaris.js, so it sees whether Polaris defined its elements.
	if len(scripts) != 4 || !strings.HasPrefix(scripts[2], "/ui/shim.js?v=") {
		t.Fatalf("scripts %v, want the shim after polaris.js", scripts)
	}
	for _, path := range []string{scripts[2], srcs(page, stylesRE)[0]} {
		if resp, body := get(t, app, path); resp.StatusCode != 200 || !strings.Contains(body, "s-") {
			t.Errorf("%s: status %d", path, resp.StatusCode)
		}
	}
}

// The page is built from Polaris web components, and every control carries its label.
func TestPageIsBuiltFromPolarisComponents(t *testing.T) {
	_, page := get(t, newApp(nil), "/")
	_, js := get(t, newApp(nil), "/ui/app.js")
	var used []string
	for _, m := range tagRE.FindAllStringSubmatch(page, -1) {
		used = append(used, m[1])
		switch m[1] {
		case "s-text-field", "s-email-field", "s-password-field", "s-number-field", "s-select", "s-checkbox":
			if l := labelRE.FindStringSubmatch(m[2]); l == nil || strings.TrimSpace(l[1]) == "" {
				t.Errorf("<%s%s> has no label", m[1], m[2])
			}
		}
	}
	for _, want := range []string{"s-page", "s-section", "s-text-field", "s-email-field", "s-password-field",
		"s-select", "s-checkbox", "s-button", "s-banner", "s-table", "s-app-nav", "s-link"} {
		if !slices.Contains(used, want) {
			t.Errorf("the page does not use <%s>", want)
		}
	}
	// Rows, badges and thumbnails are made by the script from the API's data.
	for _, want := range []string{`"s-table-row"`, `"s-badge"`, `"s-thumbnail"`, `"s-link"`, "toast.show"} {
		if !strings.Contains(js, want) && !strings.Contains(js, strings.Trim(want, `"`)) {
			t.Errorf("app.js does not use %s", want)
		}
	}
	// Plain HTML controls would bypass Polaris (and its accessibility).
	for _, tag := range []string{"<input", "<select", "<button", "<table"} {
		if strings.Contains(page, tag) {
			t.Errorf("the page uses %s instead of a Polaris component", tag)
		}
	}
}

// Shopify's Web Vitals budget leaves little for the page itself: its own HTML, CSS and JS stay
// under 60 KB.
func TestPageWeight(t *testing.T) {
	app := newApp(nil)
	_, page := get(t, app, "/")
	_, js := get(t, app, "/ui/app.js")
	_, css := get(t, app, "/ui/app.css")
	total := len(page) + len(js) + len(css)
	t.Logf("page %d B + app.js %d B + app.css %d B = %d B", len(page), len(js), len(css), total)
	if total >= 60<<10 {
		t.Fatalf("the page's own HTML, CSS and JS weigh %d B, over 60 KB", total)
	}
}
