package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify"
	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
	"rtbshopify/sync/web"
)

const (
	apiKey    = "test-api-key"
	apiSecret = "test-api-secret"
	shopA     = "alpha-shop.myshopify.com"
	shopB     = "beta-shop.myshopify.com"
	email     = "john@example.com"
	contact   = "contact-key-0123456789-e9"
	developer = "developer-key-abcdef-7x"
)

// apiEnv is the app as main wires it: Fiber server, session middleware
// against a fake store, the API on a real (not started) pipeline and a
// fake Remove The Background.
type apiEnv struct {
	t        *testing.T
	db       *gorm.DB
	sealer   *models.Sealer
	store    *shopifytest.Store
	rtb      *rtbtest.Server
	pipeline *imgsync.Pipeline
	app      *fiber.App
}

func newAPIEnv(t *testing.T, db *gorm.DB) *apiEnv {
	t.Helper()
	store := shopifytest.New(shopifytest.Options{APIKey: apiKey, APISecret: apiSecret, MediaProcessingDelay: time.Millisecond})
	t.Cleanup(store.Close)
	store.AddShop(shopA)
	store.AddShop(shopB)
	fake := rtbtest.New(rtbtest.Options{})
	t.Cleanup(fake.Close)
	fake.AddAccount(email, contact)

	cfg := config.Config{
		AppURL: "http://127.0.0.1:8080", ShopifyAPIKey: apiKey, ShopifyAPISecret: apiSecret,
		ShopifyScopes: []string{"read_products", "write_products", "write_files"}, ShopifyAPIVersion: "2026-10",
		ShopifyAdminBaseURL: store.URL(),
		EncryptionKeys:      []config.Key{{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)}},
	}
	sealer, err := models.NewSealer(cfg.EncryptionKeys)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rtb.NewClient(fake.BaseURL(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	var shopApp *shopify.App
	pipeline := imgsync.New(imgsync.Options{
		DB: db, Sealer: sealer, RTB: client, AppURL: cfg.AppURL, Log: log,
		Admin:    func(shop string) *admin.Client { return admin.New(shopApp.AdminOptions(shop)) },
		Schedule: imgsync.Schedule{Disabled: true},
	})
	shopApp = shopify.New(cfg, db, sealer, pipeline, log)

	app := web.NewServer(web.ServerOptions{DB: db, Log: log, Registry: prometheus.NewRegistry()})
	api := &web.API{Pipeline: pipeline, DB: db, Sealer: sealer, RTB: client, Log: log}
	api.Register(app.Group("/api", shopApp.RequireSession()))
	return &apiEnv{t: t, db: db, sealer: sealer, store: store, rtb: fake, pipeline: pipeline, app: app}
}

type answer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// errCode returns error.code of an error answer.
func (a answer) errCode() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// fields returns error.fields of an error answer.
func (a answer) fields() map[string]any {
	e, _ := a.body["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

// call sends a request as shop (no session token when shop is "").
func (e *apiEnv) call(shop, method, path string, body any) answer {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, r)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if shop != "" {
		req.Header.Set("Authorization", "Bearer "+e.store.SessionToken(shop, time.Minute))
	}
	resp, err := e.app.Test(req, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, raw)
		}
	}
	return a
}

// must calls and fails the test unless the status is want.
func (e *apiEnv) must(want int, shop, method, path string, body any) answer {
	e.t.Helper()
	a := e.call(shop, method, path, body)
	if a.status != want {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.raw, want)
	}
	return a
}

func (e *apiEnv) shop(domain string) *models.Shop {
	e.t.Helper()
	var s models.Shop
	if err := e.db.Where("domain = ?", domain).Take(&s).Error; err != nil {
		e.t.Fatalf("shop %s: %v", domain, err)
	}
	return &s
}

