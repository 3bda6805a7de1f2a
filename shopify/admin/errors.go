package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// ErrNotFound is returned when the product or node asked for does not exist.
var ErrNotFound = errors.New("shopify: not found")

// ErrFileExists is returned by CreateFile when a file with that name already exists in Files
// (fileCreate with duplicateResolutionMode RAISE_ERROR). Callers use it to detect their own retries.
var ErrFileExists = errors.New("shopify: file already exists")

// UserError is one entry of a mutation's userErrors / mediaUserErrors: the request was
// understood but refused. It is never retried.
type UserError struct {
	Field   []string
	Message string
	Code    string
}

func (e *UserError) Error() string {
	var b strings.Builder
	b.WriteString("shopify user error")
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if len(e.Field) > 0 {
		b.WriteString(" on " + strings.Join(e.Field, "."))
	}
	b.WriteString(": " + e.Message)
	return b.String()
}

// UserErrors is returned when a mutation reports more than one user error.
type UserErrors []UserError

func (e UserErrors) Error() string {
	parts := make([]string, len(e))
	for i := range e {
		parts[i] = e[i].Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As find each *UserError.
func (e UserErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i := range e {
		out[i] = &e[i]
	}
	return out
}

// HasCode reports whether err is or contains a user error with the given code.
func HasCode(err error, code string) bool {
	var ues UserErrors
	if errors.As(err, &ues) {
		for _, u := range ues {
			if u.Code == code {
				return true
			}
		}
	}
	var ue *UserError
	return errors.As(err, &ue) && ue.Code == code
}

func userErrorsToError(list []gqlUserError) error {
	switch len(list) {
	case 0:
		return nil
	case 1:
		return &UserError{Field: list[0].Field, Message: list[0].Message, Code: list[0].Code}
	}
	out := make(UserErrors, len(list))
	for i, u := range list {
		out[i] = UserError(u)
	}
	return out
}

// GraphQLError is a top-level GraphQL `errors` answer other than throttling: usually a bug in the
// document or a missing access scope; retrying does not help.
type GraphQLError struct {
	Operation string
	Messages  []string
	Codes     []string
}

func (e *GraphQLError) Error() string {
	return fmt.Sprintf("shopify graphql %s: %s", e.Operation, strings.Join(e.Messages, "; "))
}

// ThrottledError is returned when Shopify kept throttling until the attempts or the context ran out.
type ThrottledError struct {
	Operation  string
	RetryAfter time.Duration // from Retry-After or the cost bucket; 0 when unknown
	HTTP429    bool
}

func (e *ThrottledError) Error() string {
	via := "THROTTLED"
	if e.HTTP429 {
		via = "HTTP 429"
	}
	return fmt.Sprintf("shopify graphql %s: throttled (%s), retry after %s", e.Operation, via, e.RetryAfter)
}

// HTTPError is a non-200 answer. Body is a short, size-limited excerpt for diagnosis.
type HTTPError struct {
	Operation  string
	Status     int
	Body       string
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("shopify graphql %s: HTTP %d: %s", e.Operation, e.Status, e.Body)
}

// ErrIPNotAllowed matches an HTTP 403 from the Admin API. Shopify answers 403 when the app's IP
// allowlist (required for every public app since 2026-11-20) does not cover the calling server, or
// when it cannot confirm the caller's address; missing access scopes come back as 200 with
// ACCESS_DENIED instead. Retrying cannot help: the operator must change the allowlist.
var ErrIPNotAllowed = errors.New("shopify: the Admin API refused this server's IP address (HTTP 403, IP allowlist)")

// Is lets errors.Is(err, ErrIPNotAllowed) recognise a 403.
func (e *HTTPError) Is(target error) bool {
	return target == ErrIPNotAllowed && e.Status == http.StatusForbidden
}

// IsRetryable reports whether err is worth another attempt later: 5xx, throttling or a network
// failure. User errors, GraphQL errors, 4xx (bad token, not found) are not.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	// The caller's own context ending is final, even though net/http reports it as a timeout;
	// the HTTP client's own timeout (a call that hung) is worth another attempt.
	var tr *TransportError
	if errors.As(err, &tr) && !tr.callerDone {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *ThrottledError
	if errors.As(err, &te) {
		return true
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == 429
	}
	if errors.As(err, &tr) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// TransportError is a failure to get any answer (connection refused or reset, truncated body).
// It is retryable: the request may or may not have reached Shopify, and every operation in this
// package is either a read or safe to repeat.
type TransportError struct {
	Operation string
	Err       error
	// callerDone: the caller's context had ended, which is why there was no answer.
	callerDone bool
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("shopify graphql %s: transport: %v", e.Operation, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }
