package shopify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

const (
	testKey    = "test-api-key"
	testSecret = "test-secret-current"
	oldSecret  = "test-secret-previous"
	testShop   = "cool-shop.myshopify.com"
)

// clock is a settable test clock.
type clock struct {
	mu gosync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenStub is a local stand-in for Shopify's token endpoint (the shared
// fake store's OAuth endpoints were not there yet when these tests were
// written). It is strict where it matters: rotated refresh tokens die,
// codes are single-use, client credentials and the Host are checked.
type tokenStub struct {
	t     *testing.T
	srv   *httptest.Server
	clock *clock

	mu        gosync.Mutex
	refreshes map[string]string // live refresh token → shop
	codes     map[string]string // code → shop
	issued    []string          // every token handed out, to check logs for leaks
	exchanges map[string]int
	refreshN  map[string]int
	hosts     []string
	refuseX   bool // token exchange answers 400
	fail      int  // next n requests answer 503
	expiresIn int  // access token lifetime in seconds; 0 means 3600
	// hold, when set, keeps a refresh request waiting until it is closed;
	// held is closed when one starts waiting.
	hold, held chan struct{}
}

func newTokenStub(t *testing.T, c *clock) *tokenStub {
	s := &tokenStub{t: t, clock: c, refreshes: map[string]string{}, codes: map[string]string{},
		exchanges: map[string]int{}, refreshN: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func oauthErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "refused by the test stub"})
}

func (s *tokenStub) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/admin/oauth/access_token" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(w, 400, "invalid_request")
		return
	}
	shop := r.Host
	if r.PostForm.Get("grant_type") == "refresh_token" {
		s.mu.Lock()
		hold, held := s.hold, s.held
		s.held = nil
		s.mu.Unlock()
		if held != nil {
			close(held)
		}
		if hold != nil {
			<-hold
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts = append(s.hosts, shop)
	if s.fail > 0 {
		s.fail--
		http.Error(w, `{"errors":"Internal Server Error"}`, http.StatusServiceUnavailable)
		return
	}
	if r.PostForm.Get("client_id") != testKey || r.PostForm.Get("client_secret") != testSecret {
		oauthErr(w, 401, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		if s.refuseX || r.PostForm.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" ||
			r.PostForm.Get("requested_token_type") != "urn:shopify:params:oauth:token-type:offline-access-token" ||
			r.PostForm.Get("expiring") != "1" {
			oauthErr(w, 400, "invalid_subject_token")
			return
		}
		v := SessionVerifier{APIKey: testKey, Secrets: []string{testSecret, oldSecret}, Now: s.clock.Now}
		c, err := v.Verify(r.PostForm.Get("subject_token"))
		if err != nil || c.Shop != shop {
			oauthErr(w, 400, "invalid_subject_token")
			return
		}
		s.exchanges[shop]++
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if s.refreshes[rt] != shop {
			oauthErr(w, 400, "invalid_grant")
			return
		}
		delete(s.refreshes, rt) // rotation: the old one dies
		s.refreshN[shop]++
	case "":
		code := r.PostForm.Get("code")
		if s.codes[code] != shop || r.PostForm.Get("expiring") != "1" {
			oauthErr(w, 400, "invalid_request")
			return
		}
		delete(s.codes, code)
	default:
		oauthErr(w, 400, "unsupported_grant_type")
		return
	}
	access, refresh := "shpat_"+randHex(12), "shprt_"+randHex(12)
	s.refreshes[refresh] = shop
	s.issued = append(s.issued, access, refresh)
	w.Header().Set("Content-Type", "application/json")
	expiresIn := s.expiresIn
	if expiresIn == 0 {
		expiresIn = 3600
	}
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": access, "scope": "read_products,write_products,write_files",
		"expires_in": expiresIn, "refresh_token": refresh, "refresh_token_expires_in": 7776000,
	})
}

func (s *tokenStub) issueCode(shop string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := randHex(16)
	s.codes[c] = shop
	return c
}

func (s *tokenStub) counts(shop string) (exchanges, refreshes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges[shop], s.refreshN[shop]
}

func (s *tokenStub) live(refresh string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.refreshes[refresh]
	return ok
}

func (s *tokenStub) set(f func(s *tokenStub)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// fakeEnqueuer records what the webhook receiver hands over.
type fakeEnqueuer struct {
	mu       gosync.Mutex
	products []ProductWebhook
	shops    []string
	cancels  []string
	err      error
}

func (f *fakeEnqueuer) EnqueueProduct(ctx context.Context, tx *gorm.DB, shop *models.Shop, p ProductWebhook) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.products = append(f.products, p)
	f.shops = append(f.shops, shop.Domain)
	return nil
}

func (f *fakeEnqueuer) CancelShopJobs(ctx context.Context, tx *gorm.DB, shopID uint64, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.cancels = append(f.cancels, fmt.Sprintf("%d:%s", shopID, reason))
	return tx.Model(&models.ImageJob{}).Where("shop_id = ?", shopID).Update("state", models.JobCancelled).Error
}

func (f *fakeEnqueuer) snapshot() []ProductWebhook {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ProductWebhook(nil), f.products...)
}

func (f *fakeEnqueuer) calls() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.products), len(f.cancels)
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	t      *testing.T
	db     *gorm.DB
	cfg    config.Config
	sealer *models.Sealer
	clock  *clock
	stub   *tokenStub
	enq    *fakeEnqueuer
	app    *App
	http   *fiber.App
	logs   *syncBuffer
}

