package shopifytest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"strings"

	"github.com/HugoSmits86/nativewebp"
)

// What real stores hold, for end-to-end tests: every spelling of an image extension Shopify
// keeps (and names with none), titles and alt texts in CJK, right-to-left scripts and emoji up
// to Shopify's limits, images without alt text, galleries from none to the 250-media limit, and
// several variants sharing images.

// CatalogueOptions shape Catalogue. Zero values pick the defaults noted.
type CatalogueOptions struct {
	Seed     uint64 // the same seed gives the same catalogue
	Products int    // default 12
	// MaxMedia caps a gallery (default and at most 250, Shopify's limit); the first product
	// with images has exactly MaxMedia of them.
	MaxMedia int
}

// Extension spellings found in real stores, each with the format of its bytes.
var catalogueExts = []struct{ ext, format string }{
	{".jpg", "jpeg"}, {".jpeg", "jpeg"}, {".JPG", "jpeg"}, {".JPEG", "jpeg"}, {".Jpg", "jpeg"},
	{".png", "png"}, {".PNG", "png"}, {".Png", "png"}, {".gif", "gif"}, {".webp", "webp"},
	{"", "jpeg"}, {"", "png"},
}

var catalogueTitles = []string{
	"Linen shirt",
	"有机棉T恤 — 海军蓝",
	"ステンレス製マグカップ 350ml",
	"기본 후드티",
	"قميص قطني للرجال",
	"חולצת כותנה אורגנית",
	"Sneakers 👟🔥 limited",
	"Crème brûlée candle — édition spéciale",
	"👩🏽‍🍳 Chef's apron 🇮🇹",
	"Ελληνικό λάδι ελιάς",
}

var catalogueAlts = []string{
	"", // many images have none
	"Front view",
	"正面图",
	"商品の背面",
	"منظر أمامي للمنتج",
	"מבט מהצד",
	"Detail 🔍✨",
	"Vue de dos, coloris « sable »",
	"", // again: no alt is common
}

// Catalogue returns products as a merchant's store holds them.
func Catalogue(o CatalogueOptions) []NewProduct {
	if o.Products <= 0 {
		o.Products = 12
	}
	if o.MaxMedia <= 0 || o.MaxMedia > maxProductMedia {
		o.MaxMedia = maxProductMedia
	}
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	sizes := []int{0, o.MaxMedia, 1, 2, 3, 5, 8, 1, 4, 2, 6, 3}
	out := make([]NewProduct, 0, o.Products)
	for i := range o.Products {
		n := min(sizes[i%len(sizes)], o.MaxMedia)
		title := catalogueTitles[i%len(catalogueTitles)]
		switch i % 5 {
		case 3: // as long as Shopify allows, in a multi-byte script
			title = longText(title+" ", maxTitle)
		case 4:
			title += fmt.Sprintf(" #%d", i)
		}
		np := NewProduct{Title: title, ProductType: "Catalogue", Vendor: "Mixed"}
		for k := range n {
			e := catalogueExts[(i+k)%len(catalogueExts)]
			alt := catalogueAlts[r.IntN(len(catalogueAlts))]
			if k == 1 && i%3 == 0 {
				alt = longText("替代文字 🌸 ", maxAlt) // the longest alt Shopify takes
			}
			base := fmt.Sprintf("p%d-photo-%d", i, k)
			if k%4 == 3 {
				base = "IMG_" + fmt.Sprint(1000+k) // camera names repeat across products
			}
			bg := color.RGBA{uint8(150 + r.IntN(100)), uint8(150 + r.IntN(100)), uint8(150 + r.IntN(100)), 255}
			np.Images = append(np.Images, NewImage{Filename: base + e.ext, Data: SamplePhoto(e.format, bg), Alt: alt})
		}
		// Variants: none linked, several sharing one image, others on other images.
		nv := r.IntN(5)
		for v := range nv {
			idx := -1
			if n > 0 && v%3 != 2 {
				idx = r.IntN(min(n, 4))
			}
			np.Variants = append(np.Variants, NewVariant{Title: fmt.Sprintf("Option %d", v+1), ImageIndex: idx})
		}
		out = append(out, np)
	}
	return out
}

// longText repeats s up to exactly limit characters.
func longText(s string, limit int) string {
	rs := []rune(strings.Repeat(s, limit/len([]rune(s))+1))
	return string(rs[:limit])
}

// SamplePhoto is a small photo in a format ("jpeg", "png", "gif" or "webp"): a dark product on a light background, so a
// background removal visibly changes it.
func SamplePhoto(format string, bg color.RGBA) []byte {
	const w, h = 48, 36
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := bg
			if x > w/3 && x < 2*w/3 && y > h/4 && y < 3*h/4 {
				c = color.RGBA{40, 40, 60, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	switch format {
	case "png":
		_ = png.Encode(&buf, img)
	case "gif":
		// Exact colours, no dithering: a GIF product shot has flat areas.
		p := image.NewPaletted(img.Bounds(), color.Palette{bg, color.RGBA{40, 40, 60, 255}})
		draw.Draw(p, p.Bounds(), img, image.Point{}, draw.Src)
		_ = gif.Encode(&buf, p, nil)
	case "webp":
		_ = nativewebp.Encode(&buf, img, nil)
	default:
		_ = jpeg.Encode(&buf, img, nil)
	}
	return buf.Bytes()
}
