package demo

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
)

// Product photos are drawn, not shipped: the demo needs no asset files and
// every run gets the same pictures. Each is a product silhouette in solid,
// darker colours on a light coloured background with a soft fabric-like
// texture. The texture stays within ±12 per channel of the base colour, so
// the fake editor's flood fill (48 levels from the dominant border colour)
// still takes the whole background, while the product is far enough from
// it to be kept: before and after differ visibly, as with the real service.

const (
	photoW, photoH = 480, 360
	textureWave    = 5 // amplitude of the smooth weave pattern
	textureNoise   = 7 // amplitude of the per-pixel grain; wave+grain ≤ 12
	jpegQuality    = 88
)

// region reports whether a point of the 480×360 design space is inside.
type region func(x, y float64) bool

// part is a region painted in one colour; later parts cover earlier ones.
type part struct {
	in region
	c  color.RGBA
}

// look is one colourway of a product: its background and the colours its
// parts are painted in, darkest first by convention.
type look struct {
	bg    color.RGBA
	inks  []color.RGBA
	label string // variant title
}

// sample is a product of the demo catalogue.
type sample struct {
	title, productType, vendor string
	tags                       []string
	draw                       func(inks []color.RGBA) []part
	looks                      []look // one photo per look; the second look gets its own variant
}

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{R: r, G: g, B: b, A: 255} }

// Primitives in design-space pixels.

func rect(x0, y0, x1, y1 float64) region {
	return func(x, y float64) bool { return x >= x0 && x <= x1 && y >= y0 && y <= y1 }
}

func ellipse(cx, cy, rx, ry float64) region {
	return func(x, y float64) bool {
		dx, dy := (x-cx)/rx, (y-cy)/ry
		return dx*dx+dy*dy <= 1
	}
}

func roundRect(x0, y0, x1, y1, r float64) region {
	return func(x, y float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx, cy := math.Max(x0+r, math.Min(x, x1-r)), math.Max(y0+r, math.Min(y, y1-r))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
	}
}

// poly is a polygon given as x, y pairs (even-odd rule).
func poly(xy ...float64) region {
	return func(x, y float64) bool {
		in := false
		n := len(xy) / 2
		for i, j := 0, n-1; i < n; j, i = i, i+1 {
			xi, yi, xj, yj := xy[2*i], xy[2*i+1], xy[2*j], xy[2*j+1]
			if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
				in = !in
			}
		}
		return in
	}
}

func union(rs ...region) region {
	return func(x, y float64) bool {
		for _, r := range rs {
			if r(x, y) {
				return true
			}
		}
		return false
	}
}

func minus(a, b region) region { return func(x, y float64) bool { return a(x, y) && !b(x, y) } }

func and(a, b region) region { return func(x, y float64) bool { return a(x, y) && b(x, y) } }

