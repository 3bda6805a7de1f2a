package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"rtbshopify/shopify/shopifytest"
)

// appClient talks to the running app's JSON API as the merchant's browser
// does: every call carries a fresh session token signed by the fake store,
// so the first one installs the shop through token exchange.
type appClient struct {
	base  string
	shop  string
	store *shopifytest.Store
	hc    *http.Client
}

// apiError is the app's JSON error answer.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// call sends in as JSON (when not nil) and decodes the answer into out.
func (c *appClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.store.SessionToken(c.shop, time.Minute))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error apiError }
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			e.Error = apiError{Code: "http", Message: string(raw)}
		}
		e.Error.Status = resp.StatusCode
		return fmt.Errorf("%s %s: %w", method, path, &e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// job is the part of the API's job JSON the demo shows.
type job struct {
	ID            string `json:"id"`
	ProductID     string `json:"productId"`
	ProductTitle  string `json:"productTitle"`
	MediaID       string `json:"mediaId"`
	ResultMediaID string `json:"resultMediaId"`
	State         string `json:"state"`
	Ticket        string `json:"ticket"`
	Error         string `json:"error"`
	CreatedAt     string `json:"createdAt"`
	UpdatedAt     string `json:"updatedAt"`
}

// seconds is how long the job took from creation to its last change.
func (j job) seconds() float64 {
	c, err1 := time.Parse(time.RFC3339, j.CreatedAt)
	u, err2 := time.Parse(time.RFC3339, j.UpdatedAt)
	if err1 != nil || err2 != nil {
		return 0
	}
	return u.Sub(c).Seconds()
}

// jobs lists every job of the shop, following the API's cursor.
func (c *appClient) jobs(ctx context.Context) ([]job, error) {
	var all []job
	cursor := ""
	for {
		q := url.Values{"limit": {"200"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Jobs       []job  `json:"jobs"`
			NextCursor string `json:"nextCursor"`
		}
		if err := c.call(ctx, http.MethodGet, "/api/jobs?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Jobs...)
		if page.NextCursor == "" || len(page.Jobs) == 0 {
			return all, nil
		}
		cursor = page.NextCursor
	}
}
