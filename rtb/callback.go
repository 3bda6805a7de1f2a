package rtb

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"rtbshopify/models/text"
)

// The vendor's webhook carries no authentication of its own, so each job's
// callback URL holds a token only this app can make: kid.jobID.mac, with mac
// an HMAC-SHA256 over the job id. A callback is still only a hint: the store
// records it and the pipeline confirms with GET Status before acting, and
// nothing here ever downloads the URL a callback names.

const (
	tokenDomain    = "rtb-callback|" // domain separation from any other use of the key
	minSecretBytes = 16
	maxKeyIDLen    = 32
	maxTokenLen    = 160
	// DefaultCallbackMaxBody caps a callback body when CallbackHandler.MaxBody is 0.
	DefaultCallbackMaxBody = 64 << 10
	maxTicketLen           = 128
)

// TokenKey is one callback signing key. ID goes into every token so keys can
// rotate: it must be 1–32 characters of [A-Za-z0-9_-].
type TokenKey struct {
	ID     string
	Secret []byte // at least 16 bytes; 32 random bytes recommended
}

// TokenSigner makes and checks callback tokens. The first key signs; every key
// verifies, so a retired key keeps working for callbacks already announced.
type TokenSigner struct {
	keys []TokenKey
}

// NewTokenSigner checks the keys and returns a signer.
func NewTokenSigner(keys []TokenKey) (*TokenSigner, error) {
	if len(keys) == 0 {
		return nil, errors.New("callback tokens: no signing key")
	}
	seen := map[string]bool{}
	cp := make([]TokenKey, 0, len(keys))
	for i, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("callback tokens: key %d: id must be 1-%d characters of A-Z a-z 0-9 _ -", i, maxKeyIDLen)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("callback tokens: key id %q used twice", k.ID)
		}
		if len(k.Secret) < minSecretBytes {
			return nil, fmt.Errorf("callback tokens: key %q: secret shorter than %d bytes", k.ID, minSecretBytes)
		}
		seen[k.ID] = true
		cp = append(cp, TokenKey{ID: k.ID, Secret: bytes.Clone(k.Secret)})
	}
	return &TokenSigner{keys: cp}, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func tokenMAC(secret []byte, id string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenDomain + id))
	return m.Sum(nil)
}

// Token returns the URL-path-safe callback token for jobID.
func (s *TokenSigner) Token(jobID uint64) string {
	k := s.keys[0]
	id := strconv.FormatUint(jobID, 10)
	return k.ID + "." + id + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(k.Secret, id))
}

// Verify returns the job id a token was made for. It rejects malformed tokens,
// unknown key ids and non-canonical numbers, comparing MACs in constant time.
func (s *TokenSigner) Verify(token string) (uint64, bool) {
	if s == nil || len(token) > maxTokenLen {
		return 0, false
	}
	kid, rest, ok := strings.Cut(token, ".")
	if !ok {
		return 0, false
	}
	idStr, macStr, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(macStr, ".") {
		return 0, false
	}
	jobID, err := strconv.ParseUint(idStr, 10, 64)
	// Only the canonical spelling counts, so one job has exactly one token per key.
	if err != nil || strconv.FormatUint(jobID, 10) != idStr {
		return 0, false
	}
	// The decoder skips \r and \n wherever they stand, so a MAC with one
	// inserted would decode to the right bytes: only the exact length counts.
	if len(macStr) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return 0, false
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(macStr)
	if err != nil || len(got) != sha256.Size {
		return 0, false
	}
	for _, k := range s.keys {
		if k.ID == kid {
			if hmac.Equal(got, tokenMAC(k.Secret, idStr)) {
				return jobID, true
			}
			return 0, false
		}
	}
	return 0, false
}

// Callback is what the webhook says: the ticket is done and where its result is.
type Callback struct {
	Ticket            string
	ProcessedImageURL string
}

// ParseCallback reads imageTicket and ProcessedImageURL (names in any casing)
// from a JSON object, a form-encoded or a multipart body. Without a usable
// content type it tries JSON first, then form encoding.
func ParseCallback(contentType string, body []byte) (Callback, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = ""
	}
	var fields map[string]string
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		fields, err = jsonFields(body)
	case mt == "application/x-www-form-urlencoded":
		fields, err = formFields(body)
	case mt == "multipart/form-data":
		fields, err = multipartFields(body, params["boundary"])
	default:
		// Missing or odd content types (text/plain…) happen with simple
		// webhook senders: guess from the body.
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			fields, err = jsonFields(body)
		} else {
			fields, err = formFields(body)
		}
	}
	if err != nil {
		return Callback{}, fmt.Errorf("rtb callback: %w", err)
	}
	cb := Callback{
		Ticket:            strings.TrimSpace(fields["imageticket"]),
		ProcessedImageURL: strings.TrimSpace(fields["processedimageurl"]),
	}
	if cb.Ticket == "" {
		return Callback{}, errors.New("rtb callback: no imageTicket")
	}
	if len(cb.Ticket) > maxTicketLen {
		return Callback{}, errors.New("rtb callback: imageTicket too long")
	}
	return cb, nil
}