// catalogue is the demo's shop, in the order products are created. Two
// images and a variant pointing at the second show that write-back keeps
// positions and variant links.
var catalogue = []sample{
	{
		title: "Classic Crew T-shirt", productType: "T-shirts", vendor: "Demo Apparel", tags: []string{"cotton", "summer"},
		looks: []look{
			{bg: rgb(236, 214, 170), inks: []color.RGBA{rgb(38, 58, 110), rgb(210, 170, 40)}, label: "Navy"},
			{bg: rgb(176, 214, 226), inks: []color.RGBA{rgb(128, 28, 44), rgb(236, 188, 60)}, label: "Burgundy"},
		},
		draw: func(ink []color.RGBA) []part {
			body := poly(212, 70, 168, 86, 104, 142, 140, 186, 174, 164, 174, 304, 306, 304, 306, 164, 340, 186, 376, 142, 312, 86, 268, 70, 240, 96)
			return []part{{body, ink[0]}, {rect(186, 236, 294, 250), ink[1]}}
		},
	},
	{
		title: "Stoneware Mug", productType: "Kitchen", vendor: "Demo Home", tags: []string{"ceramic"},
		looks: []look{{bg: rgb(198, 226, 196), inks: []color.RGBA{rgb(150, 62, 40), rgb(240, 196, 120)}}},
		draw: func(ink []color.RGBA) []part {
			handle := minus(ellipse(300, 196, 48, 56), ellipse(300, 196, 28, 36))
			body := roundRect(160, 110, 300, 300, 16)
			return []part{{handle, ink[0]}, {body, ink[0]}, {rect(172, 160, 288, 182), ink[1]}}
		},
	},
	{
		title: "Insulated Water Bottle", productType: "Outdoor", vendor: "Demo Outdoors", tags: []string{"steel", "hiking"},
		looks: []look{
			{bg: rgb(226, 200, 222), inks: []color.RGBA{rgb(24, 96, 92), rgb(32, 32, 36)}, label: "Teal"},
			{bg: rgb(238, 232, 176), inks: []color.RGBA{rgb(60, 60, 150), rgb(32, 32, 36)}, label: "Indigo"},
		},
		draw: func(ink []color.RGBA) []part {
			body := union(roundRect(196, 130, 284, 326, 26), ellipse(240, 140, 44, 26), rect(220, 88, 260, 136))
			return []part{{body, ink[0]}, {roundRect(214, 56, 266, 96, 8), ink[1]}}
		},
	},
	{
		title: "Court Sneaker", productType: "Shoes", vendor: "Demo Footwear", tags: []string{"leather"},
		looks: []look{{bg: rgb(178, 206, 234), inks: []color.RGBA{rgb(150, 40, 30), rgb(44, 44, 50)}}},
		draw: func(ink []color.RGBA) []part {
			upper := poly(110, 258, 118, 206, 176, 192, 214, 150, 262, 146, 296, 196, 352, 212, 380, 240, 380, 258)
			return []part{{upper, ink[0]}, {roundRect(100, 250, 388, 284, 12), ink[1]}}
		},
	},
	{
		title: "Brass Desk Lamp", productType: "Lighting", vendor: "Demo Home", tags: []string{"brass", "office"},
		looks: []look{{bg: rgb(214, 212, 236), inks: []color.RGBA{rgb(120, 86, 20), rgb(40, 40, 40)}}},
		draw: func(ink []color.RGBA) []part {
			shade := poly(186, 70, 294, 70, 334, 168, 146, 168)
			return []part{{shade, ink[0]}, {rect(234, 168, 246, 300), ink[1]}, {ellipse(240, 304, 70, 16), ink[1]}}
		},
	},
	{
		title: "Canvas Backpack", productType: "Bags", vendor: "Demo Outdoors", tags: []string{"canvas", "travel"},
		looks: []look{
			{bg: rgb(240, 208, 190), inks: []color.RGBA{rgb(70, 90, 40), rgb(40, 50, 24)}, label: "Olive"},
			{bg: rgb(200, 232, 220), inks: []color.RGBA{rgb(110, 60, 30), rgb(60, 32, 14)}, label: "Tan"},
		},
		draw: func(ink []color.RGBA) []part {
			loop := minus(ellipse(240, 96, 36, 30), ellipse(240, 96, 22, 18))
			return []part{{loop, ink[1]}, {roundRect(166, 92, 314, 318, 34), ink[0]}, {roundRect(192, 212, 288, 296, 14), ink[1]}}
		},
	},
	{
		title: "Wool Baseball Cap", productType: "Hats", vendor: "Demo Apparel", tags: []string{"wool"},
		looks: []look{{bg: rgb(232, 222, 196), inks: []color.RGBA{rgb(30, 70, 60), rgb(20, 40, 34)}}},
		draw: func(ink []color.RGBA) []part {
			crown := and(ellipse(226, 222, 100, 96), rect(0, 0, photoW, 222))
			return []part{{crown, ink[0]}, {ellipse(318, 224, 92, 20), ink[1]}, {ellipse(226, 126, 10, 6), ink[1]}}
		},
	},
	{
		title: "Glazed Vase", productType: "Decor", vendor: "Demo Home", tags: []string{"ceramic"},
		looks: []look{{bg: rgb(206, 222, 240), inks: []color.RGBA{rgb(40, 60, 130), rgb(200, 150, 40)}}},
		draw: func(ink []color.RGBA) []part {
			body := union(ellipse(240, 236, 76, 82), rect(214, 104, 266, 176), ellipse(240, 104, 36, 10))
			return []part{{body, ink[0]}, {and(body, rect(0, 222, photoW, 238)), ink[1]}}
		},
	},
}

// photoJPEG renders one look of a sample; seed makes the texture differ
// between photos but not between runs.
func photoJPEG(s sample, l look, seed uint64) ([]byte, error) {
	parts := s.draw(l.inks)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	img := image.NewRGBA(image.Rect(0, 0, photoW, photoH))
	// Offsets of the 2×2 supersampling that softens the silhouette's edge.
	sub := [4][2]float64{{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}}
	for y := range photoH {
		for x := range photoW {
			bg := texture(l.bg, x, y, rng)
			var sum [3]int
			for _, o := range sub {
				c := bg
				for _, p := range parts {
					if p.in(float64(x)+o[0], float64(y)+o[1]) {
						c = p.c
					}
				}
				sum[0], sum[1], sum[2] = sum[0]+int(c.R), sum[1]+int(c.G), sum[2]+int(c.B)
			}
			img.SetRGBA(x, y, rgb(uint8(sum[0]/4), uint8(sum[1]/4), uint8(sum[2]/4)))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
		return nil, fmt.Errorf("encode photo of %s: %w", s.title, err)
	}
	return buf.Bytes(), nil
}

// texture is the background at a pixel: a soft diagonal weave plus grain,
// together never more than ±12 from the base colour.
func texture(base color.RGBA, x, y int, rng *rand.Rand) color.RGBA {
	wave := textureWave * math.Sin(float64(x+y)/9) * math.Cos(float64(x-y)/23)
	grain := rng.IntN(2*textureNoise+1) - textureNoise
	d := int(math.Round(wave)) + grain
	return rgb(clamp(int(base.R)+d), clamp(int(base.G)+d), clamp(int(base.B)+d))
}

func clamp(v int) uint8 { return uint8(max(0, min(255, v))) }
