package shopifytest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SendWebhook delivers payload to appURL as Shopify does: JSON body, signed with the API secret,
// the X-Shopify-* headers (one webhook id for the delivery, kept across retries), a 5 s timeout,
// and retries on anything but 2xx (Options.WebhookRetries, Options.WebhookRetryInterval apart).
// It returns the last response (body already read and closed) or the last error.
func (s *Store) SendWebhook(ctx context.Context, appURL, shop, topic string, payload any) (*http.Response, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("shopifytest: encode webhook payload: %w", err)
	}
	return s.SendRawWebhook(ctx, appURL, shop, topic, body)
}

// SendRawWebhook is SendWebhook for a body that is already encoded (tampering tests).
func (s *Store) SendRawWebhook(ctx context.Context, appURL, shop, topic string, body []byte) (*http.Response, error) {
	mac := hmac.New(sha256.New, []byte(s.opts.APISecret))
	mac.Write(body)
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	webhookID, eventID := uuid.NewString(), uuid.NewString()
	triggered := s.opts.Now().UTC().Format(time.RFC3339Nano)
	hc := &http.Client{Timeout: 5 * time.Second}

	var resp *http.Response
	var err error
	for attempt := 0; attempt <= s.opts.WebhookRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return resp, ctx.Err()
			case <-time.After(s.opts.WebhookRetryInterval):
			}
		}
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, appURL, bytes.NewReader(body))
		if rerr != nil {
			return nil, fmt.Errorf("shopifytest: webhook request: %w", rerr)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Shopify-Captain-Hook")
		req.Header.Set("X-Shopify-Topic", topic)
		req.Header.Set("X-Shopify-Shop-Domain", shop)
		req.Header.Set("X-Shopify-API-Version", s.opts.WebhookAPIVersion)
		req.Header.Set("X-Shopify-Webhook-Id", webhookID)
		req.Header.Set("X-Shopify-Event-Id", eventID)
		req.Header.Set("X-Shopify-Triggered-At", triggered)
		req.Header.Set("X-Shopify-Hmac-Sha256", sig)
		r, derr := hc.Do(req)
		if derr != nil {
			resp, err = nil, derr
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		r.Body.Close()
		resp, err = r, nil
		if r.StatusCode/100 == 2 {
			return r, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("shopifytest: deliver webhook %s: %w", topic, err)
	}
	return resp, nil
}

// ProductWebhookPayload builds a products/create or products/update payload for the product's
// current state, in the shape of webhook API 2024-07 and later.
func (s *Store) ProductWebhookPayload(shop, productID string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.productLocked(shop, productID)
	if err != nil {
		return nil
	}
	sh := s.shops[shop]
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-07:00") }
	variantIDs := func(fid int64) []int64 {
		ids := []int64{}
		for _, v := range p.variants {
			for _, m := range v.media {
				if m == fid {
					ids = append(ids, v.id)
				}
			}
		}
		return ids
	}
	images, media := []any{}, []any{}
	for i, fid := range p.media {
		f := sh.files[fid]
		var preview any
		var src any
		if f.status == "READY" {
			url := s.cdnURL(sh, f)
			src = url
			preview = map[string]any{"src": url, "width": f.width, "height": f.height, "status": "READY"}
		}
		media = append(media, map[string]any{
			"id": f.id, "admin_graphql_api_id": gid("MediaImage", f.id), "product_id": p.id,
			"position": i + 1, "created_at": ts(f.createdAt), "updated_at": ts(f.updatedAt),
			"alt": nilIfEmpty(f.alt), "status": f.status, "media_content_type": "IMAGE",
			"preview_image": preview, "variant_ids": variantIDs(fid),
		})
		// The legacy images[] only lists images that have a URL.
		if src != nil {
			images = append(images, map[string]any{
				"id": f.id, "admin_graphql_api_id": gid("ProductImage", f.id), "product_id": p.id,
				"position": i + 1, "created_at": ts(f.createdAt), "updated_at": ts(f.updatedAt),
				"alt": nilIfEmpty(f.alt), "width": f.width, "height": f.height, "src": src,
				"variant_ids": variantIDs(fid),
			})
		}
	}
	variants := []any{}
	for i, v := range p.variants {
		var imageID any
		if len(v.media) > 0 {
			imageID = v.media[0]
		}
		variants = append(variants, map[string]any{
			"id": v.id, "admin_graphql_api_id": gid("ProductVariant", v.id), "product_id": p.id,
			"title": v.title, "position": i + 1, "image_id": imageID,
		})
	}
	var image any
	if len(images) > 0 {
		image = images[0]
	}
	return map[string]any{
		"id": p.id, "admin_graphql_api_id": gid("Product", p.id), "title": p.title,
		"product_type": p.productType, "vendor": p.vendor, "tags": strings.Join(p.tags, ", "),
		"status": strings.ToLower(p.status), "created_at": ts(p.createdAt), "updated_at": ts(p.updatedAt),
		"handle": strings.ToLower(strings.Join(strings.Fields(p.title), "-")),
		"images": images, "image": image, "media": media, "variants": variants,
		"variant_gids": variantGIDs(p),
	}
}

func variantGIDs(p *product) []any {
	out := []any{}
	for _, v := range p.variants {
		out = append(out, map[string]any{"admin_graphql_api_id": gid("ProductVariant", v.id), "updated_at": p.updatedAt.UTC().Format(time.RFC3339)})
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
