package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// TestAttackSuite throws what an attacker would at the running app, through
// its HTTP routes, and checks that nothing happened: no job made or changed,
// nothing submitted to Remove The Background, nothing written to the store,
// no secret in an answer, no script run. It ends with how many attempts of
// each kind it made.
func TestAttackSuite(t *testing.T) {
	// The table lists the kinds in this order whatever order the
	// categories, run in parallel, finish in.
	tally := &attackTally{kinds: []string{"forged webhooks", "replayed webhooks", "forged callbacks", "session tokens",
		"SSRF downloads (pipeline)", "hostile images", "injection: settings", "injection: titles and alt texts",
		"injection: API queries", "injection: shown in Chromium", "browser script runs"}}
	t.Cleanup(func() { t.Log("attack suite:\n" + tally.table()) })
	for _, c := range []struct {
		name string
		run  func(*testing.T, *gorm.DB, *attackTally)
	}{
		{"webhooks", attackWebhooks},
		{"callbacks", attackCallbacks},
		{"sessions", attackSessions},
		{"downloads", attackDownloads},
		{"images", attackImages},
		{"injection", attackInjection},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) { c.run(t, db, tally) })
		})
	}
	t.Run("browser", func(t *testing.T) {
		t.Parallel()
		attackBrowser(t, tally)
	})
}

// attackTally counts attempts and effects by kind of attack.
type attackTally struct {
	mu    gosync.Mutex
	kinds []string
	rows  map[string]*[2]int
}

// try counts one attempt; check reports what the attempt did ("" for
// nothing), and anything it did fails the test.
func (a *attackTally) try(t *testing.T, kind, what string, check func() string) {
	t.Helper()
	effect := check()
	a.mu.Lock()
	if a.rows == nil {
		a.rows = map[string]*[2]int{}
	}
	r := a.rows[kind]
	if r == nil {
		r = &[2]int{}
		a.rows[kind] = r
		if !slices.Contains(a.kinds, kind) {
			a.kinds = append(a.kinds, kind)
		}
	}
	r[0]++
	if effect != "" {
		r[1]++
	}
	a.mu.Unlock()
	if effect != "" {
		t.Errorf("%s (%s): %s", kind, what, effect)
	}
}

// effect counts an effect seen only after a batch of attempts settled.
func (a *attackTally) effect(t *testing.T, kind, effect string) {
	t.Helper()
	if effect == "" {
		return
	}
	a.mu.Lock()
	if r := a.rows[kind]; r != nil {
		r[1]++
	}
	a.mu.Unlock()
	t.Errorf("%s: %s", kind, effect)
}

func (a *attackTally) table() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-34s %8s %8s\n", "attack", "attempts", "effects")
	total := [2]int{}
	for _, k := range a.kinds {
		r := a.rows[k]
		if r == nil {
			continue
		}
		fmt.Fprintf(&sb, "%-34s %8d %8d\n", k, r[0], r[1])
		total[0] += r[0]
		total[1] += r[1]
	}
	fmt.Fprintf(&sb, "%-34s %8d %8d", "total", total[0], total[1])
	return sb.String()
}

// Secrets no answer may hold: the app's secret, the merchant's Remove The
// Background key, and any Shopify access token.
func leaksSecret(body []byte) string {
	for _, s := range []string{"test-secret", rtbKey, "shpat_", "shprt_"} {
		if bytes.Contains(body, []byte(s)) {
			return "the answer holds a secret (" + s[:4] + "…)"
		}
	}
	return ""
}

// attackSend makes one request and returns its status and body; a refused
// connection (a body too large for the server) counts as status 0.
func attackSend(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// rowCount is the number of rows of a model, or of the rows matching where.
func rowCount(t *testing.T, db *gorm.DB, model any, where ...any) int64 {
	t.Helper()
	var n int64
	q := db.Model(model)
	if len(where) > 0 {
		q = q.Where(where[0], where[1:]...)
	}
	if err := q.Count(&n).Error; err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// jobsPrint is every job's state and what a callback or a worker would
// change, to compare before and after attempts.
func jobsPrint(h *harness) string {
	var sb strings.Builder
	for _, j := range h.jobs() {
		fmt.Fprintf(&sb, "%d %s step=%q att=%d err=%q ticket=%s cbticket=%s cb=%s run=%s lease=%s final=%q upd=%s\n",
			j.ID, j.State, j.Step, j.Attempts, j.Error, strp(j.Ticket), strp(j.CallbackTicket), timep(j.CallbackAt),
			int64p(j.RunAt), strp(j.LeaseOwner), j.FinalImageURL, j.UpdatedAt.UTC().Format(time.RFC3339Nano))
	}
	return sb.String()
}

func strp(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func timep(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func int64p(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

// storeWrites counts the GraphQL mutations the app sent the fake store.
func storeWrites(h *harness) int {
	n := 0
	for _, r := range h.store.Requests() {
		switch r.Operation {
		case "StagedUploadsCreate", "FileCreate", "FileUpdate", "FileDelete", "ProductReorderMedia",
			"ProductVariantAppendMedia", "ProductVariantDetachMedia", "ProductCreateMedia", "ProductDeleteMedia",
			"ProductUpdate", "ProductUpdateMedia", "ProductSet":
			n++
		}
	}
	return n
}

// statusAsks counts GET Status requests the fake Remove The Background got.
func statusAsks(h *harness) int {
	n := 0
	for _, r := range h.rtb.Requests() {
		if r.Endpoint == "status" {
			n++
		}
	}
	return n
}

func snapshots(h *harness, ids ...string) []shopifytest.ProductSnapshot {
	out := make([]shopifytest.ProductSnapshot, len(ids))
	for i, id := range ids {
		out[i] = h.store.Product(shopDomain, id)
	}
	return out
}

// galleryChange reports how a product differs from its earlier snapshot.
func galleryChange(before, after []shopifytest.ProductSnapshot) string {
	for i := range before {
		if !same(before[i], after[i]) {
			return fmt.Sprintf("product %s changed", before[i].ID)
		}
	}
	return ""
}

func shopIntact(t *testing.T, h *harness) string {
	t.Helper()
	var s models.Shop
	if err := h.db.Where("domain = ?", shopDomain).Take(&s).Error; err != nil {
		return "the shop is gone: " + err.Error()
	}
	if s.State != models.ShopInstalled || s.AccessToken == "" {
		return "the shop is " + s.State + " without its token"
	}
	if rowCount(t, h.db, &models.Settings{}, "shop_id = ?", s.ID) != 1 {
		return "the shop's settings are gone"
	}
	return ""
}
