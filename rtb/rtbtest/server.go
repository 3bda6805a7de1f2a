// Package rtbtest is an in-process fake of Remove The Background for tests and
// the product demo. It serves the vendor's REST paths and XML shapes on
// loopback, checks credentials, bills submissions per account, moves images
// through statuses 10 → 60 → 70 → 80 on an injectable clock, really removes
// the background (flood fill from the border), serves the result at a
// relative FINALIMAGEURL and POSTs the webhook with retries. Faults can be
// injected per endpoint. Everything is safe for concurrent use.
//
// It deliberately does not import package rtb, so rtb's own tests may use it.
package rtbtest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Endpoint names a group of routes for fault injection and request records.
type Endpoint string

// The fake's endpoints.
const (
	EndpointTemplates Endpoint = "templates" // GET /REST.svc/Templates/
	EndpointSubmit    Endpoint = "submit"    // POST /REST.svc/Image/
	EndpointStatus    Endpoint = "status"    // GET /REST.svc/Image/Status/{ticket}/
	EndpointFiles     Endpoint = "files"     // GET /files/{ticket}/{name}
	EndpointOther     Endpoint = "other"     // anything else (answered 404)
)

// Error codes the fake answers with (HTTP 200, as the vendor does).
const (
	CodeInvalidCredentials = "InvalidCredentials"
	CodeInvalidRequest     = "InvalidRequest"
	CodeMissingImageURL    = "MissingImageURL"
	CodeInvalidTemplate    = "InvalidTemplateId"
	CodeImageNotFound      = "ImageNotFound"
)

// ZeroTicket is the ticket a failed submit carries.
const ZeroTicket = "00000000-0000-0000-0000-000000000000"

// XMLCase selects how element names are spelled in answers.
type XMLCase int

const (
	// UpperCase is the vendor page's spelling: ERRORCODE, IMAGETICKET, message.
	UpperCase XMLCase = iota
	// CamelCase is the spelling seen in the wild: ErrorCode, ImageTicket, Message.
	CamelCase
)

// Template is a processing template the fake offers.
type Template struct {
	ID, Name, Price, CurrencyID string
	// Transparent templates return PNGs whose background is transparent; the
	// others paint it white and keep the source format. A name containing
	// "transparent" (any casing) implies it.
	Transparent bool
}

// DefaultTemplates is the template list used when Options.Templates is nil.
func DefaultTemplates() []Template {
	return []Template{
		{ID: "2000045", Name: "T-shirts", Price: "0.95", CurrencyID: "1"},
		{ID: "2000046", Name: "Transparent PNG", Price: "1.25", CurrencyID: "1", Transparent: true},
		{ID: "2000047", Name: "White background", Price: "0.75", CurrencyID: "1"},
	}
}

// Options configures a fake. The zero value works: real time, default
// templates, one-second stages, form-encoded callbacks, no background loop.
type Options struct {
	Now func() time.Time // nil: time.Now; use (*Clock).Now in tests

	// Time an image spends as New (10), In production (60) and Production
	// finished (70) before its delivery is due. Zero means one second each.
	NewFor, ProductionFor, QualityCheckFor time.Duration

	Templates []Template        // nil: DefaultTemplates()
	Accounts  map[string]string // e-mail → contact API key, added at start
	XMLCase   XMLCase           // element-name spelling in answers
	Callback  CallbackFormat    // how webhooks are encoded
	// CallbackRetry are the waits (on the fake's clock) before the second and
	// third webhook attempts. nil: 1 s then 4 s.
	CallbackRetry []time.Duration
	// TickInterval > 0 starts a background loop calling Tick that often (real
	// time); the demo uses it. Tests usually call Tick themselves.
	TickInterval time.Duration
	HTTPClient   *http.Client // for downloads and webhooks; nil: 10 s timeout
	Logger       *slog.Logger
	// Result, when set, is delivered for every image as is, in place of the
	// editor's cut-out (the source is still downloaded). Benchmarks use it
	// for images at Shopify's limits, which the flood fill would spend
	// seconds and hundreds of megabytes on. The service delivers a finished
	// file of its own format at FINALIMAGEURL whatever was sent, so a
	// result unrelated to the original's pixels is still one it could
	// deliver; the app never relies on the two matching.
	Result *Result
}

