package deploy

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"rtbshopify/config"
)

// The Shopify CLI's view of the app: deploy/ is the app root (`shopify app dev --path deploy`).
// Both files are decoded into the keys the CLI's schemas define; a key it does not know, a missing
// required one or a wrong value fails here rather than in a developer's terminal.

type cliApp struct {
	ClientID       string   `toml:"client_id"`
	Name           string   `toml:"name"`
	ApplicationURL string   `toml:"application_url"`
	Embedded       *bool    `toml:"embedded"`
	WebDirectories []string `toml:"web_directories"`
	Build          struct {
		AutomaticallyUpdateURLsOnDev *bool `toml:"automatically_update_urls_on_dev"`
	} `toml:"build"`
	AccessScopes struct {
		Scopes               string `toml:"scopes"`
		UseLegacyInstallFlow *bool  `toml:"use_legacy_install_flow"`
	} `toml:"access_scopes"`
	Auth struct {
		RedirectURLs []string `toml:"redirect_urls"`
	} `toml:"auth"`
	Webhooks struct {
		APIVersion    string `toml:"api_version"`
		Subscriptions []struct {
			Topics           []string `toml:"topics"`
			ComplianceTopics []string `toml:"compliance_topics"`
			URI              string   `toml:"uri"`
		} `toml:"subscriptions"`
	} `toml:"webhooks"`
	POS struct {
		Embedded *bool `toml:"embedded"`
	} `toml:"pos"`
}

type cliWeb struct {
	Name             string   `toml:"name"`
	Roles            []string `toml:"roles"`
	WebhooksPath     string   `toml:"webhooks_path"`
	AuthCallbackPath string   `toml:"auth_callback_path"`
	Commands         struct {
		Dev   string `toml:"dev"`
		Build string `toml:"build"`
	} `toml:"commands"`
}

func decodeStrict(t *testing.T, rel string, v any) {
	t.Helper()
	md, err := toml.DecodeFile(filepath.Join(repoRoot, rel), v)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		t.Errorf("%s has keys the Shopify CLI does not define: %v", rel, extra)
	}
}

func TestShopifyCLIFindsAndAcceptsTheAppConfiguration(t *testing.T) {
	var app cliApp
	decodeStrict(t, "deploy/shopify.app.toml", &app)

	if app.ClientID == "" || app.Name == "" {
		t.Errorf("client_id %q and name %q are required", app.ClientID, app.Name)
	}
	u, err := url.Parse(app.ApplicationURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		t.Errorf("application_url %q is not an https URL", app.ApplicationURL)
	}
	if app.Embedded == nil || !*app.Embedded {
		t.Error("embedded must be true: the admin page runs inside Shopify's admin")
	}
	if p := app.Build.AutomaticallyUpdateURLsOnDev; p == nil || !*p {
		t.Error("[build] automatically_update_urls_on_dev must be true so `shopify app dev` points the URLs at its tunnel")
	}
	if app.AccessScopes.Scopes != config.DefaultScopes {
		t.Errorf("access_scopes.scopes %q, the app asks for %q", app.AccessScopes.Scopes, config.DefaultScopes)
	}
	if p := app.AccessScopes.UseLegacyInstallFlow; p == nil || *p {
		t.Error("[access_scopes] use_legacy_install_flow must be set to false (Shopify-managed installation)")
	}
	if len(app.Auth.RedirectURLs) == 0 {
		t.Error("[auth] redirect_urls is empty")
	}
	for _, r := range app.Auth.RedirectURLs {
		ru, err := url.Parse(r)
		if err != nil || ru.Host != u.Host || ru.Path != "/auth/callback" {
			t.Errorf("redirect URL %q is not %s/auth/callback", r, app.ApplicationURL)
		}
	}
	if app.Webhooks.APIVersion != config.DefaultAPIVersion {
		t.Errorf("[webhooks] api_version %q, the app pins %q", app.Webhooks.APIVersion, config.DefaultAPIVersion)
	}
	var topics, compliance []string
	for _, s := range app.Webhooks.Subscriptions {
		if s.URI != "/webhooks" || len(s.Topics)+len(s.ComplianceTopics) == 0 {
			t.Errorf("subscription %+v: needs topics or compliance_topics and uri /webhooks", s)
		}
		topics = append(topics, s.Topics...)
		compliance = append(compliance, s.ComplianceTopics...)
	}
	for _, want := range []string{"products/create", "products/update", "app/uninstalled"} {
		if !slices.Contains(topics, want) {
			t.Errorf("no subscription to %s", want)
		}
	}
	for _, want := range []string{"customers/data_request", "customers/redact", "shop/redact"} {
		if !slices.Contains(compliance, want) {
			t.Errorf("%s is not among compliance_topics", want)
		}
	}

	// The CLI runs every web below the app root: here exactly the one in web_directories.
	if len(app.WebDirectories) != 1 {
		t.Fatalf("web_directories %v, want the one backend folder", app.WebDirectories)
	}
	var webs []string
	filepath.WalkDir(filepath.Join(repoRoot, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "shopify.web.toml" {
			rel, _ := filepath.Rel(filepath.Join(repoRoot, "deploy"), filepath.Dir(p))
			webs = append(webs, rel)
		}
		return nil
	})
	if !slices.Equal(webs, app.WebDirectories) {
		t.Fatalf("shopify.web.toml found in %v, web_directories says %v", webs, app.WebDirectories)
	}
	webDir := filepath.Join(repoRoot, "deploy", webs[0])
	var web cliWeb
	decodeStrict(t, filepath.Join("deploy", webs[0], "shopify.web.toml"), &web)
	for _, r := range web.Roles {
		if r != "frontend" && r != "backend" && r != "background" {
			t.Errorf("role %q is not one the CLI knows", r)
		}
	}
	if !slices.Contains(web.Roles, "frontend") || !slices.Contains(web.Roles, "backend") {
		t.Errorf("roles %v: the one process serves the admin page and the webhooks", web.Roles)
	}
	if web.WebhooksPath != "/webhooks" || web.AuthCallbackPath != "/auth/callback" {
		t.Errorf("webhooks_path %q, auth_callback_path %q", web.WebhooksPath, web.AuthCallbackPath)
	}
	// The CLI splits the command on "&&" and spaces and runs it in the web folder without a
	// shell: no quotes, variables or cd; the go command's -C must lead to the module.
	dev := strings.Fields(web.Commands.Dev)
	if strings.ContainsAny(web.Commands.Dev, `'"$|;<>`) || len(dev) < 5 || dev[0] != "go" || dev[1] != "-C" || dev[len(dev)-1] != "serve" {
		t.Fatalf("commands.dev %q is not `go -C <module> run . serve`", web.Commands.Dev)
	}
	if _, err := os.Stat(filepath.Join(webDir, dev[2], "go.mod")); err != nil {
		t.Errorf("commands.dev runs from %s, which holds no go.mod: %v", filepath.Join(webDir, dev[2]), err)
	}

	// Shopify's app structure lists package.json in the app root as required.
	var pkg map[string]any
	if err := json.Unmarshal(readFile(t, "deploy/package.json"), &pkg); err != nil || pkg["name"] == "" {
		t.Errorf("deploy/package.json: %v %v", pkg, err)
	}
}
