package shopifytest

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// FaultKind is one way a GraphQL request fails under RandomFaults. Each is
// a failure Shopify's Admin API documents or shows: 5xx answers
// ("Shopify may return 5xx errors … retry"), 429 with Retry-After, a
// THROTTLED error in a 200 answer when the calculated-cost bucket is empty
// (shopify.dev/docs/api/usage/limits), and connections that stop answering,
// before or after the work was done, which every client of a remote
// service meets and must not take for "not done".
type FaultKind string

// The kinds of injected failures.
const (
	FaultServerError FaultKind = "500"       // HTTP 500, nothing done
	FaultTooMany     FaultKind = "429"       // HTTP 429 with Retry-After, nothing done
	FaultThrottled   FaultKind = "THROTTLED" // HTTP 200 with a THROTTLED error, nothing done
	FaultHang        FaultKind = "hang"      // no answer until the client gives up, nothing done
	// FaultHangAfter runs the request, then gives no answer until the
	// client gives up: a mutation happened that the client never hears of.
	FaultHangAfter FaultKind = "hang-after"
)

// AllFaultKinds lists every kind, for RandomFaults.Kinds.
var AllFaultKinds = []FaultKind{FaultServerError, FaultTooMany, FaultThrottled, FaultHang, FaultHangAfter}

// RandomFaults makes a share of the Admin API's GraphQL requests fail, drawn
// from a seeded source so a failing run can be repeated.
type RandomFaults struct {
	Seed  uint64
	Rate  float64     // share of requests that fail, 0 to 1
	Kinds []FaultKind // drawn uniformly; nil means AllFaultKinds
	// Hang bounds how long a hung request is held when the client does not
	// give up first (default one minute).
	Hang time.Duration
}

type randomFaults struct {
	mu     sync.Mutex
	cfg    RandomFaults
	rnd    *rand.Rand
	counts map[FaultKind]int
}

// SetRandomFaults starts (or, with Rate 0, stops) random failures of
// GraphQL requests; the counts of InjectedFaults start again from zero.
func (s *Store) SetRandomFaults(f RandomFaults) {
	if len(f.Kinds) == 0 {
		f.Kinds = AllFaultKinds
	}
	if f.Hang <= 0 {
		f.Hang = time.Minute
	}
	rf := &randomFaults{cfg: f, rnd: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)), counts: map[FaultKind]int{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.random = rf
}

// InjectedFaults counts the failures RandomFaults caused, by kind.
func (s *Store) InjectedFaults() map[FaultKind]int {
	s.mu.Lock()
	rf := s.random
	s.mu.Unlock()
	out := map[FaultKind]int{}
	if rf == nil {
		return out
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for k, v := range rf.counts {
		out[k] = v
	}
	return out
}

// draw picks the fault for one request, "" for none.
func (rf *randomFaults) draw() FaultKind {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.cfg.Rate <= 0 || rf.rnd.Float64() >= rf.cfg.Rate {
		return ""
	}
	k := rf.cfg.Kinds[rf.rnd.IntN(len(rf.cfg.Kinds))]
	rf.counts[k]++
	return k
}

// randomFault answers r with a drawn failure and reports whether it did.
func (s *Store) randomFault(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
	if !strings.HasPrefix(r.URL.Path, "/admin/api/") {
		return false
	}
	s.mu.Lock()
	rf := s.random
	s.mu.Unlock()
	if rf == nil {
		return false
	}
	kind := rf.draw()
	if kind == "" {
		return false
	}
	rec := Request{Time: s.opts.Now(), Shop: r.Host, Path: r.URL.Path}
	switch kind {
	case FaultServerError:
		s.failWith(w, r, http.StatusInternalServerError)
	case FaultTooMany:
		s.failWith(w, r, http.StatusTooManyRequests)
	case FaultThrottled:
		rec.Status, rec.Throttled = http.StatusOK, true
		s.record(rec)
		s.mu.Lock()
		bucket := map[string]any{"maximumAvailable": s.opts.BucketSize, "currentlyAvailable": s.opts.BucketSize, "restoreRate": s.opts.RestoreRate}
		if sh, ok := s.shopFromHost(r); ok {
			sh.bucket.refill(s.opts.Now(), s.opts.BucketSize, s.opts.RestoreRate)
			bucket["currentlyAvailable"] = sh.bucket.available
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, throttled(0, bucket))
	case FaultHang, FaultHangAfter:
		if kind == FaultHangAfter {
			next.ServeHTTP(httptest.NewRecorder(), r) // done, and recorded by the handler
		} else {
			s.record(rec)
		}
		t := time.NewTimer(rf.cfg.Hang)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-s.done:
		case <-t.C:
		}
		// The client gave up (or the bound passed): close without an answer.
		panic(http.ErrAbortHandler)
	}
	return true
}

// LoseNextAnswer makes the next n requests of the GraphQL operation op
// run, then close their connection without an answer: the work is done
// and the client never hears of it, as when a connection drops between
// Shopify's answer and the app (FaultHangAfter's failure, aimed at one
// operation). It relaxes nothing: Shopify's mutations carry no idempotency
// key, so the client's repeat is judged by Shopify's own validation, which
// the store already applies with the 2026-10 schema's codes
// (productVariantDetachMedia's MEDIA_IS_NOT_ATTACHED_TO_VARIANT,
// productVariantAppendMedia's PRODUCT_VARIANT_ALREADY_HAS_MEDIA,
// fileCreate's FILENAME_ALREADY_EXISTS under RAISE_ERROR).
func (s *Store) LoseNextAnswer(op string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose == nil {
		s.lose = map[string]int{}
	}
	s.lose[op] += n
}

// loseAnswer runs r and drops its answer when LoseNextAnswer asked for it.
func (s *Store) loseAnswer(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
	s.mu.Lock()
	armed := len(s.lose) > 0
	s.mu.Unlock()
	if !armed || !strings.HasPrefix(r.URL.Path, "/admin/api/") {
		return false
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	var req struct {
		OperationName string `json:"operationName"`
	}
	json.Unmarshal(body, &req)
	s.mu.Lock()
	lose := s.lose[req.OperationName] > 0
	if lose {
		s.lose[req.OperationName]--
	}
	s.mu.Unlock()
	if !lose {
		return false
	}
	next.ServeHTTP(httptest.NewRecorder(), r) // done, and recorded by the handler
	panic(http.ErrAbortHandler)
}