// Result is a delivered file: its bytes and their MIME type (image/jpeg,
// image/png, image/webp or image/gif).
type Result struct {
	Data        []byte
	ContentType string
}

// CallbackFormat is the webhook body encoding.
type CallbackFormat int

const (
	CallbackForm CallbackFormat = iota // application/x-www-form-urlencoded
	CallbackJSON                       // application/json
)

// Fault makes an endpoint misbehave. Effects apply in field order.
type Fault struct {
	Delay      time.Duration // real-time wait before answering (slow answers)
	HTTPStatus int           // answer this status with a plain body, doing nothing
	ErrorCode  string        // answer HTTP 200 with this ERRORCODE, doing nothing
	Message    string        // message for ErrorCode
	// LoseAnswer (submit only): the image is queued and billed, then the
	// connection is closed before any answer is written.
	LoseAnswer bool
	Count      int // requests affected; 0 means all until ClearFaults
}

// CallbackFaults make the webhook misbehave.
type CallbackFaults struct {
	Drop      int  // the next Drop attempts are not sent (count as failed attempts)
	Duplicate bool // every successful webhook is sent a second time
}

// Request is one request the fake received, credentials included, for assertions.
type Request struct {
	Time            time.Time
	Endpoint        Endpoint
	Method, Path    string
	Query           url.Values
	Header          http.Header
	Body            []byte
	ContactEmail    string
	ContactAPIKey   string
	DeveloperAPIKey string
}

// Server is the running fake.
type Server struct {
	opts   Options
	now    func() time.Time
	srv    *httptest.Server
	client *http.Client
	log    *slog.Logger

	closing chan struct{}
	wg      sync.WaitGroup
	tickMu  sync.Mutex // one Tick at a time

	mu          sync.Mutex
	accounts    map[string]account // lower-cased e-mail → account
	jobs        map[string]*job    // lower-cased ticket → job
	order       []*job
	requests    []Request
	submissions map[string]int // account e-mail as added → paid submissions
	faults      map[Endpoint]*Fault
	cbFaults    CallbackFaults
	callbacks   []CallbackAttempt
	files       map[string]file // "{ticket}/{name}" → file
	random      *randomFaults   // SetRandomFaults
	closed      bool
}

type account struct{ email, key string }

type file struct {
	data        []byte
	contentType string
}

// New starts a fake on a loopback port. Call Close when done (t.Cleanup).
func New(opts Options) *Server {
	s := &Server{
		opts:        opts,
		now:         opts.Now,
		client:      opts.HTTPClient,
		log:         opts.Logger,
		closing:     make(chan struct{}),
		accounts:    map[string]account{},
		jobs:        map[string]*job{},
		submissions: map[string]int{},
		faults:      map[Endpoint]*Fault{},
		files:       map[string]file{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Templates == nil {
		s.opts.Templates = DefaultTemplates()
	}
	for i, t := range s.opts.Templates {
		if strings.Contains(strings.ToLower(t.Name), "transparent") {
			s.opts.Templates[i].Transparent = true
		}
	}
	for _, d := range []*time.Duration{&s.opts.NewFor, &s.opts.ProductionFor, &s.opts.QualityCheckFor} {
		if *d <= 0 {
			*d = time.Second
		}
	}
	if s.opts.CallbackRetry == nil {
		s.opts.CallbackRetry = []time.Duration{time.Second, 4 * time.Second}
	}
	for email, key := range opts.Accounts {
		s.AddAccount(email, key)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /REST.svc/Templates/", s.handleTemplates)
	mux.HandleFunc("POST /REST.svc/Image/", s.handleSubmit)
	mux.HandleFunc("GET /REST.svc/Image/Status/{ticket}/", s.handleStatus)
	mux.HandleFunc("GET /files/{ticket}/{name}", s.handleFile)
	s.srv = httptest.NewServer(s.record(mux))

	if opts.TickInterval > 0 {
		s.wg.Add(1)
		go s.loop(opts.TickInterval)
	}
	return s
}

// URL is the server's origin, e.g. http://127.0.0.1:PORT; it is also the base
// against which FINALIMAGEURL resolves.
func (s *Server) URL() string { return s.srv.URL }

// BaseURL is the REST base: URL() + "/REST.svc".
func (s *Server) BaseURL() string { return s.srv.URL + "/REST.svc" }

// Close stops the background loop and the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.closing)
	s.wg.Wait()
	s.srv.Close()
}

func (s *Server) loop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			s.Tick()
		}
	}
}

