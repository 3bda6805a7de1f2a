package shopifytest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
)

// NewProduct describes a product for CreateProduct.
type NewProduct struct {
	Title, ProductType, Vendor string
	Tags                       []string
	Images                     []NewImage
	Variants                   []NewVariant // none → one "Default Title" variant
}

// NewImage is an image of a NewProduct; Filename decides the CDN name and extension.
type NewImage struct {
	Filename string
	Data     []byte
	Alt      string
}

// NewVariant is a variant of a NewProduct; ImageIndex links it to Images[i] (-1: none).
type NewVariant struct {
	Title      string
	ImageIndex int
}

// ProductRecord holds the ids CreateProduct assigned.
type ProductRecord struct {
	ID         string   // gid://shopify/Product/N
	MediaIDs   []string // in Images order
	VariantIDs []string // in Variants order
}

// CreateProduct adds a product as a merchant would. Its media are processed asynchronously like
// uploaded images (UPLOADED → PROCESSING → READY/FAILED); variant links are set at once, as the
// admin does. The product is ACTIVE.
func (s *Store) CreateProduct(shop string, np NewProduct) (*ProductRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The admin refuses what the API refuses.
	if tooLong(np.Title, maxTitle) {
		return nil, fmt.Errorf("shopifytest: title of %d characters is over Shopify's %d", utf8.RuneCountInString(np.Title), maxTitle)
	}
	if len(np.Images) > maxProductMedia {
		return nil, fmt.Errorf("shopifytest: %d images is over Shopify's %d media per product", len(np.Images), maxProductMedia)
	}
	for _, img := range np.Images {
		if tooLong(img.Alt, maxAlt) {
			return nil, fmt.Errorf("shopifytest: alt text of %d characters is over Shopify's %d", utf8.RuneCountInString(img.Alt), maxAlt)
		}
	}
	sh := s.addShopLocked(shop)
	now := s.opts.Now()
	p := &product{
		id: s.newID(), title: np.Title, productType: np.ProductType, vendor: np.Vendor, status: "ACTIVE",
		tags: append([]string(nil), np.Tags...), createdAt: now, updatedAt: now,
	}
	rec := &ProductRecord{ID: gid("Product", p.id)}
	for _, img := range np.Images {
		if img.Filename == "" {
			return nil, fmt.Errorf("shopifytest: image of %q has no filename", np.Title)
		}
		f := s.newFile(sh, sh.uniqueName(img.Filename), img.Alt)
		data := append([]byte(nil), img.Data...)
		s.process(f, "upload:"+img.Filename, func() ([]byte, error) { return data, nil })
		p.media = append(p.media, f.id)
		rec.MediaIDs = append(rec.MediaIDs, gid("MediaImage", f.id))
	}
	vs := np.Variants
	if len(vs) == 0 {
		vs = []NewVariant{{Title: "Default Title", ImageIndex: -1}}
	}
	for _, nv := range vs {
		v := &variant{id: s.newID(), title: nv.Title}
		if nv.ImageIndex >= 0 {
			if nv.ImageIndex >= len(p.media) {
				return nil, fmt.Errorf("shopifytest: variant %q links to image %d of %d", nv.Title, nv.ImageIndex, len(p.media))
			}
			v.media = []int64{p.media[nv.ImageIndex]}
		}
		p.variants = append(p.variants, v)
		rec.VariantIDs = append(rec.VariantIDs, gid("ProductVariant", v.id))
	}
	sh.products[p.id] = p
	return rec, nil
}

// SetProductUpdated sets a product's updatedAt (reconciliation tests).
func (s *Store) SetProductUpdated(shop, productID string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.productLocked(shop, productID)
	if err != nil {
		return err
	}
	p.updatedAt = t
	return nil
}

func (s *Store) productLocked(shop, productID string) (*product, error) {
	sh := s.shops[shop]
	if sh == nil {
		return nil, fmt.Errorf("shopifytest: unknown shop %s", shop)
	}
	id, _ := parseGID(productID, "Product")
	p := sh.products[id]
	if p == nil {
		return nil, fmt.Errorf("shopifytest: unknown product %s in %s", productID, shop)
	}
	return p, nil
}

// ProductSnapshot is a product as the store holds it, for assertions.
type ProductSnapshot struct {
	ID, Title            string
	UpdatedAt, CreatedAt time.Time
	Media                []MediaSnapshot   // in display order
	Variants             []VariantSnapshot // in order
	Files                []FileSnapshot    // every file of the shop, by id
	Found                bool              // false when the product does not exist
}

// MediaSnapshot is one product media.
type MediaSnapshot struct {
	ID, Filename, Alt, Status, URL, MimeType string
	Data                                     []byte // current bytes (nil until READY)
	Version                                  int
}

// VariantSnapshot is a variant with its linked media ids.
type VariantSnapshot struct {
	ID, Title string
	MediaIDs  []string
}

// FileSnapshot is an entry of Files; ProductIDs lists the products it is attached to.
type FileSnapshot struct {
	MediaSnapshot
	ProductIDs []string
}

// Product returns a snapshot of a product and of the shop's Files.
func (s *Store) Product(shop, productID string) ProductSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.productLocked(shop, productID)
	if err != nil {
		return ProductSnapshot{}
	}
	sh := s.shops[shop]
	snap := ProductSnapshot{ID: productID, Title: p.title, UpdatedAt: p.updatedAt, CreatedAt: p.createdAt, Found: true}
	for _, id := range p.media {
		snap.Media = append(snap.Media, s.mediaSnap(sh, sh.files[id]))
	}
	for _, v := range p.variants {
		vs := VariantSnapshot{ID: gid("ProductVariant", v.id), Title: v.title}
		for _, m := range v.media {
			vs.MediaIDs = append(vs.MediaIDs, gid("MediaImage", m))
		}
		snap.Variants = append(snap.Variants, vs)
	}
	ids := make([]int64, 0, len(sh.files))
	for id := range sh.files {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fs := FileSnapshot{MediaSnapshot: s.mediaSnap(sh, sh.files[id])}
		for _, q := range sh.productOf(id) {
			fs.ProductIDs = append(fs.ProductIDs, gid("Product", q.id))
		}
		sort.Strings(fs.ProductIDs)
		snap.Files = append(snap.Files, fs)
	}
	return snap
}

func (s *Store) mediaSnap(sh *shopState, f *file) MediaSnapshot {
	m := MediaSnapshot{ID: gid("MediaImage", f.id), Filename: f.filename, Alt: f.alt, Status: f.status, Version: f.version}
	if f.status == "READY" {
		m.URL, m.MimeType, m.Data = s.cdnURL(sh, f), f.mime, append([]byte(nil), f.data...)
	}
	return m
}

// SamplePNG returns a small valid PNG of the given size (tests and demo fixtures).
func SamplePNG(w, h int, c color.Color) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// SampleJPEG returns a small valid JPEG of the given size.
func SampleJPEG(w, h int, c color.Color) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, nil)
	return buf.Bytes()
}
