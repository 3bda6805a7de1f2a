package shopifytest

import (
	"image/color"
	"strings"
	"testing"
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
