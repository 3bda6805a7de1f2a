// Package rtb owns everything about Remove The Background, the service whose
// human editors cut the background out of product images: the typed REST
// client, the callback (webhook) tokens and parsing, and the guarded
// downloader used for every image the app fetches. The fake service for tests
// and the demo lives in rtb/rtbtest.
package rtb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"rtbshopify/models/text"
)

// Image production statuses as documented. Any other STATUSID means the image
// is still being worked on.
const (
	StatusNew          = 10
	StatusInProduction = 60
	StatusFinished     = 70 // production finished, in quality check
	StatusDelivered    = 80
)

const (
	// DefaultBaseURL is the vendor's REST endpoint.
	DefaultBaseURL = "http://api.removethebackground.com/REST.svc"
	// DefaultTimeout bounds every call, whatever the caller's context says.
	DefaultTimeout = 30 * time.Second
	// maxAnswerBytes caps what is read from any answer; real answers are < 10 KiB.
	maxAnswerBytes = 1 << 20
	// maxErrorBody is how much of an unexpected body goes into an error.
	maxErrorBody = 200
)

// Credentials identify a shop's account at Remove The Background. The API keys
// are secrets: String and LogValue redact them.
type Credentials struct {
	ContactEmail    string
	ContactAPIKey   string
	DeveloperAPIKey string // optional; the contact key is used when empty
}

// String never shows the keys, so a Credentials printed by mistake leaks nothing.
func (c Credentials) String() string {
	return fmt.Sprintf("rtb.Credentials{ContactEmail: %q, ContactAPIKey: %s, DeveloperAPIKey: %s}",
		c.ContactEmail, MaskKey(c.ContactAPIKey), MaskKey(c.DeveloperAPIKey))
}

// GoString keeps %#v from printing the fields raw.
func (c Credentials) GoString() string { return c.String() }

// LogValue implements slog.LogValuer.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("contact_email", c.ContactEmail),
		slog.String("contact_api_key", MaskKey(c.ContactAPIKey)),
		slog.String("developer_api_key", MaskKey(c.DeveloperAPIKey)),
	)
}

// Validate reports missing fields before anything is sent.
func (c Credentials) Validate() error {
	if strings.TrimSpace(c.ContactEmail) == "" {
		return errors.New("rtb credentials: contact e-mail is empty")
	}
	if strings.TrimSpace(c.ContactAPIKey) == "" {
		return errors.New("rtb credentials: contact API key is empty")
	}
	return nil
}

func (c Credentials) developerKey() string {
	if c.DeveloperAPIKey != "" {
		return c.DeveloperAPIKey
	}
	return c.ContactAPIKey
}

// MaskPrefix starts a masked key. The settings API answers keys masked, and
// a key sent back starting with it means "keep the stored one".
const MaskPrefix = "…"

// MaskKey shows only whether a key is set and, for a key of 8 characters
// or more, its last two (so a merchant can tell which key is stored); a
// shorter key shows nothing of itself. Every place that shows a key (logs,
// errors, API answers) masks it with this.
func MaskKey(k string) string {
	r := []rune(k)
	switch {
	case len(r) == 0:
		return ""
	case len(r) < 8:
		return MaskPrefix
	}
	return MaskPrefix + string(r[len(r)-2:])
}

// Template is one way of processing images, with its price per image.
type Template struct {
	ID         string
	Name       string
	Price      string // decimal exactly as sent, e.g. "0.95"
	CurrencyID string
}

// SubmitRequest is one image to add to the processing queue.
type SubmitRequest struct {
	TemplateID    string
	ImageURL      string
	ImageURL2     string // optional second image to combine
	CallbackURL   string // where the webhook is POSTed when the image is done
	DeliveryHours int    // 0 keeps the template's delivery time
}

// ImageStatus is the production state of one ticket.
type ImageStatus struct {
	Ticket        string
	StatusID      int
	StatusName    string
	FinalImageURL string // absolute (resolved against the files base); set once delivered
}

// Delivered reports whether the finished image can be downloaded.
func (s *ImageStatus) Delivered() bool { return s != nil && s.StatusID == StatusDelivered }

// Client talks to the Remove The Background REST API. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL // without trailing slash
	files   *url.URL
	http    *http.Client
	timeout time.Duration
}