func testConfig(adminBase string) config.Config {
	return config.Config{
		AppURL:                   "https://app.example.com",
		ShopifyAPIKey:            testKey,
		ShopifyAPISecret:         testSecret,
		ShopifyAPISecretPrevious: oldSecret,
		ShopifyScopes:            []string{"read_products", "write_products", "write_files"},
		ShopifyAPIVersion:        "2026-10",
		ShopifyAdminBaseURL:      adminBase,
		EncryptionKeys:           []config.Key{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}},
	}
}

func newEnv(t *testing.T, db *gorm.DB) *env {
	t.Helper()
	c := newClock()
	e := &env{t: t, db: db, clock: c, stub: newTokenStub(t, c), enq: &fakeEnqueuer{}, logs: &syncBuffer{}}
	e.cfg = testConfig(e.stub.srv.URL)
	var err error
	if e.sealer, err = models.NewSealer(e.cfg.EncryptionKeys); err != nil {
		t.Fatal(err)
	}
	e.app = e.newApp(db)
	e.http = fiber.New()
	e.app.Register(e.http)
	e.http.Get("/api/ping", e.app.RequireSession(), func(c *fiber.Ctx) error {
		s := ShopFrom(c)
		return c.JSON(fiber.Map{"shop": s.Domain, "id": s.ID, "user": SessionFrom(c).User})
	})
	t.Cleanup(func() {
		logs := e.logs.String()
		e.stub.mu.Lock()
		defer e.stub.mu.Unlock()
		for _, tok := range e.stub.issued {
			if strings.Contains(logs, tok) {
				t.Errorf("a token appears in the logs")
			}
		}
	})
	return e
}

// newApp builds another App on db sharing the env's stub and clock: a
// second replica when db is a second handle.
func (e *env) newApp(db *gorm.DB) *App {
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(e.cfg, db, e.sealer, e.enq, log, WithClock(e.clock.Now), WithHTTPClient(e.stub.srv.Client()))
}

// sessionToken mints an App Bridge session token; mod adjusts the claims.
func (e *env) sessionToken(shop string, mod func(jwt.MapClaims)) string {
	now := e.clock.Now()
	c := jwt.MapClaims{
		"iss": "https://" + shop + "/admin", "dest": "https://" + shop, "aud": testKey,
		"sub": "42", "exp": now.Add(60 * time.Second).Unix(), "nbf": now.Add(-time.Second).Unix(),
		"iat": now.Add(-time.Second).Unix(), "jti": randHex(8), "sid": "sid-" + randHex(4),
	}
	if mod != nil {
		mod(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) do(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.http.Test(req, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func (e *env) api(token string) (*http.Response, string) {
	req := httptest.NewRequest(http.MethodGet, "/api/ping", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func (e *env) shop(domain string) *models.Shop {
	e.t.Helper()
	var s models.Shop
	if err := e.db.Where("domain = ?", domain).Take(&s).Error; err != nil {
		e.t.Fatalf("load shop %s: %v", domain, err)
	}
	return &s
}

func (e *env) count(model any, where string, args ...any) int64 {
	e.t.Helper()
	var n int64
	q := e.db.Model(model)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}

// install makes the shop known through a first session request.
func (e *env) install(shop string) *models.Shop {
	e.t.Helper()
	if resp, body := e.api(e.sessionToken(shop, nil)); resp.StatusCode != 200 {
		e.t.Fatalf("install %s: %d %s", shop, resp.StatusCode, body)
	}
	return e.shop(shop)
}

func (e *env) open(s *models.Shop, sealed string) string {
	e.t.Helper()
	v, err := e.sealer.Open(sealed, s.Domain)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// webhook posts a signed delivery and, once it is answered 2xx, fans the
// inbox out as the pipeline would right after the commit.
func (e *env) webhook(topic, shop, id string, body []byte, secret string, hdr map[string]string) (*http.Response, string) {
	resp, b := e.post(topic, shop, id, body, secret, hdr)
	if resp.StatusCode/100 == 2 {
		e.fanOut()
	}
	return resp, b
}

// fanOut acts on every due delivery in the inbox and returns the last error.
func (e *env) fanOut() error {
	for {
		n, err := e.app.FanOut(e.t.Context(), 100)
		if err != nil || n == 0 {
			return err
		}
	}
}

// post sends a signed delivery and leaves the inbox alone.
func (e *env) post(topic, shop, id string, body []byte, secret string, hdr map[string]string) (*http.Response, string) {
	req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Topic", topic)
	req.Header.Set("X-Shopify-Shop-Domain", shop)
	req.Header.Set("X-Shopify-Webhook-Id", id)
	req.Header.Set("X-Shopify-Api-Version", "2026-10")
	req.Header.Set("X-Shopify-Triggered-At", e.clock.Now().Format(time.RFC3339Nano))
	req.Header.Set("X-Shopify-Hmac-Sha256", sign(body, secret))
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return e.do(req)
}

// eachDB runs fn on SQLite and, when TEST_MYSQL_DSN is set, on MariaDB,
// each in a fresh migrated database, and hands it the database's URL so a
// test can open a second handle (another replica).
func eachDB(t *testing.T, fn func(t *testing.T, db *gorm.DB, url string)) {
	t.Helper()
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			d := modelstest.Open(t, name)
			fn(t, d.DB, d.URL)
		})
	}
}

// openAgain opens a second handle on the same database: another replica.
func openAgain(t *testing.T, url string) *gorm.DB {
	t.Helper()
	db, err := models.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close(db) })
	return db
}
