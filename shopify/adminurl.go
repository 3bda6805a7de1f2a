package shopify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// AdminURL is the URL of path (e.g. "/admin/oauth/access_token") on the
// shop's admin host: https://{shop}{path}, or baseURL{path} when
// SHOPIFY_ADMIN_BASE_URL points the app at a fake store.
func AdminURL(baseURL, shop, path string) string {
	if base := strings.TrimRight(baseURL, "/"); base != "" {
		return base + path
	}
	return "https://" + shop + path
}

// NewAdminRequest builds a request to path on the shop's admin host. With
// a base URL the request goes there but keeps Host: {shop}, which is how
// the fake store (and any proxy in front of it) knows the shop.
func NewAdminRequest(ctx context.Context, baseURL, method, shop, path string, body io.Reader) (*http.Request, error) {
	if !ValidShop(shop) {
		return nil, fmt.Errorf("shopify admin request: %q is not a shop domain", shop)
	}
	req, err := http.NewRequestWithContext(ctx, method, AdminURL(baseURL, shop, path), body)
	if err != nil {
		return nil, fmt.Errorf("shopify admin request %s: %w", path, err)
	}
	req.Host = shop
	return req, nil
}
