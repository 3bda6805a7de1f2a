// Package shopifytest is a fake Shopify for tests and the demo: token exchange and refresh, the
// Admin GraphQL API (validated against the real schema, cost-limited, executed with Shopify's
// semantics for the operations the app uses), staged uploads, a CDN, asynchronous media
// processing and signed webhook deliveries. It aims to be as strict as Shopify, never more lenient.
package shopifytest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"rtbshopify/shopify/schema"
)

// Options configure a Store. Zero values pick the defaults noted.
type Options struct {
	APIKey, APISecret string
	Scopes            string  // granted scopes; default "read_products,write_products,write_files"
	BucketSize        float64 // GraphQL cost bucket per shop; default 1000
	RestoreRate       float64 // points per second; default 100
	Now               func() time.Time
	// MediaProcessingDelay is how long new media takes to become READY (UPLOADED for the first
	// half, PROCESSING for the second); default 50 ms.
	MediaProcessingDelay time.Duration
	// JobDelay is when an asynchronous job (a media reorder) is done by itself, polled or not;
	// a client that polls sees it done on its second poll if that comes first. Default 1 s.
	// Shopify's productReorderMedia reference: the operation "processes asynchronously" and
	// returns a Job "to track the reordering progress. Poll the job status to determine when
	// the operation completes" — polling observes the job, it does not run it, so a job whose
	// client went away still reorders the gallery, later.
	JobDelay time.Duration
	// RetryAfter is sent with injected 429 answers; default 1 s. Sent as decimal seconds.
	RetryAfter time.Duration
	// WebhookRetries and WebhookRetryInterval drive SendWebhook; defaults 8 and 50 ms (Shopify
	// spreads 8 retries over 4 h; tests want it quick).
	WebhookRetries       int
	WebhookRetryInterval time.Duration
	WebhookAPIVersion    string // X-Shopify-API-Version of webhooks; default schema.Version
	// Schemas are the Admin API versions the store serves, each with its schema; default every
	// version embedded in shopify/schema. Each request is validated against the schema of the
	// version in its URL path; any other version is answered as the oldest one (see serve).
	Schemas map[string]*ast.Schema
	// MaxImageBytes caps fetched sources (default 20 MB, Shopify's limit).
	MaxImageBytes int64
}

// Store is the fake Shopify. All methods are safe for concurrent use.
type Store struct {
	opts     Options
	srv      *httptest.Server
	versions apiVersions
	fetch    *http.Client

	mu        sync.Mutex
	shops     map[string]*shopState
	byNum     map[int]*shopState
	nextID    int64
	staged    map[string]*stagedObject // key → uploaded bytes
	requests  []Request
	faults    []int
	latency   time.Duration
	allowed   []netip.Prefix // the app's IP allowlist; nil → not enforced
	stalled   bool           // media processing never finishes (StallProcessing)
	failFiles int            // media processings left to fail (FailNextProcessing)
	lockNext  int            // fileUpdate detaches left to refuse as FILE_LOCKED (LockNextDetach)
	lose      map[string]int // operations whose next answers are lost after they ran (LoseNextAnswer)
	random    *randomFaults  // seeded random failures of GraphQL requests (SetRandomFaults)

	done chan struct{} // closed by Close: stops background processing
	bg   sync.WaitGroup
}

// Request is one recorded HTTP request to the Admin API or the token endpoint.
type Request struct {
	Time      time.Time
	Shop      string
	Path      string
	Operation string  // GraphQL operation name (or the first field when unnamed); "" for OAuth
	Cost      float64 // requested query cost; 0 when not computed
	// ActualCost is what the query cost in the end (charged to the bucket);
	// 0 when it did not run.
	ActualCost float64
	Throttled  bool
	Status     int
	Version    string   // the Admin API version that answered ("" for OAuth)
	Deprecated []string // what X-Shopify-API-Deprecated-Reason named
}

type shopState struct {
	name     string
	num      int
	products map[int64]*product
	files    map[int64]*file
	jobs     map[string]*job
	bucket   bucket

	tokens    map[string]*accessToken
	refreshes map[string]*refreshToken
	codes     map[string]bool
	exchanges int
	refreshN  int
}

var shopRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$`)

// New starts a fake store on a loopback port.
func New(opts Options) *Store {
	if opts.Scopes == "" {
		opts.Scopes = "read_products,write_products,write_files"
	}
	if opts.BucketSize <= 0 {
		opts.BucketSize = 1000
	}
	if opts.RestoreRate <= 0 {
		opts.RestoreRate = 100
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MediaProcessingDelay <= 0 {
		opts.MediaProcessingDelay = 50 * time.Millisecond
	}
	if opts.JobDelay <= 0 {
		opts.JobDelay = time.Second
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.WebhookRetries <= 0 {
		opts.WebhookRetries = 8
	}
	if opts.WebhookRetryInterval <= 0 {
		opts.WebhookRetryInterval = 50 * time.Millisecond
	}
	if opts.WebhookAPIVersion == "" {
		opts.WebhookAPIVersion = schema.Version
	}
	if opts.MaxImageBytes <= 0 {
		opts.MaxImageBytes = 20 << 20
	}
	versions, err := loadVersions(opts.Schemas)
	if err != nil {
		panic(fmt.Sprintf("shopifytest: %v", err)) // the schemas are embedded: this is a build bug
	}
	s := &Store{
		opts: opts, versions: versions,
		fetch:  &http.Client{Timeout: 10 * time.Second},
		shops:  map[string]*shopState{},
		byNum:  map[int]*shopState{},
		nextID: 1000,
		staged: map[string]*stagedObject{},
		done:   make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/oauth/access_token", s.handleAccessToken)
	mux.HandleFunc("POST /admin/api/{version}/graphql.json", s.handleGraphQL)
	mux.HandleFunc("POST /staged/upload", s.handleStagedUpload)
	mux.HandleFunc("GET /staged/", s.handleStagedGet)
	mux.HandleFunc("GET /cdn/s/files/1/{num}/files/{filename}", s.handleCDN)
	s.srv = httptest.NewServer(s.withFaults(mux))
	return s
}

// URL is the store's base URL (SHOPIFY_ADMIN_BASE_URL).
func (s *Store) URL() string { return s.srv.URL }

// Client returns an HTTP client that reaches the store.
func (s *Store) Client() *http.Client { return s.srv.Client() }

// Close stops background media processing and the server.
func (s *Store) Close() {
	s.mu.Lock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.mu.Unlock()
	s.bg.Wait()
	s.srv.Close()
}

// AddShop registers a shop (x.myshopify.com). Adding an existing shop does nothing.
func (s *Store) AddShop(shop string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addShopLocked(shop)
}

func (s *Store) addShopLocked(shop string) *shopState {
	if st, ok := s.shops[shop]; ok {
		return st
	}
	st := &shopState{
		name: shop, num: len(s.shops) + 1,
		products: map[int64]*product{}, files: map[int64]*file{}, jobs: map[string]*job{},
		tokens: map[string]*accessToken{}, refreshes: map[string]*refreshToken{}, codes: map[string]bool{},
		bucket: bucket{available: s.opts.BucketSize, at: s.opts.Now()},
	}
	s.shops[shop] = st
	s.byNum[st.num] = st
	return st
}

// shopFromHost maps the Host header ({shop}.myshopify.com, maybe with a port) to a known shop.
func (s *Store) shopFromHost(r *http.Request) (*shopState, bool) {
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if !shopRe.MatchString(host) {
		return nil, false
	}
	st, ok := s.shops[strings.ToLower(host)]
	return st, ok
}

func (s *Store) newID() int64 {
	s.nextID++
	return s.nextID
}

// FailNext makes the next n Admin API or token requests fail with status (429 carries
// Retry-After, Options.RetryAfter).
func (s *Store) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, status)
	}
}

// SetLatency delays every Admin API and token answer by d.
func (s *Store) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Requests returns a copy of every recorded request so far.
func (s *Store) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the recorded requests.
func (s *Store) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Store) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

// withFaults applies latency and injected failures to the API and token endpoints (not the CDN
// or staged storage, which are other services at Shopify).
func (s *Store) withFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/admin/") {
			next.ServeHTTP(w, r)
			return
		}
		if s.randomFault(w, r, next) || s.loseAnswer(w, r, next) {
			return
		}
		s.mu.Lock()
		lat := s.latency
		status := 0
		if len(s.faults) > 0 {
			status, s.faults = s.faults[0], s.faults[1:]
		}
		s.mu.Unlock()
		if lat > 0 {
			select {
			case <-time.After(lat):
			case <-r.Context().Done():
				return
			case <-s.done:
				http.Error(w, "store closed", http.StatusServiceUnavailable)
				return
			}
		}
		if status == 0 {
			next.ServeHTTP(w, r)
			return
		}
		s.failWith(w, r, status)
	})
}

// failWith records r and answers it with status, as Shopify answers a call
// it did not carry out: 429 with Retry-After (the REST-style rate limit the
// Admin API also applies per app and store), any other status with its text.
func (s *Store) failWith(w http.ResponseWriter, r *http.Request, status int) {
	s.record(Request{Time: s.opts.Now(), Shop: r.Host, Path: r.URL.Path, Status: status, Throttled: status == http.StatusTooManyRequests})
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", fmt.Sprintf("%.3f", s.opts.RetryAfter.Seconds()))
		writeJSON(w, status, map[string]any{"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})
		return
	}
	writeJSON(w, status, map[string]any{"errors": http.StatusText(status)})
}
