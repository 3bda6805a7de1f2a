package shopifytest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"rtbshopify/shopify/schema"
)

// post sends one GraphQL request to the given API version and returns status, headers and body.
func post(t *testing.T, s *Store, version, token, doc string, vars map[string]any) (int, http.Header, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": doc, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/admin/api/"+version+"/graphql.json", bytes.NewReader(body))
	req.Host = testShop
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Access-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

func TestVersionInPathChoosesTheSchema(t *testing.T) {
	// An older version whose Product has only id and a field 2026-10 no longer has.
	old, gerr := gqlparser.LoadSchema(&ast.Source{Name: "old.graphql", Input: `
schema { query: QueryRoot }
type QueryRoot { product(id: ID!): Product }
type Product { id: ID! legacyImageSrc: String }`})
	if gerr != nil {
		t.Fatal(gerr)
	}
	current, err := schema.Load()
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, Options{Schemas: map[string]*ast.Schema{"2026-07": old, schema.Version: current}})
	tok := s.IssueAccessToken(testShop, time.Hour)
	title := `query T($id: ID!) { product(id: $id) { id title } }`
	legacy := `query L($id: ID!) { product(id: $id) { id legacyImageSrc } }`
	vars := map[string]any{"id": "gid://shopify/Product/1"}

	tests := []struct {
		name, version, doc, served, wantErr string
	}{
		{"current accepts its field", schema.Version, title, schema.Version, ""},
		{"current refuses the old field", schema.Version, legacy, schema.Version, "legacyImageSrc"},
		{"old refuses the new field", "2026-07", title, "2026-07", "title"},
		{"old accepts its field", "2026-07", legacy, "2026-07", ""},
		{"ended version falls forward to the oldest", "2025-01", title, "2026-07", "title"},
		{"unreleased version falls forward too", "2026-05", legacy, "2026-07", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := post(t, s, tt.version, tok, tt.doc, vars)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if got := h.Get("X-Shopify-API-Version"); got != tt.served {
				t.Fatalf("X-Shopify-API-Version = %q, want %q", got, tt.served)
			}
			var r struct{ Errors []struct{ Message string } }
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, e := range r.Errors {
				msgs = append(msgs, e.Message)
			}
			all := strings.Join(msgs, "; ")
			if tt.wantErr == "" && all != "" {
				t.Fatalf("unexpected errors: %s", all)
			}
			if tt.wantErr != "" && !strings.Contains(all, tt.wantErr) {
				t.Fatalf("errors %q, want one mentioning %q", all, tt.wantErr)
			}
		})
	}
	reqs := s.Requests()
	if got := reqs[len(reqs)-1].Version; got != "2026-07" {
		t.Fatalf("recorded version %q, want 2026-07", got)
	}
}

func TestDefaultServesTheEmbeddedVersions(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, time.Hour)
	for _, v := range []string{schema.Version, "2024-01"} {
		_, h, _ := post(t, s, v, tok, `{ shop { id } }`, nil)
		if got := h.Get("X-Shopify-API-Version"); got != schema.Versions()[0] {
			t.Fatalf("asked %s: served %q, want %q", v, got, schema.Versions()[0])
		}
	}
}

func TestDeprecatedReasonHeader(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, time.Hour)
	vars := map[string]any{"id": "gid://shopify/Product/1"}

	_, h, _ := post(t, s, schema.Version, tok, `query P($id: ID!) { product(id: $id) { id title } }`, vars)
	if got := h.Get("X-Shopify-API-Deprecated-Reason"); got != "" {
		t.Fatalf("clean query got X-Shopify-API-Deprecated-Reason %q", got)
	}
	_, h, _ = post(t, s, schema.Version, tok, `query P($id: ID!) { product(id: $id) { id bodyHtml featuredImage { url } } }`, vars)
	if got, want := h.Get("X-Shopify-API-Deprecated-Reason"), "Product.bodyHtml, Product.featuredImage"; got != want {
		t.Fatalf("X-Shopify-API-Deprecated-Reason = %q, want %q", got, want)
	}
	// Deprecated enum values hide in variables as often as in the document.
	_, h, _ = post(t, s, schema.Version, tok, `query M($o: MetafieldOwnerType!) { metafieldDefinitions(first: 1, ownerType: $o) { nodes { id } } }`,
		map[string]any{"o": "MEDIA_IMAGE"})
	if got, want := h.Get("X-Shopify-API-Deprecated-Reason"), "MetafieldOwnerType.MEDIA_IMAGE"; got != want {
		t.Fatalf("X-Shopify-API-Deprecated-Reason = %q, want %q", got, want)
	}
	reqs := s.Requests()
	if got := reqs[len(reqs)-1].Deprecated; !slices.Equal(got, []string{"MetafieldOwnerType.MEDIA_IMAGE"}) {
		t.Fatalf("recorded Deprecated = %v", got)
	}
}

func TestIPAllowlist(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, time.Hour)
	doc := `{ shop { id } }`

	s.SetIPAllowlist(netip.MustParsePrefix("203.0.113.0/24"))
	status, _, body := post(t, s, schema.Version, tok, doc, nil)
	if status != http.StatusForbidden {
		t.Fatalf("outside the allowlist: status %d (%s), want 403", status, body)
	}
	s.SetIPAllowlist(netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("127.0.0.0/8"))
	if status, _, body := post(t, s, schema.Version, tok, doc, nil); status != http.StatusOK {
		t.Fatalf("inside the allowlist: status %d (%s), want 200", status, body)
	}
	s.SetIPAllowlist()
	if status, _, body := post(t, s, schema.Version, tok, doc, nil); status != http.StatusOK {
		t.Fatalf("enforcement off: status %d (%s), want 200", status, body)
	}
}