func (e *apiEnv) settingsRows() int64 {
	e.t.Helper()
	var n int64
	if err := e.db.Model(&models.Settings{}).Count(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}

// templateCalls lists the contact keys of the Templates requests the fake saw.
func (e *apiEnv) templateCalls() []string {
	var keys []string
	for _, r := range e.rtb.Requests() {
		if r.Endpoint == rtbtest.EndpointTemplates {
			keys = append(keys, r.ContactAPIKey)
		}
	}
	return keys
}

// validSettings is a complete, acceptable PUT body.
func validSettings() map[string]any {
	return map[string]any{
		"enabled":       true,
		"rtb":           map[string]any{"contactEmail": email, "contactApiKey": contact, "developerApiKey": developer},
		"templateId":    "2000045",
		"imageScope":    "featured",
		"writeMode":     "add",
		"deliveryHours": 48,
		"monthlyBudget": "50.00",
		"filters":       map[string]any{"productTypes": []string{"Shirts"}, "vendors": []string{}, "tagsInclude": []string{"sale"}, "tagsExclude": []string{}},
	}
}

func TestAPIRequiresSession(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		forged := shopifytest.New(shopifytest.Options{APIKey: apiKey, APISecret: "another-secret"})
		defer forged.Close()
		for name, auth := range map[string]string{
			"missing": "",
			"garbage": "Bearer abc.def.ghi",
			"scheme":  "Basic " + e.store.SessionToken(shopA, time.Minute),
			"expired": "Bearer " + e.store.SessionToken(shopA, -time.Minute),
			"forged":  "Bearer " + forged.SessionToken(shopA, time.Minute),
		} {
			for _, route := range []string{"GET /api/settings", "PUT /api/settings", "GET /api/jobs", "POST /api/backfill"} {
				method, path, _ := strings.Cut(route, " ")
				req := httptest.NewRequest(method, path, nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := e.app.Test(req, -1)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 || resp.Header.Get(shopify.RetryInvalidSessionHeader) != "1" || !strings.Contains(string(raw), `"code":"invalid_session"`) {
					t.Errorf("%s %s: %d %q %s", name, route, resp.StatusCode, resp.Header.Get(shopify.RetryInvalidSessionHeader), raw)
				}
			}
		}
		var n int64
		db.Model(&models.Shop{}).Count(&n)
		if n != 0 || e.store.Exchanges(shopA) != 0 {
			t.Fatalf("a refused request created a shop (%d) or exchanged a token (%d)", n, e.store.Exchanges(shopA))
		}
	})
}

