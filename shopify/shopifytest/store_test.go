package shopifytest

import (
	"bytes"
	"encoding/json"
	"image/color"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"rtbshopify/shopify/schema"
)

const testShop = "demo-shop.myshopify.com"

// fakeClock is a settable Now for deterministic bucket and token expiry tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey, opts.APISecret = "key123", "secret456"
	}
	s := New(opts)
	t.Cleanup(s.Close)
	s.AddShop(testShop)
	return s
}

type gqlResult struct {
	Status int
	Data   map[string]any
	Errors []struct {
		Message    string
		Extensions map[string]any
	}
	Extensions struct {
		Cost struct {
			RequestedQueryCost float64
			ActualQueryCost    *float64
			ThrottleStatus     struct{ MaximumAvailable, CurrentlyAvailable, RestoreRate float64 }
		}
	}
	Raw string
}

func gql(t *testing.T, s *Store, token, doc string, vars map[string]any) gqlResult {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": doc, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/admin/api/"+schema.Version+"/graphql.json", bytes.NewReader(body))
	req.Host = testShop
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Access-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r gqlResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	r.Status, r.Raw = resp.StatusCode, string(raw)
	return r
}

// dig walks a decoded JSON value: keys for objects, ints for arrays.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// waitStatus polls the snapshot until every media of the product has left UPLOADED/PROCESSING.
func waitReady(t *testing.T, s *Store, productID string) ProductSnapshot {
	t.Helper()
	for range 500 {
		snap := s.Product(testShop, productID)
		done := true
		for _, m := range snap.Media {
			if m.Status == "UPLOADED" || m.Status == "PROCESSING" {
				done = false
			}
		}
		if done {
			return snap
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("media never finished processing")
	return ProductSnapshot{}
}

func sampleProduct(t *testing.T, s *Store) *ProductRecord {
	t.Helper()
	rec, err := s.CreateProduct(testShop, NewProduct{
		Title: "Red shirt", ProductType: "Shirts", Vendor: "ACME", Tags: []string{"summer", "cotton"},
		Images: []NewImage{
			{Filename: "front.png", Data: SamplePNG(8, 8, color.RGBA{255, 0, 0, 255}), Alt: "front"},
			{Filename: "back.jpg", Data: SampleJPEG(8, 8, color.White), Alt: "back"},
			{Filename: "side.png", Data: SamplePNG(4, 4, color.Black)},
		},
		Variants: []NewVariant{{Title: "S", ImageIndex: 0}, {Title: "M", ImageIndex: 1}, {Title: "L", ImageIndex: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRejectsInvalidDocuments(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	tests := []struct{ name, doc, want string }{
		{"unknown field", `{ shop { nope } }`, "nope"},
		{"syntax", `{ product(id: `, "Unexpected"},
		{"missing argument", `{ product { id } }`, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gql(t, s, tok, tt.doc, nil)
			if r.Status != 200 || len(r.Errors) == 0 {
				t.Fatalf("want HTTP 200 with errors, got %d %s", r.Status, r.Raw)
			}
			if !strings.Contains(r.Errors[0].Message, tt.want) {
				t.Fatalf("error %q does not mention %q", r.Errors[0].Message, tt.want)
			}
		})
	}
	// A field the fake does not model must be an error, never a silent null.
	rec := sampleProduct(t, s)
	r := gql(t, s, tok, `query($id: ID!) { product(id: $id) { descriptionHtml } }`, map[string]any{"id": rec.ID})
	if len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "not supported") {
		t.Fatalf("unsupported field answered silently: %s", r.Raw)
	}
}

func TestUnauthorized(t *testing.T) {
	s := newStore(t, Options{})
	for _, tok := range []string{"", "shpat_wrong"} {
		r := gql(t, s, tok, `{ shop { id } }`, nil)
		if r.Status != 401 || !strings.Contains(r.Raw, "Invalid API key or access token") {
			t.Fatalf("token %q: got %d %s", tok, r.Status, r.Raw)
		}
	}
}

func TestProductQueryAndCost(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	doc := `query P($id: ID!) { product(id: $id) { id title tags
		media(first: 10) { nodes { id status ... on MediaImage { image { url } } } }
		variants(first: 10) { nodes { id media(first: 1) { nodes { id } } } } } }`
	r := gql(t, s, tok, doc, map[string]any{"id": rec.ID})
	if len(r.Errors) > 0 {
		t.Fatal(r.Raw)
	}
	if got := dig(r.Data, "product", "media", "nodes", 0, "status"); got != "UPLOADED" {
		t.Fatalf("fresh media status = %v, want UPLOADED", got)
	}
	if got := dig(r.Data, "product", "media", "nodes", 0, "image"); got != nil {
		t.Fatalf("image must be null before READY, got %v", got)
	}
	if got := dig(r.Data, "product", "variants", "nodes", 0, "media", "nodes", 0, "id"); got != rec.MediaIDs[0] {
		t.Fatalf("variant media = %v", got)
	}
	// 1 product + (2 + 10×(1 media + 1 image)) + (2 + 10×(1 variant + 2 + 1×1)) = 65.
	if c := r.Extensions.Cost.RequestedQueryCost; c != 65 {
		t.Fatalf("requested cost = %v, want 65", c)
	}
	if a := *r.Extensions.Cost.ActualQueryCost; a >= 65 {
		t.Fatalf("actual cost %v should be below requested", a)
	}
	waitReady(t, s, rec.ID)
	r = gql(t, s, tok, doc, map[string]any{"id": rec.ID})
	url, _ := dig(r.Data, "product", "media", "nodes", 1, "image", "url").(string)
	if !strings.Contains(url, "/files/back.jpg?v=1") {
		t.Fatalf("url = %q", url)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Fatalf("CDN content type = %q", ct)
	}
	if r := gql(t, s, tok, `{ product(id: "gid://shopify/Product/999999") { id } }`, nil); dig(r.Data, "product") != nil || len(r.Errors) > 0 {
		t.Fatalf("missing product: %s", r.Raw)
	}
}

func TestThrottlingAndRestore(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := newStore(t, Options{BucketSize: 30, RestoreRate: 10, Now: clock.Now})
	tok := s.IssueAccessToken(testShop, 0)
	for range 10 { // so the actual cost equals the requested one (no refund)
		if _, err := s.CreateProduct(testShop, NewProduct{Title: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	doc := `{ products(first: 10) { nodes { id } } }` // requested 2 + 10×1 = 12
	var throttled bool
	for range 5 {
		r := gql(t, s, tok, doc, nil)
		if len(r.Errors) > 0 {
			if r.Errors[0].Extensions["code"] != "THROTTLED" {
				t.Fatalf("unexpected error %s", r.Raw)
			}
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("a 30-point bucket never throttled 12-point queries")
	}
	clock.Add(2 * time.Second) // restores 20 points
	if r := gql(t, s, tok, doc, nil); len(r.Errors) > 0 {
		t.Fatalf("bucket did not restore: %s", r.Raw)
	}
	reqs := s.Requests()
	if !reqs[len(reqs)-2].Throttled || reqs[len(reqs)-1].Throttled {
		t.Fatalf("requests not recorded as throttled/unthrottled: %+v", reqs[len(reqs)-2:])
	}
}

func TestFailNext(t *testing.T) {
	s := newStore(t, Options{RetryAfter: 1500 * time.Millisecond})
	tok := s.IssueAccessToken(testShop, 0)
	s.FailNext(1, 429)
	s.FailNext(1, 503)
	r := gql(t, s, tok, `{ products(first: 1) { nodes { id } } }`, nil)
	if r.Status != 429 {
		t.Fatalf("first = %d", r.Status)
	}
	if r := gql(t, s, tok, `{ products(first: 1) { nodes { id } } }`, nil); r.Status != 503 {
		t.Fatalf("second = %d", r.Status)
	}
	if r := gql(t, s, tok, `{ products(first: 1) { nodes { id } } }`, nil); r.Status != 200 {
		t.Fatalf("third = %d", r.Status)
	}
}

// A mutation costs 10 whatever payload it asks back, as at Shopify
// (draftOrderCreate returning draftOrder { id } and userErrors reports
// requestedQueryCost 10); a query's objects still cost a point each.
func TestMutationCostsTenWhateverItsPayload(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	src := stage(t, s, tok, "a.png", "image/png", SamplePNG(2, 2, color.White))
	r := gql(t, s, tok, `mutation($f: [FileCreateInput!]!) { fileCreate(files: $f) {
		files { id alt fileStatus ... on MediaImage { image { url } preview { image { url } } } }
		userErrors { field message code } } }`,
		map[string]any{"f": []any{map[string]any{"originalSource": src}}})
	if len(r.Errors) > 0 || dig(r.Data, "fileCreate", "files", 0, "id") == nil {
		t.Fatal(r.Raw)
	}
	if c, a := r.Extensions.Cost.RequestedQueryCost, *r.Extensions.Cost.ActualQueryCost; c != 10 || a != 10 {
		t.Fatalf("fileCreate cost requested %v, actual %v; want 10 and 10", c, a)
	}
	id := dig(r.Data, "fileCreate", "files", 0, "id")
	r = gql(t, s, tok, `query($ids: [ID!]!) { nodes(ids: $ids) { id ... on MediaImage { image { url } } } }`, map[string]any{"ids": []any{id}})
	if c := r.Extensions.Cost.RequestedQueryCost; c != 2 {
		t.Fatalf("nodes of one media with its image cost %v, want 2", c)
	}
}
