// Package admin is the app's Shopify GraphQL Admin API client: one Client per shop, every
// document validated against the embedded schema by the tests, a shared per-shop cost Budget
// that waits before Shopify throttles, and retries for throttling, 5xx and network failures.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultAPIVersion is the Admin API version pinned when Options.APIVersion is empty.
const DefaultAPIVersion = "2026-10"

// TokenSource yields the shop's current access token. It is asked before every attempt so a token
// refreshed by another goroutine is picked up.
type TokenSource interface {
	AccessToken(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource for a token that never changes (tests, scripts).
type StaticToken string

// AccessToken returns the token.
func (t StaticToken) AccessToken(context.Context) (string, error) { return string(t), nil }

// Options configure a Client.
type Options struct {
	Shop       string // x.myshopify.com
	Token      TokenSource
	APIVersion string // "" → DefaultAPIVersion
	// BaseURL replaces https://{shop} (SHOPIFY_ADMIN_BASE_URL, tests and demo): the path is
	// unchanged and the Host header stays {shop}.
	BaseURL    string
	HTTPClient *http.Client // nil → a client with a 30 s timeout
	Logger     *slog.Logger // nil → discard
	Budget     *Budget      // shared by every Client of the shop; nil → a private one
	Monitor    *Monitor     // shared by every Client of the process; nil → a private one
	// MaxAttempts bounds tries per call (default 6); BaseDelay is the first backoff step
	// (default 500 ms) and PollInterval the first media/job poll step (default 250 ms).
	MaxAttempts  int
	BaseDelay    time.Duration
	PollInterval time.Duration
	// MaxWait bounds every wait for Shopify's asynchronous work (media processing, reorder
	// jobs) when the caller names no shorter one (default 2 min).
	MaxWait time.Duration
}

// Client talks to one shop's Admin GraphQL API. It is safe for concurrent use.
type Client struct {
	opts     Options
	endpoint string
	hc       *http.Client
	log      *slog.Logger
	budget   *Budget
	monitor  *Monitor
	stats    *counters
	// guard, when set, is asked before each attempt of a mutation; its
	// error stops the call (see Guarded).
	guard func(context.Context) error
}

// counters are a Client's Stats, shared with the clients Guarded returns.
type counters struct {
	calls, throttled, retries, httpErrors atomic.Int64
	waitedNanos                           atomic.Int64
}

// Stats counts what a Client has done, for benchmarks and metrics.
type Stats struct {
	Calls      int64         // HTTP requests sent (attempts, not operations)
	Throttled  int64         // answers that were HTTP 429 or THROTTLED
	Retries    int64         // attempts after the first
	HTTPErrors int64         // non-200 answers, including 429
	BudgetWait time.Duration // total time spent waiting for the cost bucket
}

// New returns a Client for opts.Shop.
func New(opts Options) *Client {
	if opts.APIVersion == "" {
		opts.APIVersion = DefaultAPIVersion
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 6
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = 500 * time.Millisecond
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 2 * time.Minute
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base == "" {
		base = "https://" + opts.Shop
	}
	c := &Client{
		opts:     opts,
		endpoint: base + "/admin/api/" + opts.APIVersion + "/graphql.json",
		hc:       opts.HTTPClient,
		log:      opts.Logger,
		budget:   opts.Budget,
		monitor:  opts.Monitor,
		stats:    &counters{},
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.budget == nil {
		c.budget = NewBudget()
	}
	if c.monitor == nil {
		c.monitor = NewMonitor(c.log)
	}
	return c
}

// Shop returns the shop this client talks to.
func (c *Client) Shop() string { return c.opts.Shop }

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	st := c.stats
	return Stats{
		Calls: st.calls.Load(), Throttled: st.throttled.Load(), Retries: st.retries.Load(),
		HTTPErrors: st.httpErrors.Load(), BudgetWait: time.Duration(st.waitedNanos.Load()),
	}
}

// Guarded returns a client like c (the same shop, budget and counters)
// that asks guard before each attempt of a mutation and, when guard
// fails, sends nothing and returns its error. A worker passes the check
// that the work is still its own: one that lost it must not change the
// shop any more.
func (c *Client) Guarded(guard func(context.Context) error) *Client {
	g := *c
	g.guard = guard
	return &g
}

type gqlRequest struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName,omitempty"`
	Variables     map[string]any `json:"variables,omitempty"`
}

type gqlErrorEntry struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

type gqlResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     json.RawMessage `json:"errors"` // an array, or a bare string on auth failures
	Extensions struct {
		Cost *costExtension `json:"cost"`
	} `json:"extensions"`
}

type gqlUserError struct {
	Field   []string `json:"field"`
	Message string   `json:"message"`
	Code    string   `json:"code"`
}

// maxBody caps how much of an answer is read: product queries are well below this.
const maxBody = 16 << 20

// do runs one operation with budget pacing and retries, decoding data into out.
func (c *Client) do(ctx context.Context, op, doc string, vars map[string]any, out any) error {
	var lastErr error
	for attempt := 1; attempt <= c.opts.MaxAttempts; attempt++ {
		if attempt > 1 {
			c.stats.retries.Add(1)
		}
		if c.guard != nil && strings.HasPrefix(doc, "mutation") {
			if err := c.guard(ctx); err != nil {
				return fmt.Errorf("shopify %s not sent: %w", op, err)
			}
		}
		retryAfter, err := c.attempt(ctx, op, doc, vars, out)
		if err == nil {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return fmt.Errorf("shopify %s: %w", op, errors.Join(ctx.Err(), err))
		}
		if !IsRetryable(err) || attempt == c.opts.MaxAttempts {
			return err
		}
		wait := retryAfter
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "shopify graphql retry", slog.String("shop", c.opts.Shop),
			slog.String("op", op), slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
		if err := sleepCtx(ctx, wait); err != nil {
			return fmt.Errorf("shopify %s: %w", op, errors.Join(err, lastErr))
		}
	}
	return lastErr
}

// backoff is full-jitter exponential: spreads the retries of many workers hit by the same outage.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.BaseDelay << (attempt - 1)
	if limit := 30 * time.Second; d > limit || d <= 0 {
		d = limit
	}
	return d/2 + rand.N(d/2+1)
}

