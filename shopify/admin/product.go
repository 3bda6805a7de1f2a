package admin

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
)

// Media is one entry of a product's media list.
type Media struct {
	ID               string // gid://shopify/MediaImage/N
	Alt              string
	Status           string // UPLOADED | PROCESSING | READY | FAILED
	URL              string // image.url; "" until READY
	Filename         string // last path segment of URL without the query; "" when URL is
	Position         int    // 0-based index in product.media
	MediaContentType string // IMAGE, VIDEO, EXTERNAL_VIDEO, MODEL_3D
	MimeType         string // image/jpeg …; "" until READY
}

// Variant is a product variant and the media linked to it.
type Variant struct {
	ID       string
	MediaIDs []string
}

// Product is what the pipeline needs to know about a product.
type Product struct {
	ID, Title, ProductType, Vendor, Status string
	Tags                                   []string
	CreatedAt, UpdatedAt                   time.Time
	Media                                  []Media
	Variants                               []Variant
}

// ProductSummary is one row of ProductsUpdatedSince.
type ProductSummary struct {
	ID, Title            string
	UpdatedAt, CreatedAt time.Time
}

type pageInfo struct {
	HasNextPage bool   `json:"hasNextPage"`
	EndCursor   string `json:"endCursor"`
}

type idNodes struct {
	Nodes []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

type mediaConn struct {
	Nodes    []mediaNode `json:"nodes"`
	PageInfo pageInfo    `json:"pageInfo"`
}

// media converts a page of media; offset is the position of its first entry.
func (mc mediaConn) media(offset int) []Media {
	out := make([]Media, 0, len(mc.Nodes))
	for i, m := range mc.Nodes {
		md := Media{ID: m.ID, Alt: m.Alt, Status: m.Status, MediaContentType: m.MediaContentType, MimeType: m.MimeType, Position: offset + i}
		if m.Image != nil {
			md.URL = m.Image.URL
			md.Filename = FilenameFromURL(m.Image.URL)
		}
		out = append(out, md)
	}
	return out
}

type variantConn struct {
	Nodes []struct {
		ID    string  `json:"id"`
		Media idNodes `json:"media"`
	} `json:"nodes"`
	PageInfo pageInfo `json:"pageInfo"`
}

func (vc variantConn) variants() []Variant {
	out := make([]Variant, 0, len(vc.Nodes))
	for _, n := range vc.Nodes {
		v := Variant{ID: n.ID}
		for _, m := range n.Media.Nodes {
			v.MediaIDs = append(v.MediaIDs, m.ID)
		}
		out = append(out, v)
	}
	return out
}

// Product returns the product with its first 250 media and all its variants, or ErrNotFound.
func (c *Client) Product(ctx context.Context, productID string) (*Product, error) {
	var data struct {
		Product *struct {
			ID          string      `json:"id"`
			Title       string      `json:"title"`
			ProductType string      `json:"productType"`
			Vendor      string      `json:"vendor"`
			Status      string      `json:"status"`
			Tags        []string    `json:"tags"`
			CreatedAt   time.Time   `json:"createdAt"`
			UpdatedAt   time.Time   `json:"updatedAt"`
			Media       mediaConn   `json:"media"`
			Variants    variantConn `json:"variants"`
		} `json:"product"`
	}
	if err := c.do(ctx, "Product", docProduct, map[string]any{"id": productID}, &data); err != nil {
		return nil, fmt.Errorf("get product %s: %w", productID, err)
	}
	p := data.Product
	if p == nil {
		return nil, fmt.Errorf("get product %s: %w", productID, ErrNotFound)
	}
	out := &Product{
		ID: p.ID, Title: p.Title, ProductType: p.ProductType, Vendor: p.Vendor, Status: p.Status,
		Tags: p.Tags, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	out.Media = p.Media.media(0)
	for pi := p.Media.PageInfo; pi.HasNextPage; {
		var more struct {
			Product *struct {
				Media mediaConn `json:"media"`
			} `json:"product"`
		}
		vars := map[string]any{"id": productID, "after": pi.EndCursor}
		if err := c.do(ctx, "ProductMedia", docProductMedia, vars, &more); err != nil {
			return nil, fmt.Errorf("get product %s media: %w", productID, err)
		}
		if more.Product == nil {
			return nil, fmt.Errorf("get product %s media: %w", productID, ErrNotFound)
		}
		out.Media = append(out.Media, more.Product.Media.media(len(out.Media))...)
		pi = more.Product.Media.PageInfo
	}
	out.Variants = p.Variants.variants()
	// Products may have up to 2048 variants; page through the rest rather than asking for a
	// huge first page that would blow the 1000-point single-query limit.
	for pi := p.Variants.PageInfo; pi.HasNextPage; {
		var more struct {
			Product *struct {
				Variants variantConn `json:"variants"`
			} `json:"product"`
		}
		vars := map[string]any{"id": productID, "after": pi.EndCursor}
		if err := c.do(ctx, "ProductVariants", docProductVariants, vars, &more); err != nil {
			return nil, fmt.Errorf("get product %s variants: %w", productID, err)
		}
		if more.Product == nil {
			return nil, fmt.Errorf("get product %s variants: %w", productID, ErrNotFound)
		}
		out.Variants = append(out.Variants, more.Product.Variants.variants()...)
		pi = more.Product.Variants.PageInfo
	}
	return out, nil
}

// ProductsUpdatedSince lists products updated strictly after since, oldest update first, 50 per
// page. Pass the returned next cursor as after to continue; next is "" on the last page.
func (c *Client) ProductsUpdatedSince(ctx context.Context, since time.Time, after string) ([]ProductSummary, string, error) {
	q := fmt.Sprintf("updated_at:>'%s'", since.UTC().Format(time.RFC3339))
	vars := map[string]any{"query": q}
	if after != "" {
		vars["after"] = after
	}
	var data struct {
		Products struct {
			Nodes []struct {
				ID        string    `json:"id"`
				Title     string    `json:"title"`
				CreatedAt time.Time `json:"createdAt"`
				UpdatedAt time.Time `json:"updatedAt"`
			} `json:"nodes"`
			PageInfo pageInfo `json:"pageInfo"`
		} `json:"products"`
	}
	if err := c.do(ctx, "ProductsUpdatedSince", docProductsUpdatedSince, vars, &data); err != nil {
		return nil, "", fmt.Errorf("list products updated since %s: %w", since.Format(time.RFC3339), err)
	}
	out := make([]ProductSummary, 0, len(data.Products.Nodes))
	for _, n := range data.Products.Nodes {
		out = append(out, ProductSummary{ID: n.ID, Title: n.Title, UpdatedAt: n.UpdatedAt, CreatedAt: n.CreatedAt})
	}
	next := ""
	if data.Products.PageInfo.HasNextPage {
		next = data.Products.PageInfo.EndCursor
	}
	return out, next, nil
}

// FilenameFromURL returns the last path segment of a CDN URL without its query ("" if none).
func FilenameFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return ""
	}
	name, err := url.PathUnescape(path.Base(u.Path))
	if err != nil {
		return path.Base(u.Path)
	}
	return name
}