func TestAPISettingsDefaults(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		a := e.must(200, shopA, "GET", "/api/settings", nil)
		if e.store.Exchanges(shopA) != 1 || e.shop(shopA).State != models.ShopInstalled {
			t.Fatal("the first call did not install the shop by token exchange")
		}
		if a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", a.header.Get("Cache-Control"))
		}
		var got map[string]any
		json.Unmarshal([]byte(a.raw), &got)
		want := map[string]any{
			"enabled":       false,
			"rtb":           map[string]any{"contactEmail": "", "contactApiKey": "", "developerApiKey": ""},
			"templateId":    "",
			"imageScope":    "all",
			"writeMode":     "replace",
			"deliveryHours": float64(24),
			"monthlyBudget": "",
			"filters":       map[string]any{"productTypes": []any{}, "vendors": []any{}, "tagsInclude": []any{}, "tagsExclude": []any{}},
			"publish":       "auto",
		}
		for k, v := range want {
			if g, _ := json.Marshal(got[k]); string(g) != mustJSON(t, v) {
				t.Errorf("%s = %s, want %s", k, g, mustJSON(t, v))
			}
		}
		if got["ready"] != false || got["readyMessage"] == "" || got["spentThisMonth"] != "0.00" {
			t.Errorf("extras: ready %v %q, spent %v", got["ready"], got["readyMessage"], got["spentThisMonth"])
		}
		if e.settingsRows() != 0 {
			t.Fatal("GET stored settings")
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAPISettingsSaveMasksAndKeepsKeys(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		put := e.must(200, shopA, "PUT", "/api/settings", validSettings())
		get := e.must(200, shopA, "GET", "/api/settings", nil)
		if put.raw != get.raw {
			t.Fatalf("PUT answered\n%s\nGET answers\n%s", put.raw, get.raw)
		}
		b := get.body
		r := b["rtb"].(map[string]any)
		if r["contactEmail"] != email || r["contactApiKey"] != "…e9" || r["developerApiKey"] != "…7x" {
			t.Fatalf("rtb = %v, want masked keys", r)
		}
		if b["enabled"] != true || b["templateId"] != "2000045" || b["templateName"] != "T-shirts" || b["templatePrice"] != "0.95" ||
			b["currencyId"] != "1" || b["imageScope"] != "featured" || b["writeMode"] != "add" || b["deliveryHours"] != float64(48) ||
			b["monthlyBudget"] != "50.00" || b["ready"] != true {
			t.Fatalf("settings = %s", get.raw)
		}
		if f := mustJSON(t, b["filters"]); f != `{"productTypes":["Shirts"],"tagsExclude":[],"tagsInclude":["sale"],"vendors":[]}` {
			t.Fatalf("filters = %s", f)
		}
		if strings.Contains(get.raw, contact) || strings.Contains(get.raw, developer) {
			t.Fatal("GET shows a key in full")
		}
		// The database holds ciphertext only.
		var row models.Settings
		db.Where("shop_id = ?", e.shop(shopA).ID).Take(&row)
		if row.RTBContactAPIKey == "" || strings.Contains(row.RTBContactAPIKey, contact) || strings.Contains(row.RTBDeveloperAPIKey, developer) {
			t.Fatal("a key is stored in plaintext")
		}

		// Sending back what GET showed (masked keys, read-only extras) keeps the keys.
		var back map[string]any
		json.Unmarshal([]byte(get.raw), &back)
		back["deliveryHours"] = 12
		e.must(200, shopA, "PUT", "/api/settings", back)
		// Missing and empty keys keep them too; fields left out keep their values.
		e.must(200, shopA, "PUT", "/api/settings", map[string]any{"rtb": map[string]any{"contactEmail": email, "contactApiKey": ""}})
		after := e.must(200, shopA, "GET", "/api/settings", nil).body
		if after["deliveryHours"] != float64(12) || after["writeMode"] != "add" || after["rtb"].(map[string]any)["developerApiKey"] != "…7x" {
			t.Fatalf("after partial PUTs: %v", after)
		}
		s, err := imgsync.LoadSettings(context.Background(), db, e.sealer, e.shop(shopA))
		if err != nil || s.Credentials.ContactAPIKey != contact || s.Credentials.DeveloperAPIKey != developer {
			t.Fatalf("stored keys changed: %v", err)
		}
		before := len(e.templateCalls())
		tp := e.must(200, shopA, "GET", "/api/templates", nil)
		calls := e.templateCalls()
		if len(calls) != before+1 || calls[len(calls)-1] != contact {
			t.Fatalf("templates call used key %q, want the original", calls[len(calls)-1])
		}
		if got := mustJSON(t, tp.body); got != `{"templates":[{"currencyId":"1","id":"2000045","name":"T-shirts","price":"0.95"},{"currencyId":"1","id":"2000046","name":"Transparent PNG","price":"1.25"},{"currencyId":"1","id":"2000047","name":"White background","price":"0.75"}]}` {
			t.Fatalf("templates = %s", got)
		}
		// Every PUT with credentials checked them live, always with the stored key.
		for i, k := range calls {
			if k != contact {
				t.Fatalf("templates call %d used key %q", i, k)
			}
		}
	})
}

func TestAPISettingsFieldErrors(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		with := func(k string, v any) map[string]any {
			s := validSettings()
			s[k] = v
			return s
		}
		for _, tc := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"scope", with("imageScope", "some"), "imageScope"},
			{"write mode", with("writeMode", "overwrite"), "writeMode"},
			{"hours zero", with("deliveryHours", 0), "deliveryHours"},
			{"hours too many", with("deliveryHours", 169), "deliveryHours"},
			{"hours as text", with("deliveryHours", "24"), "deliveryHours"},
			{"budget text", with("monthlyBudget", "fifty"), "monthlyBudget"},
			{"budget negative", with("monthlyBudget", "-5"), "monthlyBudget"},
			{"budget too precise", with("monthlyBudget", "1.000001"), "monthlyBudget"},
			{"email", with("rtb", map[string]any{"contactEmail": "john at example", "contactApiKey": contact}), "rtb.contactEmail"},
			{"key without email", with("rtb", map[string]any{"contactEmail": "", "contactApiKey": contact}), "rtb.contactEmail"},
			{"email without key", with("rtb", map[string]any{"contactEmail": email}), "rtb.contactApiKey"},
			{"template id", with("templateId", "2000045; drop"), "templateId"},
			{"enabled without template", with("templateId", ""), "templateId"},
			{"too many tags", with("filters", map[string]any{"tagsInclude": make([]string, 101)}), "filters.tagsInclude"},
		} {
			a := e.call(shopA, "PUT", "/api/settings", tc.body)
			if a.status != 422 || a.errCode() != "invalid_settings" {
				t.Errorf("%s: %d %s", tc.name, a.status, a.raw)
				continue
			}
			if msg, _ := a.fields()[tc.field].(string); msg == "" {
				t.Errorf("%s: no message for %s in %s", tc.name, tc.field, a.raw)
			}
		}
		if e.settingsRows() != 0 {
			t.Fatal("an invalid PUT saved settings")
		}
		if n := len(e.templateCalls()); n != 0 {
			t.Fatalf("invalid settings reached Remove The Background %d times", n)
		}

		for name, body := range map[string]string{
			"malformed":     `{"enabled": tru`,
			"not an object": `[1,2]`,
			"two objects":   `{} {}`,
			"unknown field": `{"enabled": false, "colour": "red"}`,
		} {
			if a := e.call(shopA, "PUT", "/api/settings", body); a.status != 400 || a.errCode() != "bad_request" {
				t.Errorf("%s: %d %s", name, a.status, a.raw)
			}
		}
		big := `{"filters":{"tagsInclude":["` + strings.Repeat("x", 70<<10) + `"]}}`
		if a := e.call(shopA, "PUT", "/api/settings", big); a.status != 413 {
			t.Errorf("70 KiB body: %d %s", a.status, a.raw)
		}
		if e.settingsRows() != 0 {
			t.Fatal("a refused PUT saved settings")
		}
	})
}