// AddAccount lets email/key use the fake; adding an e-mail again replaces its key.
func (s *Server) AddAccount(email, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[strings.ToLower(email)] = account{email: email, key: key}
}

// SetFault makes ep misbehave as f describes, replacing any earlier fault.
func (s *Server) SetFault(ep Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[ep] = &f
}

// ClearFaults removes every endpoint and callback fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[Endpoint]*Fault{}
	s.cbFaults = CallbackFaults{}
}

// SetCallbackFaults replaces the webhook faults.
func (s *Server) SetCallbackFaults(f CallbackFaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cbFaults = f
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Query = cloneValues(r.Query)
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Submissions returns the number of paid submissions per account e-mail.
func (s *Server) Submissions() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.submissions))
	for k, v := range s.submissions {
		out[k] = v
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func endpointOf(r *http.Request) Endpoint {
	p := r.URL.Path
	switch {
	case p == "/REST.svc/Templates/":
		return EndpointTemplates
	case p == "/REST.svc/Image/":
		return EndpointSubmit
	case strings.HasPrefix(p, "/REST.svc/Image/Status/"):
		return EndpointStatus
	case strings.HasPrefix(p, "/files/"):
		return EndpointFiles
	}
	return EndpointOther
}

// record keeps a copy of each request, reading credentials from the query
// (GET) or the JSON body (POST), then applies the endpoint's fault.
func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := Request{
			Time: s.now(), Endpoint: endpointOf(r), Method: r.Method, Path: r.URL.Path,
			Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
			ContactEmail: r.URL.Query().Get("ContactEmail"), ContactAPIKey: r.URL.Query().Get("ContactAPIkey"),
		}
		if r.Method == http.MethodPost {
			var p submitPayload
			if json.Unmarshal(body, &p) == nil {
				rec.ContactEmail, rec.ContactAPIKey, rec.DeveloperAPIKey = p.ContactEmail, p.ContactAPIkey, p.DeveloperAPIkey
			}
		}
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		f := s.takeFault(rec.Endpoint)
		if f == nil {
			f = s.drawRandomLocked(rec.Endpoint)
		}
		s.mu.Unlock()

		if f != nil {
			if f.Delay > 0 {
				t := time.NewTimer(f.Delay)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				case <-s.closing:
					t.Stop()
				}
			}
			if f.HTTPStatus != 0 {
				http.Error(w, http.StatusText(f.HTTPStatus), f.HTTPStatus)
				return
			}
			if f.ErrorCode != "" {
				s.writeError(w, rec.Endpoint, f.ErrorCode, f.Message)
				return
			}
			if f.LoseAnswer {
				r = r.WithContext(withLoseAnswer(r.Context()))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// takeFault returns the fault for ep, consuming one use. Callers hold s.mu.
func (s *Server) takeFault(ep Endpoint) *Fault {
	f := s.faults[ep]
	if f == nil {
		return nil
	}
	cp := *f
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			delete(s.faults, ep)
		}
	}
	return &cp
}
