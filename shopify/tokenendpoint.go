package shopify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// tokenPath is Shopify's OAuth token endpoint on the shop's admin host,
// used for the code grant, token exchange and refresh alike.
const tokenPath = "/admin/oauth/access_token"

// OAuthError is a refusal or failure from Shopify's token endpoint. It
// carries the OAuth error code and description, never the request body
// (which holds the client secret and tokens).
type OAuthError struct {
	Status      int
	Code        string // e.g. invalid_subject_token, invalid_grant
	Description string
}

func (e *OAuthError) Error() string {
	msg := fmt.Sprintf("shopify token endpoint: HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Refused reports whether Shopify rejected the grant itself (4xx) rather
// than failing to answer (5xx): a refusal will not go away by retrying.
func (e *OAuthError) Refused() bool { return e.Status >= 400 && e.Status < 500 }

type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	Scope                 string `json:"scope"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
}

// post sends one grant to the shop's token endpoint.
func (t *Tokens) post(ctx context.Context, shop string, params map[string]string) (*tokenResponse, error) {
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	req, err := NewAdminRequest(ctx, t.cfg.ShopifyAdminBaseURL, http.MethodPost, shop, tokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("shopify token endpoint for %s: %w", shop, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("shopify token endpoint for %s: read answer: %w", shop, err)
	}
	if resp.StatusCode != http.StatusOK {
		oe := &OAuthError{Status: resp.StatusCode}
		var e struct {
			Error       json.RawMessage `json:"error"`
			Description string          `json:"error_description"`
			Errors      json.RawMessage `json:"errors"`
		}
		if json.Unmarshal(body, &e) == nil {
			var code string
			if json.Unmarshal(e.Error, &code) == nil {
				oe.Code = code
			}
			oe.Description = e.Description
			if oe.Description == "" && len(e.Errors) > 0 {
				var s string
				if json.Unmarshal(e.Errors, &s) == nil {
					oe.Description = s
				}
			}
		}
		oe.Code, oe.Description = clip(oe.Code, 64), clip(oe.Description, 200)
		return nil, oe
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("shopify token endpoint for %s: decode answer: %w", shop, err)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("shopify token endpoint for " + shop + ": answer has no access_token")
	}
	return &tr, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