func TestAPISettingsCheckedAgainstRTB(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		refused := validSettings()
		refused["rtb"] = map[string]any{"contactEmail": email, "contactApiKey": "wrong-key-000000"}
		a := e.must(422, shopA, "PUT", "/api/settings", refused)
		if msg, _ := a.fields()["rtb.contactApiKey"].(string); !strings.Contains(msg, "refused") {
			t.Fatalf("refused credentials: %s", a.raw)
		}
		unknown := validSettings()
		unknown["templateId"] = "999"
		a = e.must(422, shopA, "PUT", "/api/settings", unknown)
		if _, ok := a.fields()["templateId"]; !ok {
			t.Fatalf("unknown template: %s", a.raw)
		}
		e.rtb.SetFault(rtbtest.EndpointTemplates, rtbtest.Fault{HTTPStatus: 503})
		a = e.call(shopA, "PUT", "/api/settings", validSettings())
		if a.status != 503 || a.errCode() != "rtb_unavailable" {
			t.Fatalf("RTB down: %d %s", a.status, a.raw)
		}
		e.rtb.ClearFaults()
		if e.settingsRows() != 0 {
			t.Fatal("settings were saved although RTB refused or was down")
		}

		// Saved settings stay as they were when a later PUT is refused.
		e.must(200, shopA, "PUT", "/api/settings", validSettings())
		refused["deliveryHours"] = 100
		e.must(422, shopA, "PUT", "/api/settings", refused)
		s, _ := imgsync.LoadSettings(context.Background(), db, e.sealer, e.shop(shopA))
		if s.Credentials.ContactAPIKey != contact || s.DeliveryHours != 48 {
			t.Fatalf("a refused PUT changed the stored settings: hours %d", s.DeliveryHours)
		}
	})
}

func TestAPITemplates(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newAPIEnv(t, db)
		a := e.must(409, shopA, "GET", "/api/templates", nil)
		if a.errCode() != "credentials_missing" {
			t.Fatalf("no credentials: %s", a.raw)
		}
		// Saved with processing off and no template: credentials alone are checked.
		e.must(200, shopA, "PUT", "/api/settings", map[string]any{"rtb": map[string]any{"contactEmail": email, "contactApiKey": contact}})
		a = e.must(200, shopA, "GET", "/api/templates", nil)
		if list, _ := a.body["templates"].([]any); len(list) != 3 {
			t.Fatalf("templates: %s", a.raw)
		}
		e.rtb.SetFault(rtbtest.EndpointTemplates, rtbtest.Fault{HTTPStatus: 502, Count: 1})
		if a = e.call(shopA, "GET", "/api/templates", nil); a.status != 503 || a.errCode() != "rtb_unavailable" {
			t.Fatalf("RTB down: %d %s", a.status, a.raw)
		}
		// The account's key changed at Remove The Background.
		e.rtb.SetFault(rtbtest.EndpointTemplates, rtbtest.Fault{ErrorCode: rtbtest.CodeInvalidCredentials, Count: 1})
		if a = e.call(shopA, "GET", "/api/templates", nil); a.status != 422 || a.errCode() != "rtb_credentials_refused" {
			t.Fatalf("refused: %d %s", a.status, a.raw)
		}
		if strings.Contains(a.raw, contact) {
			t.Fatal("an error shows the key")
		}
	})
}
