package shopifytest

import (
	"fmt"
	"image/color"
	"strings"
	"testing"
	"time"
)

// Shopify counts text limits in characters: a CJK or emoji alt text of 512
// characters (far more bytes) is accepted, 513 refused.
func TestAltLimitCountsCharacters(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	src := stage(t, s, tok, "a.png", "image/png", SamplePNG(2, 2, color.White))
	ok := strings.Repeat("猫", 511) + "🎉"
	r := gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src, "alt": ok}}})
	if dig(r.Data, "fileCreate", "userErrors", 0) != nil {
		t.Fatalf("512-character alt refused: %s", r.Raw)
	}
	src2 := stage(t, s, tok, "b.png", "image/png", SamplePNG(2, 2, color.White))
	r = gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src2, "alt": ok + "x"}}})
	if dig(r.Data, "fileCreate", "userErrors", 0, "code") != "ALT_VALUE_LIMIT_EXCEEDED" {
		t.Fatalf("513-character alt accepted: %s", r.Raw)
	}
}

// fileCreate keeps the source's extension exactly: a custom name must carry
// the same spelling, case included.
func TestFileCreateExtensionMustMatchExactly(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	src := stage(t, s, tok, "photo.jpeg", "image/jpeg", SampleJPEG(2, 2, color.White))
	for _, name := range []string{"copy.jpg", "copy.JPEG", "copy.png"} {
		r := gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src, "filename": name}}})
		if dig(r.Data, "fileCreate", "userErrors", 0, "code") != "MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE" {
			t.Errorf("%s from a .jpeg source accepted: %s", name, r.Raw)
		}
	}
	r := gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src, "filename": "copy.jpeg"}}})
	if dig(r.Data, "fileCreate", "userErrors", 0) != nil {
		t.Fatalf("copy.jpeg refused: %s", r.Raw)
	}
}

func TestCreateProductRefusesWhatShopifyRefuses(t *testing.T) {
	s := newStore(t, Options{})
	if _, err := s.CreateProduct(testShop, NewProduct{Title: strings.Repeat("é", 256)}); err == nil {
		t.Error("a 256-character title was accepted")
	}
	if _, err := s.CreateProduct(testShop, NewProduct{Title: strings.Repeat("é", 255)}); err != nil {
		t.Errorf("a 255-character title was refused: %v", err)
	}
	imgs := make([]NewImage, 251)
	for i := range imgs {
		imgs[i] = NewImage{Filename: "x.png", Data: SamplePNG(1, 1, color.White)}
	}
	if _, err := s.CreateProduct(testShop, NewProduct{Title: "many", Images: imgs}); err == nil {
		t.Error("251 media on one product were accepted")
	}
}

// fileUpdate replaces bytes only from a source spelled with the file's own
// extension: ".JPG" is not ".jpg".
func TestFileUpdateExtensionCaseMustMatch(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec, err := s.CreateProduct(testShop, NewProduct{Title: "shirt", Images: []NewImage{{Filename: "photo.jpg", Data: SampleJPEG(2, 2, color.White)}}})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, s, rec.ID)
	src := stage(t, s, tok, "photo.JPG", "image/jpeg", SampleJPEG(3, 3, color.Black))
	r := gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[0], "originalSource": src}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE" {
		t.Fatalf(".JPG source for a .jpg file accepted: %s", r.Raw)
	}
	src = stage(t, s, tok, "other.jpg", "image/jpeg", SampleJPEG(3, 3, color.Black))
	r = gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[0], "originalSource": src}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0) != nil {
		t.Fatalf(".jpg source for a .jpg file refused: %s", r.Raw)
	}
}