// attempt sends the request once. It returns how long to wait before retrying when the answer
// said so (Retry-After, or the bucket's refill time after THROTTLED).
func (c *Client) attempt(ctx context.Context, op, doc string, vars map[string]any, out any) (time.Duration, error) {
	reserved, waited, err := c.budget.reserve(ctx, op)
	c.stats.waitedNanos.Add(int64(waited))
	if err != nil {
		return 0, fmt.Errorf("shopify %s: wait for cost budget: %w", op, err)
	}
	var cost *costExtension
	defer func() { c.budget.release(op, reserved, cost) }()

	token, err := c.opts.Token.AccessToken(ctx)
	if err != nil {
		return 0, fmt.Errorf("shopify %s: access token: %w", op, err)
	}
	body, err := json.Marshal(gqlRequest{Query: doc, OperationName: op, Variables: vars})
	if err != nil {
		return 0, fmt.Errorf("shopify %s: encode request: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("shopify %s: build request: %w", op, err)
	}
	req.Host = c.opts.Shop
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Shopify-Access-Token", token)

	c.stats.calls.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		// net/http errors carry the URL, never headers, so the token cannot leak here.
		return 0, &TransportError{Operation: op, Err: err, callerDone: ctx.Err() != nil}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, &TransportError{Operation: op, Err: err, callerDone: ctx.Err() != nil}
	}
	c.observe(ctx, op, resp.Header)
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusOK {
		c.stats.httpErrors.Add(1)
		if resp.StatusCode == http.StatusTooManyRequests {
			c.stats.throttled.Add(1)
			return retryAfter, &ThrottledError{Operation: op, RetryAfter: retryAfter, HTTP429: true}
		}
		if resp.StatusCode == http.StatusForbidden {
			c.monitor.noteForbidden(ctx, c.opts.Shop, op)
		}
		return retryAfter, &HTTPError{Operation: op, Status: resp.StatusCode, Body: excerpt(raw, token), RetryAfter: retryAfter}
	}
	var gr gqlResponse
	if err := json.Unmarshal(raw, &gr); err != nil {
		return 0, &TransportError{Operation: op, Err: fmt.Errorf("decode answer: %w", err)}
	}
	cost = gr.Extensions.Cost
	if errs := decodeErrors(gr.Errors); len(errs) > 0 {
		ge := &GraphQLError{Operation: op}
		for _, e := range errs {
			if e.Extensions.Code == "THROTTLED" {
				c.stats.throttled.Add(1)
				c.budget.release(op, 0, cost) // learn the bucket now so waitFor is accurate
				if retryAfter <= 0 {
					// Refill time plus up to as much again of jitter: other callers of the shop
					// (other processes) woke up throttled too and must not all retry at once.
					w := c.budget.waitFor(op) + 10*time.Millisecond
					retryAfter = w + rand.N(w)
				}
				return retryAfter, &ThrottledError{Operation: op, RetryAfter: retryAfter}
			}
			ge.Messages = append(ge.Messages, redact(e.Message, token))
			ge.Codes = append(ge.Codes, e.Extensions.Code)
		}
		return 0, ge
	}
	if out != nil {
		if err := json.Unmarshal(gr.Data, out); err != nil {
			return 0, fmt.Errorf("shopify %s: decode data: %w", op, err)
		}
	}
	return 0, nil
}

// observe reports what Shopify says about the call besides its answer: deprecated use it names
// (since 2025-04 as "Type.field, …") and the version that really answered, which differs from the
// pinned one once that version is past its end of support.
func (c *Client) observe(ctx context.Context, op string, h http.Header) {
	if reason := h.Get("X-Shopify-API-Deprecated-Reason"); reason != "" {
		c.monitor.noteDeprecated(ctx, c.opts.Shop, op, reason)
	}
	if served := h.Get("X-Shopify-API-Version"); served != "" && served != c.opts.APIVersion {
		c.monitor.noteServedBy(ctx, op, c.opts.APIVersion, served)
	}
}

func decodeErrors(raw json.RawMessage) []gqlErrorEntry {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var list []gqlErrorEntry
	if err := json.Unmarshal(raw, &list); err == nil {
		return list
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []gqlErrorEntry{{Message: s}}
	}
	return []gqlErrorEntry{{Message: string(raw)}}
}

// parseRetryAfter accepts delta-seconds, including Shopify's decimals ("2.0"), or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func excerpt(raw []byte, token string) string {
	s := string(raw)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return redact(s, token)
}

// redact keeps the access token out of anything that may end in a log or an error message.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[redacted]")
}
