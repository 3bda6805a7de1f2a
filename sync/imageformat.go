package sync

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"path"
	"runtime/debug"
	"strings"

	"github.com/HugoSmits86/nativewebp"
	_ "golang.org/x/image/webp" // Remove The Background may deliver WEBP
	"golang.org/x/sync/semaphore"

	"rtbshopify/rtb"
)

// Shopify swaps a media's bytes in place (same id, URL, position, variant
// links, alt text and SEO file name) only from a file with the original's
// extension. fitToOriginal turns the delivered image into the original's
// format when that loses nothing the merchant would see, so the in-place
// path applies as often as it can.

// upload is the processed image as it is sent to Shopify.
type upload struct {
	data    []byte
	ext     string // the file name's extension, exactly as it will be named
	mime    string
	inPlace bool   // the bytes fit the original's file
	why     string // which path and why, for the job's events
}

const jpegQuality = 95

// conversions bounds the pixels decoded for conversion at once across the
// process: a 20-megapixel image decodes to 80 MB, and every worker may be
// converting one. One image at Shopify's limit converts at a time, or
// several smaller ones.
var conversions = semaphore.NewWeighted(rtb.MaxImagePixels)

// formatOf maps an extension or a MIME type to an image format name
// ("jpeg", "png", "gif", "webp"), "" when unknown.
func formatOf(s string) string {
	switch strings.ToLower(s) {
	case ".jpg", ".jpeg", ".jpe", ".jfif", "image/jpeg", "image/jpg", "image/pjpeg":
		return "jpeg"
	case ".png", "image/png":
		return "png"
	case ".gif", "image/gif":
		return "gif"
	case ".webp", "image/webp":
		return "webp"
	}
	return ""
}

func mimeOfFormat(f string) string {
	if f == "" {
		return "image/jpeg"
	}
	return "image/" + f
}

// originalFormat is the format of the original file: from its extension,
// else (a name without one) from the MIME type Shopify reports.
func originalFormat(filename, mime string) string {
	if f := formatOf(path.Ext(filename)); f != "" {
		return f
	}
	if path.Ext(filename) == "" {
		return formatOf(mime)
	}
	return ""
}

// delivered is the processed image uploaded as it came, as a new media.
func delivered(img *rtb.Image, why string) upload {
	f := formatOf(img.ContentType)
	if f == "" {
		f = formatOf(img.Ext)
	}
	return upload{data: img.Data, ext: img.Ext, mime: mimeOfFormat(f), why: why}
}

// fitToOriginal decides how the processed image replaces the original
// named filename (Shopify's MIME type mime): in place, converted where
// needed, or as a new media where converting would lose something.
func fitToOriginal(img *rtb.Image, filename, mime string) upload {
	ext := path.Ext(filename)
	want := originalFormat(filename, mime)
	got := formatOf(img.ContentType)
	if got == "" {
		got = formatOf(img.Ext)
	}
	if want == "" {
		return delivered(img, "added as a new image: the original's format is unknown, so its file cannot take other bytes")
	}
	if want == got {
		return upload{data: img.Data, ext: ext, mime: mimeOfFormat(want), inPlace: true,
			why: "replaced in place: delivered as " + strings.ToUpper(got) + " like the original"}
	}
	// Converting is the one step that needs the pixels, 4 bytes each: it
	// waits for its share of the process's pixel budget.
	pixels := min(max(int64(img.Width)*int64(img.Height), 1), rtb.MaxImagePixels)
	conversions.Acquire(context.Background(), pixels)
	defer conversions.Release(pixels)
	if pixels >= rtb.MaxImagePixels/4 {
		// Tens of megabytes of pixels: collect before they are allocated
		// and once they are garbage, rather than whenever the collector
		// would, so they never stack on other garbage or the next
		// conversion's pixels. Two collections cost little next to a
		// decode this size.
		debug.FreeOSMemory()
		defer debug.FreeOSMemory()
	}
	return convert(img, ext, want, got)
}

// convert decodes the delivered image and encodes it as the original's
// format want, or says why it cannot without a loss the merchant would see.
func convert(img *rtb.Image, ext, want, got string) upload {
	src, _, err := stdimage.Decode(bytes.NewReader(img.Data))
	if err != nil {
		return delivered(img, fmt.Sprintf("added as a new image: the delivered %s could not be decoded for conversion (%v)", strings.ToUpper(got), err))
	}
	var buf bytes.Buffer
	how := ""
	switch want {
	case "png":
		err, how = png.Encode(&buf, src), "converted to PNG, which keeps every pixel"
	case "webp":
		err, how = nativewebp.Encode(&buf, src, nil), "converted to lossless WEBP, which keeps every pixel"
	case "jpeg":
		if !opaque(src) {
			return delivered(img, fmt.Sprintf("added as a new image: the delivered %s has transparency, which a JPEG original cannot keep", strings.ToUpper(got)))
		}
		err, how = jpeg.Encode(&buf, src, &jpeg.Options{Quality: jpegQuality}), "converted to JPEG (the image is opaque, so no transparency is lost)"
	case "gif":
		pal, ok := exactPalette(src)
		if !ok {
			return delivered(img, fmt.Sprintf("added as a new image: the delivered %s has more colours than a GIF original can hold", strings.ToUpper(got)))
		}
		p := stdimage.NewPaletted(src.Bounds(), pal)
		draw.Draw(p, p.Bounds(), src, src.Bounds().Min, draw.Src)
		err, how = gif.Encode(&buf, p, &gif.Options{NumColors: len(pal)}), "converted to GIF (it has few enough colours to lose none)"
	}
	if err != nil {
		return delivered(img, fmt.Sprintf("added as a new image: converting to %s failed (%v)", strings.ToUpper(want), err))
	}
	return upload{data: buf.Bytes(), ext: ext, mime: mimeOfFormat(want), inPlace: true,
		why: fmt.Sprintf("replaced in place: delivered as %s, %s", strings.ToUpper(got), how)}
}

// opaque reports whether every pixel is fully opaque.
func opaque(img stdimage.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a != 0xffff {
				return false
			}
		}
	}
	return true
}

// exactPalette returns the image's colours when a GIF can hold them all
// (at most 256, each fully opaque or fully transparent).
func exactPalette(img stdimage.Image) (color.Palette, bool) {
	if p, ok := img.(*stdimage.Paletted); ok {
		return p.Palette, true
	}
	seen := map[color.NRGBA]bool{}
	var pal color.Palette
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			if c.A != 0 && c.A != 0xff {
				return nil, false
			}
			if c.A == 0 {
				c = color.NRGBA{}
			}
			if !seen[c] {
				if len(pal) == 256 {
					return nil, false
				}
				seen[c] = true
				pal = append(pal, c)
			}
		}
	}
	return pal, true
}