// A product holds at most 250 media, whichever mutation adds the 251st.
func TestMediaLimitOnUpdate(t *testing.T) {
	s := newStore(t, Options{MediaProcessingDelay: time.Millisecond})
	tok := s.IssueAccessToken(testShop, 0)
	imgs := make([]NewImage, 250)
	for i := range imgs {
		imgs[i] = NewImage{Filename: fmt.Sprintf("p%d.png", i), Data: SamplePNG(1, 1, color.White)}
	}
	full, err := s.CreateProduct(testShop, NewProduct{Title: "full", Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateProduct(testShop, NewProduct{Title: "other", Images: []NewImage{{Filename: "extra.png", Data: SamplePNG(1, 1, color.Black)}}})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, s, full.ID)
	waitReady(t, s, other.ID)

	r := gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": other.MediaIDs[0], "referencesToAdd": []any{full.ID}}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "PRODUCT_MEDIA_LIMIT_EXCEEDED" {
		t.Fatalf("251st media through fileUpdate accepted: %s", r.Raw)
	}
	// A media already on the product is no new media.
	r = gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": full.MediaIDs[0], "referencesToAdd": []any{full.ID}}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0) != nil {
		t.Fatalf("re-adding a media of a full product refused: %s", r.Raw)
	}

	src := stage(t, s, tok, "new.png", "image/png", SamplePNG(1, 1, color.Black))
	r = gql(t, s, tok, docProductUpdate, map[string]any{"p": map[string]any{"id": full.ID},
		"m": []any{map[string]any{"originalSource": src, "mediaContentType": "IMAGE"}}})
	if errs, _ := dig(r.Data, "productUpdate", "userErrors").([]any); len(errs) == 0 {
		t.Fatalf("251st media through productUpdate accepted: %s", r.Raw)
	}
	if n := len(s.Product(testShop, full.ID).Media); n != 250 {
		t.Fatalf("product holds %d media", n)
	}
}

const docProductUpdate = `mutation($p: ProductUpdateInput!, $m: [CreateMediaInput!]) { productUpdate(product: $p, media: $m) { product { id title } userErrors { field message } } }`

// Text limits count characters on every path: fileUpdate's alt, productUpdate's
// title and the merchant's own alt edit.
func TestUpdateTextLimitsCountCharacters(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	waitReady(t, s, rec.ID)

	alt := strings.Repeat("猫", 512)
	r := gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[0], "alt": alt}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0) != nil {
		t.Fatalf("512-character alt refused: %s", r.Raw)
	}
	r = gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[0], "alt": alt + "猫"}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "ALT_VALUE_LIMIT_EXCEEDED" {
		t.Fatalf("513-character alt accepted: %s", r.Raw)
	}

	title := strings.Repeat("שלום", 64) // 256 characters, right to left
	r = gql(t, s, tok, docProductUpdate, map[string]any{"p": map[string]any{"id": rec.ID, "title": title}})
	if errs, _ := dig(r.Data, "productUpdate", "userErrors").([]any); len(errs) == 0 {
		t.Fatalf("256-character title accepted: %s", r.Raw)
	}
	r = gql(t, s, tok, docProductUpdate, map[string]any{"p": map[string]any{"id": rec.ID, "title": title[len("ש"):]}})
	if dig(r.Data, "productUpdate", "product", "title") != title[len("ש"):] {
		t.Fatalf("255-character title refused: %s", r.Raw)
	}

	if err := s.SetAlt(testShop, rec.MediaIDs[1], alt+"🎉"); err == nil {
		t.Error("the merchant set a 513-character alt")
	}
	if err := s.SetAlt(testShop, rec.MediaIDs[1], alt); err != nil {
		t.Errorf("the merchant could not set a 512-character alt: %v", err)
	}
	if got := s.Product(testShop, rec.ID).Media[1].Alt; got != alt {
		t.Errorf("alt is %q", got)
	}
}

// Shopify changes only READY files: a FAILED one is refused like a processing one.
func TestFileUpdateRefusesFailedFile(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	s.FailNextProcessing(1)
	rec, err := s.CreateProduct(testShop, NewProduct{Title: "shirt", Images: []NewImage{{Filename: "broken.png", Data: SamplePNG(2, 2, color.White)}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitReady(t, s, rec.ID).Media[0].Status; st != "FAILED" {
		t.Fatalf("media is %s", st)
	}
	src := stage(t, s, tok, "broken.png", "image/png", SamplePNG(2, 2, color.Black))
	for _, in := range []map[string]any{
		{"referencesToRemove": []any{rec.ID}},
		{"alt": "x"},
		{"originalSource": src}, // last: accepted, it would start processing again
	} {
		in["id"] = rec.MediaIDs[0]
		r := gql(t, s, tok, docUpdate, map[string]any{"f": []any{in}})
		if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "NON_READY_STATE" {
			t.Errorf("%v on a FAILED file: %s", in, r.Raw)
		}
	}
	if m := s.Product(testShop, rec.ID).Media; len(m) != 1 || m[0].Status != "FAILED" || m[0].Alt != "" {
		t.Errorf("a refused update changed the file: %+v", m)
	}
}
