package admin_test

import (
	"errors"
	"fmt"
	"image/color"
	"testing"

	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
)

// costOf is what the store charged for the last request of an operation.
func costOf(t *testing.T, s *shopifytest.Store, op string) float64 {
	t.Helper()
	reqs := s.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Operation == op {
			return reqs[i].ActualCost
		}
	}
	t.Fatalf("no %s request", op)
	return 0
}

func TestGalleryReadsOrderAndOnlyTheNamedMedia(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	p, err := f.client.Gallery(ctx(t), rec.ID, rec.MediaIDs[1], "gid://shopify/MediaImage/424242")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != rec.ID || p.Title != "Red shirt" || len(p.Media) != 2 || p.Variants != nil {
		t.Fatalf("gallery = %+v", p)
	}
	front, back := p.Media[0], p.Media[1]
	if front.ID != rec.MediaIDs[0] || front.Position != 0 || front.Status != "" || front.URL != "" {
		t.Errorf("an unnamed media has details: %+v", front)
	}
	if back.ID != rec.MediaIDs[1] || back.Position != 1 || back.Alt != "back" || back.Status != "READY" ||
		back.Filename != "back.jpg" || back.MimeType != "image/jpeg" || back.MediaContentType != "IMAGE" {
		t.Errorf("the named media = %+v", back)
	}
	// A point a media of the gallery, two a named one, one the product.
	if c := costOf(t, f.store, "ProductGallery"); c > 1+2+2+2 {
		t.Errorf("the gallery of 2 media cost %.0f points", c)
	}
	if _, err := f.client.Gallery(ctx(t), "gid://shopify/Product/424242"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("missing product: err = %v", err)
	}
}

// GalleryOrder reads the same order and the named media's alt text and
// status, without their image: a point less a named media.
func TestGalleryOrderLeavesTheImagesOut(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	p, err := f.client.GalleryOrder(ctx(t), rec.ID, rec.MediaIDs[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Media) != 2 || p.Media[0].ID != rec.MediaIDs[0] || p.Media[1].ID != rec.MediaIDs[1] || p.Media[1].Position != 1 {
		t.Fatalf("gallery = %+v", p.Media)
	}
	if back := p.Media[1]; back.Alt != "back" || back.Status != "READY" || back.URL != "" || back.Filename != "" {
		t.Errorf("the named media = %+v, want its alt and status only", back)
	}
	full := costOf(t, f.store, "ProductGalleryOrder")
	if _, err := f.client.Gallery(ctx(t), rec.ID, rec.MediaIDs[1]); err != nil {
		t.Fatal(err)
	}
	if c := costOf(t, f.store, "ProductGallery"); full != c-1 {
		t.Errorf("GalleryOrder cost %.0f points, Gallery %.0f: want one less", full, c)
	}
	if _, err := f.client.GalleryOrder(ctx(t), "gid://shopify/Product/424242"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("missing product: err = %v", err)
	}
}

func TestGalleryCostGrowsByAPointAMedia(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	np := shopifytest.NewProduct{Title: "Large"}
	for i := range 30 {
		np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprint("i", i, ".jpg"), Data: shopifytest.SampleJPEG(4, 4, color.White)})
	}
	rec, err := f.store.CreateProduct(shop, np)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.client.Gallery(ctx(t), rec.ID, rec.MediaIDs[29])
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Media) != 30 || p.Media[29].ID != rec.MediaIDs[29] || p.Media[29].Position != 29 {
		t.Fatalf("gallery of %d media, last %+v", len(p.Media), p.Media[len(p.Media)-1])
	}
	if c := costOf(t, f.store, "ProductGallery"); c > 1+2+30+2 {
		t.Errorf("the gallery of 30 media cost %.0f points, want at most %d", c, 1+2+30+2)
	}
}

// ProductMediaByID reads the named media of one product only, at a cost
// that does not grow with its gallery.
func TestProductMediaByID(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	np := shopifytest.NewProduct{Title: "Large"}
	for i := range 30 {
		np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprint("i", i, ".jpg"), Data: shopifytest.SampleJPEG(4, 4, color.White), Alt: fmt.Sprint("view ", i)})
	}
	rec, err := f.store.CreateProduct(shop, np)
	if err != nil {
		t.Fatal(err)
	}
	other := f.product(t)
	if _, err := f.client.WaitMediaReady(ctx(t), 0, rec.MediaIDs...); err != nil {
		t.Fatal(err)
	}
	p, err := f.client.ProductMediaByID(ctx(t), rec.ID, rec.MediaIDs[29])
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != rec.ID || len(p.Media) != 1 {
		t.Fatalf("product = %+v", p)
	}
	m := p.Media[0]
	if m.ID != rec.MediaIDs[29] || m.Alt != "view 29" || m.Status != "READY" || m.Filename != "i29.jpg" || m.MimeType != "image/jpeg" || m.Position != -1 {
		t.Errorf("media = %+v", m)
	}
	if c := costOf(t, f.store, "ProductMediaByID"); c > 3+2 {
		t.Errorf("one media of a 30-media product cost %.0f points, want at most 5", c)
	}
	// A media of another product, and a deleted one, are not on it.
	if err := f.store.DeleteMedia(shop, rec.ID, rec.MediaIDs[3]); err != nil {
		t.Fatal(err)
	}
	p, err = f.client.ProductMediaByID(ctx(t), rec.ID, rec.MediaIDs[3], other.MediaIDs[0], rec.MediaIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Media) != 1 || p.Media[0].ID != rec.MediaIDs[0] {
		t.Fatalf("media = %+v, want only %s", p.Media, rec.MediaIDs[0])
	}
	if _, err := f.client.ProductMediaByID(ctx(t), "gid://shopify/Product/424242", rec.MediaIDs[0]); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("missing product: err = %v", err)
	}
	if _, err := f.client.ProductMediaByID(ctx(t), rec.ID, "gid://shopify/MediaImage/1 OR title:x"); err == nil {
		t.Fatal("a malformed media id was sent in a search query")
	}
}

func TestMediaByID(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	if err := f.store.DeleteMedia(shop, rec.ID, rec.MediaIDs[1]); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.MediaByID(ctx(t), rec.MediaIDs...)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := got[rec.MediaIDs[0]]
	if len(got) != 1 || !ok || m.Alt != "front" || m.Status != "READY" || m.Filename != "front.png" || m.MimeType != "image/png" || m.Position != -1 {
		t.Fatalf("media = %+v, want only the front image (the back one was deleted)", got)
	}
	if c := costOf(t, f.store, "MediaByID"); c > 2*2 {
		t.Errorf("two media by id cost %.0f points", c)
	}
}

func TestProductVariants(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	vs, err := f.client.ProductVariants(ctx(t), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].ID != rec.VariantIDs[0] || len(vs[0].MediaIDs) != 1 || vs[0].MediaIDs[0] != rec.MediaIDs[0] || len(vs[1].MediaIDs) != 0 {
		t.Fatalf("variants = %+v", vs)
	}
	if _, err := f.client.ProductVariants(ctx(t), "gid://shopify/Product/424242"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("missing product: err = %v", err)
	}
}
