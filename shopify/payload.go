package shopify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
)

// Enqueuer is what the webhook receiver hands product changes and
// uninstalls to. The pipeline implements it; both calls run inside the
// webhook's transaction (use tx, never another handle) so the delivery
// record and the work it causes commit together or not at all.
type Enqueuer interface {
	EnqueueProduct(ctx context.Context, tx *gorm.DB, shop *models.Shop, p ProductWebhook) error
	CancelShopJobs(ctx context.Context, tx *gorm.DB, shopID uint64, reason string) error
}

// ShopRedactor may be implemented by an Enqueuer that keeps rows of its own
// per shop (tables beyond the first schema). shop/redact calls it inside
// its transaction before deleting the shop's rows.
type ShopRedactor interface {
	RedactShop(ctx context.Context, tx *gorm.DB, shopID uint64) error
}

// ProductWebhook is the part of a products/create or products/update
// payload the pipeline needs.
type ProductWebhook struct {
	ID          string // gid://shopify/Product/N
	Title       string
	ProductType string
	Vendor      string
	Status      string // active | draft | archived (as sent)
	Tags        []string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Media       []WebhookMedia
}

// WebhookMedia is one entry of the payload's media[].
type WebhookMedia struct {
	ID          string // gid://shopify/MediaImage/N
	ContentType string // media_content_type, e.g. IMAGE
	Status      string // UPLOADED | PROCESSING | READY | FAILED
	Position    int    // 1-based as sent
	Alt         string
	PreviewURL  string   // preview_image.src
	VariantIDs  []string // gid://shopify/ProductVariant/N
}

// flexID accepts an id sent as a JSON number or a string: numeric ids
// exceed 2^53 in the wild, so they are never decoded through float64.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(strings.TrimSpace(s))
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexID(n.String())
	return nil
}

// flexInt accepts a number or a numeric string; anything else is 0.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var id flexID
	if err := id.UnmarshalJSON(b); err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(id))
	*f = flexInt(n)
	return nil
}

// flexTags accepts Shopify's comma-separated string and, defensively, an array.
type flexTags []string

func (f *flexTags) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	var raw []string
	switch {
	case bytes.Equal(b, []byte("null")):
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
	default:
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		raw = strings.Split(s, ",")
	}
	out := flexTags{}
	for _, t := range raw {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	*f = out
	return nil
}

// flexTime accepts RFC 3339 or nothing; an unparsable time is zero rather
// than a reason to drop the whole delivery.
type flexTime time.Time

func (f *flexTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil || s == "" {
		*f = flexTime{}
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		*f = flexTime{}
		return nil
	}
	*f = flexTime(t.UTC())
	return nil
}

type productPayload struct {
	ID          flexID   `json:"id"`
	GID         string   `json:"admin_graphql_api_id"`
	Title       string   `json:"title"`
	ProductType string   `json:"product_type"`
	Vendor      string   `json:"vendor"`
	Status      string   `json:"status"`
	Tags        flexTags `json:"tags"`
	CreatedAt   flexTime `json:"created_at"`
	UpdatedAt   flexTime `json:"updated_at"`
	Media       []struct {
		ID           flexID  `json:"id"`
		GID          string  `json:"admin_graphql_api_id"`
		ContentType  string  `json:"media_content_type"`
		Status       string  `json:"status"`
		Position     flexInt `json:"position"`
		Alt          *string `json:"alt"`
		PreviewImage *struct {
			Src string `json:"src"`
		} `json:"preview_image"`
		VariantIDs []flexID `json:"variant_ids"`
	} `json:"media"`
}

// ParseProductWebhook decodes a products/create or products/update body.
// Ids arrive as gids when the payload carries admin_graphql_api_id and are
// built from the numeric id otherwise.
func ParseProductWebhook(body []byte) (ProductWebhook, error) {
	var p productPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return ProductWebhook{}, fmt.Errorf("decode product payload: %w", err)
	}
	out := ProductWebhook{
		ID:          gidOf("Product", p.GID, p.ID),
		Title:       p.Title,
		ProductType: p.ProductType,
		Vendor:      p.Vendor,
		Status:      p.Status,
		Tags:        []string(p.Tags),
		CreatedAt:   time.Time(p.CreatedAt),
		UpdatedAt:   time.Time(p.UpdatedAt),
	}
	if out.ID == "" {
		return ProductWebhook{}, fmt.Errorf("product payload has no id")
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	for i, m := range p.Media {
		wm := WebhookMedia{
			ID:          gidOf("MediaImage", m.GID, m.ID),
			ContentType: m.ContentType,
			Status:      m.Status,
			Position:    int(m.Position),
		}
		if wm.ID == "" {
			return ProductWebhook{}, fmt.Errorf("product %s: media %d has no id", out.ID, i+1)
		}
		if m.Alt != nil {
			wm.Alt = *m.Alt
		}
		if m.PreviewImage != nil {
			wm.PreviewURL = m.PreviewImage.Src
		}
		for _, v := range m.VariantIDs {
			if g := gidOf("ProductVariant", "", v); g != "" {
				wm.VariantIDs = append(wm.VariantIDs, g)
			}
		}
		out.Media = append(out.Media, wm)
	}
	return out, nil
}

// gidOf prefers the payload's gid and falls back to one built from the
// numeric id (or passes an id that is already a gid through).
func gidOf(kind, gid string, id flexID) string {
	if gid = strings.TrimSpace(gid); gid != "" {
		return gid
	}
	s := string(id)
	if strings.HasPrefix(s, "gid://") {
		return s
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
		return "gid://shopify/" + kind + "/" + s
	}
	return ""
}
