package sync

import (
	"bytes"
	stdimage "image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"rtbshopify/rtb"
)

func pngImage(t *testing.T, alpha uint8) *rtb.Image {
	t.Helper()
	img := stdimage.NewNRGBA(stdimage.Rect(0, 0, 8, 6))
	for y := range 6 {
		for x := range 8 {
			img.Set(x, y, color.NRGBA{uint8(30 * x), uint8(40 * y), 200, 255})
		}
	}
	img.Set(0, 0, color.NRGBA{255, 255, 255, alpha})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return &rtb.Image{Data: buf.Bytes(), ContentType: "image/png", Ext: ".png", Width: 8, Height: 6}
}

func decodeImage(t *testing.T, data []byte) (stdimage.Image, string) {
	t.Helper()
	img, format, err := stdimage.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return img, format
}

// The delivered image is fitted to the original's file where nothing is
// lost, keeping the original's extension exactly; where converting would
// lose something it stays as delivered, for a new media.
func TestFitToOriginal(t *testing.T) {
	opaque, clear := pngImage(t, 255), pngImage(t, 0)
	cases := []struct {
		name, filename, mime string
		img                  *rtb.Image
		inPlace              bool
		format, ext, why     string
	}{
		{"same format", "shot.Png", "image/png", opaque, true, "png", ".Png", "like the original"},
		{"opaque PNG into JPEG", "shot.JPEG", "image/jpeg", opaque, true, "jpeg", ".JPEG", "no transparency is lost"},
		{"transparency into JPEG", "shot.jpg", "image/jpeg", clear, false, "png", ".png", "transparency"},
		{"anything into WEBP, lossless", "shot.webp", "image/webp", clear, true, "webp", ".webp", "lossless WEBP"},
		{"few colours into GIF", "loop.gif", "image/gif", opaque, true, "gif", ".gif", "GIF"},
		{"no extension: the MIME type says JPEG", "IMG_0001", "image/jpeg", opaque, true, "jpeg", "", "JPEG"},
		{"unknown format", "scan.tiff", "image/tiff", opaque, false, "png", ".png", "unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := fitToOriginal(tc.img, tc.filename, tc.mime)
			if up.inPlace != tc.inPlace || up.ext != tc.ext || !strings.Contains(up.why, tc.why) {
				t.Fatalf("fit = in place %v, ext %q, why %q; want %v %q …%s…", up.inPlace, up.ext, up.why, tc.inPlace, tc.ext, tc.why)
			}
			got, format := decodeImage(t, up.data)
			if format != tc.format || up.mime != "image/"+tc.format {
				t.Fatalf("bytes are %s (%s), want %s", format, up.mime, tc.format)
			}
			if tc.format == "jpeg" {
				return // lossy by nature; opaque, so nothing the template asked for is lost
			}
			// Lossless: every pixel as delivered.
			want, _ := decodeImage(t, tc.img.Data)
			for y := range 6 {
				for x := range 8 {
					r1, g1, b1, a1 := got.At(x, y).RGBA()
					r2, g2, b2, a2 := want.At(x, y).RGBA()
					if a1 != a2 || a2 != 0 && (r1 != r2 || g1 != g2 || b1 != b2) {
						t.Fatalf("pixel %d,%d changed: %v → %v", x, y, want.At(x, y), got.At(x, y))
					}
				}
			}
		})
	}
}
