package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Reads sized to what a step needs: a query costs a point for every object
// it returns, so a step that reads the whole product (every media with its
// image, every variant with its media) for one image pays for the whole
// gallery each time, and a product's write-back grows with the square of
// its size.

// mediaNode is a media read by id.
type mediaNode struct {
	ID               string `json:"id"`
	Alt              string `json:"alt"`
	Status           string `json:"status"`
	MediaContentType string `json:"mediaContentType"`
	MimeType         string `json:"mimeType"`
	Image            *struct {
		URL string `json:"url"`
	} `json:"image"`
}

func (n mediaNode) media(pos int) Media {
	m := Media{ID: n.ID, Alt: n.Alt, Status: n.Status, MediaContentType: n.MediaContentType, MimeType: n.MimeType, Position: pos}
	if n.Image != nil {
		m.URL = n.Image.URL
		m.Filename = FilenameFromURL(n.Image.URL)
	}
	return m
}

// MediaByID returns the named media as they are now, whatever product they
// are on, at two points each; a media that no longer exists (the merchant
// deleted it, or its product) is absent. Their Position is -1: read by id,
// a media does not say where it is in a gallery.
func (c *Client) MediaByID(ctx context.Context, ids ...string) (map[string]Media, error) {
	out := make(map[string]Media, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var data struct {
		Nodes []*mediaNode `json:"nodes"`
	}
	if err := c.do(ctx, "MediaByID", docMediaByID, map[string]any{"ids": ids}, &data); err != nil {
		return nil, fmt.Errorf("read media %v: %w", ids, err)
	}
	for _, n := range data.Nodes {
		if n != nil && n.ID != "" && n.Status != "" {
			out[n.ID] = n.media(-1)
		}
	}
	return out, nil
}

// Gallery returns the product with its gallery's order (every media's id
// and position, at one point a media) and the details (alt, status, URL,
// file name, MIME type) of only the media named in detail that are on it;
// its Variants are not read (ProductVariants reads them). A product that
// does not exist is ErrNotFound.
func (c *Client) Gallery(ctx context.Context, productID string, detail ...string) (*Product, error) {
	return c.gallery(ctx, "ProductGallery", docProductGallery, productID, detail)
}

// GalleryOrder is Gallery with the named media's alt text and status but
// not their image (URL, file name, MIME type): a point less for each.
func (c *Client) GalleryOrder(ctx context.Context, productID string, detail ...string) (*Product, error) {
	return c.gallery(ctx, "ProductGalleryOrder", docProductGalleryOrder, productID, detail)
}

func (c *Client) gallery(ctx context.Context, op, doc, productID string, detail []string) (*Product, error) {
	var data struct {
		Product *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
			Media struct {
				Nodes []struct {
					ID string `json:"id"`
				} `json:"nodes"`
				PageInfo pageInfo `json:"pageInfo"`
			} `json:"media"`
		} `json:"product"`
		Nodes []*mediaNode `json:"nodes"`
	}
	if detail == nil {
		detail = []string{}
	}
	if err := c.do(ctx, op, doc, map[string]any{"id": productID, "ids": detail}, &data); err != nil {
		return nil, fmt.Errorf("read gallery of %s: %w", productID, err)
	}
	p := data.Product
	if p == nil {
		return nil, fmt.Errorf("read gallery of %s: %w", productID, ErrNotFound)
	}
	if p.Media.PageInfo.HasNextPage {
		// Shopify holds at most 250 media per product, the size of the page.
		return nil, fmt.Errorf("read gallery of %s: more media than one page of 250", productID)
	}
	known := map[string]mediaNode{}
	for _, n := range data.Nodes {
		if n != nil && n.ID != "" {
			known[n.ID] = *n
		}
	}
	out := &Product{ID: p.ID, Title: p.Title, Media: make([]Media, 0, len(p.Media.Nodes))}
	for i, n := range p.Media.Nodes {
		m := Media{ID: n.ID, Position: i}
		if d, ok := known[n.ID]; ok {
			m = d.media(i)
		}
		out.Media = append(out.Media, m)
	}
	return out, nil
}

// ProductMediaByID returns the product with only those of the named media
// that are on it now, with their details; their Position is -1 (the
// gallery's order is not read). Its cost does not grow with the gallery: 3
// points and 2 a named media. A product that does not exist is ErrNotFound.
func (c *Client) ProductMediaByID(ctx context.Context, productID string, ids ...string) (*Product, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("read media of %s: no media named", productID)
	}
	terms := make([]string, len(ids))
	for i, id := range ids {
		n, ok := numericID(id)
		if !ok {
			return nil, fmt.Errorf("read media of %s: %q is not a media id", productID, id)
		}
		terms[i] = "id:" + n
	}
	var data struct {
		Product *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
			Media struct {
				Nodes []mediaNode `json:"nodes"`
			} `json:"media"`
		} `json:"product"`
	}
	vars := map[string]any{"id": productID, "query": strings.Join(terms, " OR "), "first": len(ids)}
	if err := c.do(ctx, "ProductMediaByID", docProductMediaByID, vars, &data); err != nil {
		return nil, fmt.Errorf("read media of %s: %w", productID, err)
	}
	p := data.Product
	if p == nil {
		return nil, fmt.Errorf("read media of %s: %w", productID, ErrNotFound)
	}
	out := &Product{ID: p.ID, Title: p.Title}
	for _, n := range p.Media.Nodes {
		if n.ID != "" && slices.Contains(ids, n.ID) {
			out.Media = append(out.Media, n.media(-1))
		}
	}
	return out, nil
}

// numericID is the number that ends a gid (gid://shopify/MediaImage/123 → 123).
func numericID(gid string) (string, bool) {
	n := gid[strings.LastIndexByte(gid, '/')+1:]
	if !strings.HasPrefix(gid, "gid://shopify/") || n == "" || len(n) > 18 || strings.Trim(n, "0123456789") != "" {
		return "", false
	}
	return n, true
}

// ProductVariants returns every variant of the product with the media
// linked to it, or ErrNotFound.
func (c *Client) ProductVariants(ctx context.Context, productID string) ([]Variant, error) {
	var out []Variant
	vars := map[string]any{"id": productID}
	for {
		var data struct {
			Product *struct {
				Variants variantConn `json:"variants"`
			} `json:"product"`
		}
		if err := c.do(ctx, "ProductVariants", docProductVariants, vars, &data); err != nil {
			return nil, fmt.Errorf("get product %s variants: %w", productID, err)
		}
		if data.Product == nil {
			return nil, fmt.Errorf("get product %s variants: %w", productID, ErrNotFound)
		}
		out = append(out, data.Product.Variants.variants()...)
		pi := data.Product.Variants.PageInfo
		if !pi.HasNextPage {
			return out, nil
		}
		vars["after"] = pi.EndCursor
	}
}
