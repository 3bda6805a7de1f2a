package rtb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Operation names carried by errors, so callers (and logs) know which call failed
// without parsing messages.
const (
	OpTemplates = "templates"
	OpSubmit    = "submit"
	OpStatus    = "status"
	OpDownload  = "download"
)

// APIError is an answer from Remove The Background whose ERRORCODE is not
// "noError" (whatever the HTTP status was), or a submit answer carrying no
// usable ticket. It is permanent: repeating the same call gives the same answer.
type APIError struct {
	Op      string // OpTemplates, OpSubmit or OpStatus
	Code    string // the ERRORCODE as sent, e.g. "InvalidCredentials"
	Message string // the <message> element, possibly empty
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("rtb %s: error code %q", e.Op, e.Code)
	}
	return fmt.Sprintf("rtb %s: error code %q: %s", e.Op, e.Code, e.Message)
}

// HTTPError is a non-2xx answer that carried no ERRORCODE. 5xx, 408 and 429 are
// also wrapped in a *TransientError; other 4xx are permanent.
type HTTPError struct {
	Op         string
	StatusCode int
	URL        string // redacted: no credentials
	Body       string // the first bytes of the body, for diagnosis
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("rtb %s: %s answered HTTP %d", e.Op, e.URL, e.StatusCode)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// TransientError marks a failure worth retrying later with the same input:
// HTTP 5xx/408/429, timeouts, connection errors, cancelled contexts, garbled
// 2xx answers (typically a proxy's maintenance page).
type TransientError struct {
	Op  string
	URL string // redacted: no credentials
	// Sent is true when the request may have reached the service before the
	// failure, i.e. a submit may have been accepted (and billed) even though
	// no ticket came back. See MaybeSubmitted.
	Sent bool
	Err  error
}

func (e *TransientError) Error() string {
	if e.URL == "" {
		return fmt.Sprintf("rtb %s: temporary failure: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("rtb %s %s: temporary failure: %v", e.Op, e.URL, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is a temporary failure: retrying the same call
// later may succeed. A cancelled or expired context counts as retryable because
// the service never refused anything; callers shutting down should check
// ctx.Err() first.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var te *TransientError
	if errors.As(err, &te) {
		return true
	}
	var de *DownloadError
	if errors.As(err, &de) {
		return de.Rule == RuleStatus && retryableStatus(de.StatusCode)
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// MaybeSubmitted reports whether a failed SubmitImage may nevertheless have
// created (and billed) an image: the request left this process and the answer
// was lost. Callers must not blindly resubmit in that case, because every
// submission costs money; park the job for a person or a reconciliation.
func MaybeSubmitted(err error) bool {
	var te *TransientError
	return errors.As(err, &te) && te.Op == OpSubmit && te.Sent
}

// IsCredentialsError reports whether err means Remove The Background refused
// the shop's credentials.
//
// The API does not document its error codes, so the rule is deliberately
// broad: HTTP 401/403 from any call; any APIError from GET Templates (that call
// takes nothing but the credentials, so any refusal is about them); and an
// APIError from another call whose code or message mentions credentials, keys,
// e-mail, contact, auth, login or access.
func IsCredentialsError(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Op == OpTemplates {
			return true
		}
		text := strings.ToLower(ae.Code + " " + ae.Message)
		for _, w := range []string{"credential", "apikey", "api key", "email", "e-mail", "contact", "auth", "login", "access", "password"} {
			if strings.Contains(text, w) {
				return true
			}
		}
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode == 401 || he.StatusCode == 403
	}
	return false
}

func retryableStatus(code int) bool {
	return code >= 500 || code == 408 || code == 429
}

// redactURL returns u without user info and with every query value replaced,
// so errors and logs can name the endpoint without leaking the API key that
// GET calls carry in their query string.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	c.Fragment = ""
	c.RawFragment = ""
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = "REDACTED"
		} else {
			for k := range q {
				q[k] = []string{"REDACTED"}
			}
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

// unwrapURLError strips net/http's *url.Error, whose message repeats the full
// request URL (query string and therefore API key included), keeping the
// underlying cause so errors.Is/As still see timeouts and our own types.
func unwrapURLError(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}
