package rtbtest

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"

	_ "golang.org/x/image/webp" // sources may be WEBP
)

// The fake's "editor": the background is whatever connects to the image
// border and stays close to the dominant border colour. Crude, but it makes
// before and after visibly different, which is what tests and the demo need.

const (
	maxSide     = 4472
	maxPixels   = 20_000_000
	colorTolMax = 48 // max per-channel difference from the border colour
	bucketShift = 3  // border colours are grouped in 32 levels per channel
	jpegQuality = 90
)

// removeBackground decodes src, clears its background (white, or transparent
// for transparent templates) and encodes the result: PNG for transparent
// templates, otherwise the source's format (WEBP becomes PNG: there is no
// WEBP encoder in the Go libraries).
func removeBackground(src []byte, transparent bool) (out []byte, ext, contentType string, err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return nil, "", "", fmt.Errorf("source is not an image: %w", err)
	}
	if cfg.Width > maxSide || cfg.Height > maxSide || cfg.Width*cfg.Height > maxPixels {
		return nil, "", "", fmt.Errorf("source is %d×%d, too large", cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, "", "", fmt.Errorf("decode source: %w", err)
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, "", "", errors.New("source image is empty")
	}
	rgba := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)

	mask := backgroundMask(rgba)
	fill := color.NRGBA{R: 255, G: 255, B: 255, A: 255}
	if transparent {
		fill = color.NRGBA{R: 255, G: 255, B: 255, A: 0}
	}
	for i, bg := range mask {
		if bg {
			o := i * 4
			rgba.Pix[o], rgba.Pix[o+1], rgba.Pix[o+2], rgba.Pix[o+3] = fill.R, fill.G, fill.B, fill.A
		}
	}

	var buf bytes.Buffer
	switch {
	case transparent || format == "png" || format == "webp":
		err, ext, contentType = png.Encode(&buf, rgba), ".png", "image/png"
	case format == "jpeg":
		err, ext, contentType = jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: jpegQuality}), ".jpg", "image/jpeg"
	case format == "gif":
		err, ext, contentType = gif.Encode(&buf, rgba, nil), ".gif", "image/gif"
	default:
		err, ext, contentType = png.Encode(&buf, rgba), ".png", "image/png"
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("encode result: %w", err)
	}
	return buf.Bytes(), ext, contentType, nil
}

// backgroundMask flood-fills (4-connected) from every border pixel close to
// the dominant border colour and returns which pixels were reached.
func backgroundMask(img *image.NRGBA) []bool {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	at := func(x, y int) [4]uint8 {
		o := y*img.Stride + x*4
		return [4]uint8{img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3]}
	}
	border := make([][2]int, 0, 2*(w+h))
	for x := 0; x < w; x++ {
		border = append(border, [2]int{x, 0}, [2]int{x, h - 1})
	}
	for y := 1; y < h-1; y++ {
		border = append(border, [2]int{0, y}, [2]int{w - 1, y})
	}
	ref := dominant(border, at)
	near := func(c [4]uint8) bool {
		for i := range 4 {
			d := int(c[i]) - int(ref[i])
			if d < -colorTolMax || d > colorTolMax {
				return false
			}
		}
		return true
	}

	mask := make([]bool, w*h)
	queue := make([]int32, 0, len(border))
	for _, p := range border {
		i := p[1]*w + p[0]
		if !mask[i] && near(at(p[0], p[1])) {
			mask[i] = true
			queue = append(queue, int32(i))
		}
	}
	for len(queue) > 0 {
		i := int(queue[len(queue)-1])
		queue = queue[:len(queue)-1]
		x, y := i%w, i/w
		for _, n := range [4][2]int{{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}} {
			if n[0] < 0 || n[1] < 0 || n[0] >= w || n[1] >= h {
				continue
			}
			j := n[1]*w + n[0]
			if !mask[j] && near(at(n[0], n[1])) {
				mask[j] = true
				queue = append(queue, int32(j))
			}
		}
	}
	return mask
}

// dominant is the mean colour of the most common coarse colour on the border.
func dominant(border [][2]int, at func(x, y int) [4]uint8) [4]uint8 {
	key := func(c [4]uint8) uint32 {
		return uint32(c[0]>>bucketShift)<<24 | uint32(c[1]>>bucketShift)<<16 | uint32(c[2]>>bucketShift)<<8 | uint32(c[3]>>bucketShift)
	}
	counts := map[uint32]int{}
	var best uint32
	for _, p := range border {
		k := key(at(p[0], p[1]))
		counts[k]++
		if counts[k] > counts[best] {
			best = k
		}
	}
	var sum [4]int
	n := 0
	for _, p := range border {
		c := at(p[0], p[1])
		if key(c) == best {
			for i := range 4 {
				sum[i] += int(c[i])
			}
			n++
		}
	}
	var out [4]uint8
	for i := range 4 {
		out[i] = uint8(sum[i] / max(n, 1))
	}
	return out
}