// addField stores a value under its lower-cased name. The same name twice with
// different values is refused: there is no way to know which one is meant.
func addField(fields map[string]string, name, value string) error {
	key := strings.ToLower(name)
	if key != "imageticket" && key != "processedimageurl" {
		return nil
	}
	if old, ok := fields[key]; ok && old != value {
		return fmt.Errorf("conflicting values for %s", name)
	}
	fields[key] = value
	return nil
}

func jsonFields(body []byte) (map[string]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, errors.New("body is not a JSON object")
	}
	fields := map[string]string{}
	for name, raw := range obj {
		key := strings.ToLower(name)
		if key != "imageticket" && key != "processedimageurl" {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var s string
		switch t := v.(type) {
		case nil:
			continue
		case string:
			s = t
		default:
			return nil, fmt.Errorf("%s is not a string", name)
		}
		if err := addField(fields, name, s); err != nil {
			return nil, err
		}
	}
	return fields, nil
}

func formFields(body []byte) (map[string]string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("body is not form-encoded")
	}
	fields := map[string]string{}
	for name, vs := range vals {
		for _, v := range vs {
			if err := addField(fields, name, v); err != nil {
				return nil, err
			}
		}
	}
	return fields, nil
}

func multipartFields(body []byte, boundary string) (map[string]string, error) {
	if boundary == "" {
		return nil, errors.New("multipart body without boundary")
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	fields := map[string]string{}
	for parts := 0; ; parts++ {
		if parts > 32 {
			return nil, errors.New("too many multipart parts")
		}
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
		if err != nil {
			return nil, fmt.Errorf("multipart body: %w", err)
		}
		v, err := io.ReadAll(io.LimitReader(p, 4096))
		if err != nil {
			return nil, fmt.Errorf("multipart body: %w", err)
		}
		if err := addField(fields, p.FormName(), string(v)); err != nil {
			return nil, err
		}
	}
}

// CallbackOutcome is what the store did with a callback.
type CallbackOutcome int

const (
	// CallbackRecorded: first callback for this job; recorded for the pipeline.
	CallbackRecorded CallbackOutcome = iota + 1
	// CallbackDuplicate: already recorded (the webhook retries); nothing changed.
	CallbackDuplicate
	// CallbackUnknownJob: no such job (or it is not waiting for a callback).
	CallbackUnknownJob
	// CallbackTicketMismatch: the job exists but has another ticket.
	CallbackTicketMismatch
)

func (o CallbackOutcome) String() string {
	switch o {
	case CallbackRecorded:
		return "recorded"
	case CallbackDuplicate:
		return "duplicate"
	case CallbackUnknownJob:
		return "unknown_job"
	case CallbackTicketMismatch:
		return "ticket_mismatch"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// CallbackStore records callbacks durably. Implementations look the job up,
// compare the ticket (case-insensitively: GUIDs) and write only when the job
// exists and the ticket matches; the write must be idempotent.
type CallbackStore interface {
	RecordCallback(ctx context.Context, jobID uint64, cb Callback) (CallbackOutcome, error)
}

// CallbackHandler turns one webhook request into an HTTP status. It never
// downloads anything or calls another service: it authenticates, parses and
// records, so it answers fast.
type CallbackHandler struct {
	Signer  *TokenSigner
	Store   CallbackStore
	MaxBody int64 // 0 means DefaultCallbackMaxBody
	Logger  *slog.Logger
}

// Handle processes the callback for the path token with the raw body and
// returns the status to answer: 200 recorded or duplicate, 404 bad token,
// unknown job or ticket mismatch (no hint which), 400 unparsable body, 413 body
// too large, 500 store failure (the vendor retries).
func (h *CallbackHandler) Handle(ctx context.Context, token, contentType string, body []byte) int {
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxBody := h.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultCallbackMaxBody
	}
	// The token is a credential for one job: it is never logged.
	jobID, ok := h.Signer.Verify(token)
	if !ok {
		log.WarnContext(ctx, "rtb callback with invalid token", "body_bytes", len(body))
		return http.StatusNotFound
	}
	log = log.With("job_id", jobID)
	if int64(len(body)) > maxBody {
		log.WarnContext(ctx, "rtb callback body too large", "body_bytes", len(body))
		return http.StatusRequestEntityTooLarge
	}
	cb, err := ParseCallback(contentType, body)
	if err != nil {
		log.WarnContext(ctx, "rtb callback unparsable", "content_type", text.Truncate(contentType, 100), "err", err)
		return http.StatusBadRequest
	}
	outcome, err := h.Store.RecordCallback(ctx, jobID, cb)
	if err != nil {
		log.ErrorContext(ctx, "rtb callback not recorded", "ticket", cb.Ticket, "err", err)
		return http.StatusInternalServerError
	}
	switch outcome {
	case CallbackRecorded:
		log.InfoContext(ctx, "rtb callback recorded", "ticket", cb.Ticket)
		return http.StatusOK
	case CallbackDuplicate:
		log.InfoContext(ctx, "rtb callback duplicate", "ticket", cb.Ticket)
		return http.StatusOK
	case CallbackUnknownJob, CallbackTicketMismatch:
		log.WarnContext(ctx, "rtb callback refused", "ticket", cb.Ticket, "outcome", outcome.String())
		return http.StatusNotFound
	default:
		log.ErrorContext(ctx, "rtb callback store returned an unknown outcome", "outcome", outcome.String())
		return http.StatusInternalServerError
	}
}
