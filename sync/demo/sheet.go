package demo

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	stddraw "image/draw"
	_ "image/gif" // the fake editor keeps a source's format
	_ "image/jpeg"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

// Contact sheet geometry: rows of before | after at a common height, on a
// dark ground so the editor's white backgrounds stand out.
const (
	sheetRowH   = 180
	sheetGap    = 12
	sheetMargin = 16
	cellGap     = 40 // between columns of pairs: wider than within a pair
)

var sheetGround = color.RGBA{R: 38, G: 40, B: 44, A: 255}

// extOf names a file after what its bytes are, not what they were meant
// to be: a template may turn a JPEG into a PNG.
func extOf(data []byte) string {
	switch http.DetectContentType(data) {
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	}
	return ".jpg"
}

// writeOutputs writes NN-before/NN-after for every image and the contact
// sheet into dir, replacing the files of an earlier run, and returns the
// sheet's path.
func writeOutputs(dir string, imgs []*demoImage) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	// An earlier run with more products left higher numbers behind.
	for _, pat := range []string{"[0-9][0-9]-before.*", "[0-9][0-9]-after.*"} {
		old, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range old {
			os.Remove(f)
		}
	}
	var pairs [][2]image.Image
	for _, im := range imgs {
		for _, side := range []struct {
			name string
			data []byte
		}{{"before", im.before}, {"after", im.after}} {
			if len(side.data) == 0 {
				return "", fmt.Errorf("image %02d (%s) has no %s bytes", im.n, im.product, side.name)
			}
			name := filepath.Join(dir, fmt.Sprintf("%02d-%s%s", im.n, side.name, extOf(side.data)))
			if err := os.WriteFile(name, side.data, 0o644); err != nil {
				return "", fmt.Errorf("write %s: %w", name, err)
			}
		}
		b, _, err := image.Decode(bytes.NewReader(im.before))
		if err != nil {
			return "", fmt.Errorf("decode image %02d before: %w", im.n, err)
		}
		a, _, err := image.Decode(bytes.NewReader(im.after))
		if err != nil {
			return "", fmt.Errorf("decode image %02d after: %w", im.n, err)
		}
		pairs = append(pairs, [2]image.Image{b, a})
	}
	sheet := contactSheet(pairs)
	var buf bytes.Buffer
	if err := png.Encode(&buf, sheet); err != nil {
		return "", fmt.Errorf("encode contact sheet: %w", err)
	}
	path := filepath.Join(dir, "contact-sheet.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// contactSheet lays out the pairs as before | after cells, each image
// scaled to sheetRowH keeping its aspect ratio. Many pairs wrap into
// several columns of cells, so the sheet stays roughly as wide as tall.
func contactSheet(pairs [][2]image.Image) *image.RGBA {
	scaledW := func(img image.Image) int {
		b := img.Bounds()
		return max(1, b.Dx()*sheetRowH/max(1, b.Dy()))
	}
	// Every before and every after gets the widest one's column, so the
	// eye can run down a column and compare.
	colW := [2]int{1, 1}
	for _, p := range pairs {
		colW[0], colW[1] = max(colW[0], scaledW(p[0])), max(colW[1], scaledW(p[1]))
	}
	cols := max(1, int(math.Round(math.Sqrt(float64(len(pairs))/4))))
	rows := (len(pairs) + cols - 1) / cols
	cellW := colW[0] + sheetGap + colW[1]
	w := 2*sheetMargin + cols*cellW + (cols-1)*cellGap
	h := 2*sheetMargin + rows*sheetRowH + max(0, rows-1)*sheetGap
	sheet := image.NewRGBA(image.Rect(0, 0, w, h))
	stddraw.Draw(sheet, sheet.Bounds(), image.NewUniform(sheetGround), image.Point{}, stddraw.Src)
	for i, p := range pairs {
		// Fill down the first column before starting the next: reading order.
		x := sheetMargin + (i/rows)*(cellW+cellGap)
		y := sheetMargin + (i%rows)*(sheetRowH+sheetGap)
		for c, img := range p {
			dst := image.Rect(x, y, x+scaledW(img), y+sheetRowH)
			// Transparent results are shown on white, as a storefront would.
			stddraw.Draw(sheet, dst, image.White, image.Point{}, stddraw.Src)
			draw.CatmullRom.Scale(sheet, dst, img, img.Bounds(), draw.Over, nil)
			x += colW[c] + sheetGap
		}
	}
	return sheet
}