// NewClient builds a client for baseURL (e.g. DefaultBaseURL). filesBaseURL is
// what a relative FINALIMAGEURL is resolved against; "" means the origin of
// baseURL. A nil httpClient gets a private one with a 30 s timeout that ignores
// proxy environment variables.
func NewClient(baseURL, filesBaseURL string, httpClient *http.Client) (*Client, error) {
	base, err := parseHTTPURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("rtb base URL: %w", err)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	base.RawQuery, base.Fragment = "", ""

	var files *url.URL
	if filesBaseURL == "" {
		files = &url.URL{Scheme: base.Scheme, Host: base.Host, Path: "/"}
	} else if files, err = parseHTTPURL(filesBaseURL); err != nil {
		return nil, fmt.Errorf("rtb files base URL: %w", err)
	}

	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultTimeout, Transport: newTransport(), CheckRedirect: sameHostRedirect}
	}
	timeout := DefaultTimeout
	if httpClient.Timeout > 0 && httpClient.Timeout < timeout {
		timeout = httpClient.Timeout
	}
	return &Client{base: base, files: files, http: httpClient, timeout: timeout}, nil
}

func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

// sameHostRedirect follows at most 3 redirects and only on the same host:
// GET calls carry the API key in the query and a 307/308 would replay the
// submit body (keys included) to wherever the Location points.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > 3 || !strings.EqualFold(req.URL.Host, via[0].URL.Host) || req.URL.Scheme != via[0].URL.Scheme {
		return http.ErrUseLastResponse
	}
	return nil
}

// newTransport is the default transport without proxy-from-environment: the
// API keys travel in query strings and must not go through a proxy nobody chose.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          20,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// Templates lists the templates the account may use. Any APIError from this
// call means the credentials were refused (see IsCredentialsError).
func (c *Client) Templates(ctx context.Context, cred Credentials) ([]Template, error) {
	if err := cred.Validate(); err != nil {
		return nil, err
	}
	u := c.endpoint("/Templates/", cred)
	root, err := c.do(ctx, OpTemplates, http.MethodGet, u, nil, cred)
	if err != nil {
		return nil, err
	}
	tpls, err := decodeTemplates(root)
	if err != nil {
		return nil, &TransientError{Op: OpTemplates, URL: redactURL(u), Err: err}
	}
	return tpls, nil
}

// submitBody is the documented JSON payload; every value is a string, as in
// the vendor's example, and every documented key is always present.
type submitBody struct {
	ContactEmail                      string `json:"ContactEmail"`
	ContactAPIkey                     string `json:"ContactAPIkey"`
	DeveloperAPIkey                   string `json:"developerAPIkey"`
	TemplateID                        string `json:"templateId"`
	ImageURL                          string `json:"ImageURL"`
	ImageURL2                         string `json:"ImageURL2"`
	ImageRequestedDeliveryTimeInHours string `json:"ImageRequestedDeliveryTimeInHours"`
	ImageCallbackURL                  string `json:"ImageCallbackURL"`
}

// SubmitImage adds an image to the processing queue and returns its ticket.
// Every successful call is billed. When it fails with MaybeSubmitted(err) the
// image may have been queued anyway.
func (c *Client) SubmitImage(ctx context.Context, cred Credentials, req SubmitRequest) (string, error) {
	if err := cred.Validate(); err != nil {
		return "", err
	}
	if strings.TrimSpace(req.ImageURL) == "" {
		return "", errors.New("rtb submit: image URL is empty")
	}
	if req.DeliveryHours < 0 {
		return "", fmt.Errorf("rtb submit: delivery hours %d is negative", req.DeliveryHours)
	}
	hours := ""
	if req.DeliveryHours > 0 {
		hours = strconv.Itoa(req.DeliveryHours)
	}
	body, err := json.Marshal(submitBody{
		ContactEmail:                      cred.ContactEmail,
		ContactAPIkey:                     cred.ContactAPIKey,
		DeveloperAPIkey:                   cred.developerKey(),
		TemplateID:                        req.TemplateID,
		ImageURL:                          req.ImageURL,
		ImageURL2:                         req.ImageURL2,
		ImageRequestedDeliveryTimeInHours: hours,
		ImageCallbackURL:                  req.CallbackURL,
	})
	if err != nil {
		return "", fmt.Errorf("rtb submit: encode payload: %w", err)
	}
	u := c.endpoint("/Image/", Credentials{})
	root, err := c.do(ctx, OpSubmit, http.MethodPost, u, body, cred)
	if err != nil {
		return "", err
	}
	ticket := decodeTicket(root)
	if ticket == "" || isZeroTicket(ticket) {
		return "", &APIError{Op: OpSubmit, Code: "NoTicket", Message: "the answer carried no image ticket"}
	}
	return ticket, nil
}

func isZeroTicket(t string) bool {
	t = strings.Trim(t, "{}")
	return strings.Trim(t, "0-") == "" && t != ""
}

// Status returns the production state of ticket. A relative FINALIMAGEURL is
// resolved against the files base.
func (c *Client) Status(ctx context.Context, cred Credentials, ticket string) (*ImageStatus, error) {
	if err := cred.Validate(); err != nil {
		return nil, err
	}
	ticket = strings.TrimSpace(ticket)
	if ticket == "" || ticket == "." || ticket == ".." || len(ticket) > 128 {
		return nil, fmt.Errorf("rtb status: invalid ticket %q", text.Truncate(ticket, 40))
	}
	u := c.endpoint("/Image/Status/"+url.PathEscape(ticket)+"/", cred)
	root, err := c.do(ctx, OpStatus, http.MethodGet, u, nil, cred)
	if err != nil {
		return nil, err
	}
	st, err := decodeStatus(root)
	if err != nil {
		return nil, &TransientError{Op: OpStatus, URL: redactURL(u), Err: err}
	}
	if st.Ticket == "" {
		st.Ticket = ticket
	} else if !strings.EqualFold(st.Ticket, ticket) {
		return nil, fmt.Errorf("rtb status: answer is about ticket %q, asked for %q", text.Truncate(st.Ticket, 40), ticket)
	}
	if st.FinalImageURL != "" {
		ref, err := url.Parse(st.FinalImageURL)
		if err != nil {
			return nil, fmt.Errorf("rtb status %s: FINALIMAGEURL is not a URL", ticket)
		}
		st.FinalImageURL = c.files.ResolveReference(ref).String()
	}
	return st, nil
}

// endpoint builds base+path with the credentials as query parameters (the GET
// calls' documented way; an empty Credentials adds none).
func (c *Client) endpoint(path string, cred Credentials) *url.URL {
	u := *c.base
	raw := c.base.EscapedPath() + path
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	}
	if cred.ContactEmail != "" || cred.ContactAPIKey != "" {
		q := url.Values{}
		q.Set("ContactEmail", cred.ContactEmail)
		q.Set("ContactAPIkey", cred.ContactAPIKey)
		u.RawQuery = q.Encode()
	}
	return &u
}

// do performs one call and turns every failure into a typed error that never
// carries the credentials. A nil error means the XML answer said noError.
func (c *Client) do(ctx context.Context, op, method string, u *url.URL, body []byte, cred Credentials) (*xmlNode, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	safeURL := redactURL(u)

	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// Whether any byte may have left decides whether a failed submit may
	// have been accepted (and billed): none can before the transport has
	// a connection to write on.
	var gotConn atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("rtb %s: build request for %s: %w", op, safeURL, unwrapURLError(err))
	}
	req.Header.Set("Accept", "application/xml, text/xml")
	req.Header.Set("User-Agent", "rtbshopify")
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &TransientError{Op: op, URL: safeURL, Sent: gotConn.Load() && requestMayHaveBeenSent(err), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, &TransientError{Op: op, URL: safeURL, Sent: true, Err: fmt.Errorf("read answer: %w", unwrapURLError(err))}
	}
	if len(data) > maxAnswerBytes {
		return nil, &HTTPError{Op: op, StatusCode: resp.StatusCode, URL: safeURL, Body: "answer larger than 1 MiB"}
	}

	// The vendor reports errors as HTTP 200 with an ERRORCODE, but an ERRORCODE
	// is authoritative whatever the status, so look for one first.
	root, perr := parseXML(data)
	if perr == nil {
		if env, found := readEnvelope(root); found && !env.ok() {
			return nil, &APIError{Op: op, Code: scrub(env.ErrorCode, cred), Message: scrub(env.Message, cred)}
		}
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Op: op, StatusCode: resp.StatusCode, URL: safeURL, Body: scrub(snippet(data), cred)}
		if retryableStatus(resp.StatusCode) {
			return nil, &TransientError{Op: op, URL: safeURL, Sent: true, Err: he}
		}
		return nil, he
	}
	// A 2xx that is not the expected XML is most often a proxy or maintenance
	// page; asking again later is the useful reaction.
	if perr != nil {
		return nil, &TransientError{Op: op, URL: safeURL, Sent: true, Err: fmt.Errorf("unreadable answer (%s): %w", scrub(snippet(data), cred), perr)}
	}
	if _, found := readEnvelope(root); !found {
		return nil, &TransientError{Op: op, URL: safeURL, Sent: true, Err: fmt.Errorf("answer without ERRORCODE (%s)", scrub(snippet(data), cred))}
	}
	return root, nil
}

// requestMayHaveBeenSent is false for failures that certainly happened
// before a byte of the request left: DNS and connection set-up errors.
func requestMayHaveBeenSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false
	}
	return true
}

// scrub removes the keys from text that came from the service, in case an
// error page echoes the request back.
func scrub(s string, cred Credentials) string {
	for _, k := range []string{cred.ContactAPIKey, cred.DeveloperAPIKey, url.QueryEscape(cred.ContactAPIKey)} {
		if len(k) >= 4 {
			s = strings.ReplaceAll(s, k, "[REDACTED]")
		}
	}
	return s
}

// snippet is a printable prefix of an unexpected body.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	s = strings.ToValidUTF8(s, "?")
	return text.Truncate(s, maxErrorBody)
}
