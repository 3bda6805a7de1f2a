package demo

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The whole demo runs through main's serve; see main_demo_test.go. These
// are the parts that do not need a server.

func TestParseFlags(t *testing.T) {
	f, err := parseFlags(nil, io.Discard)
	if err != nil || f.products != defaultProducts || f.out != defaultOut || f.keep || f.review || f.databaseURL != "" {
		t.Fatalf("defaults: %+v %v", f, err)
	}
	f, err = parseFlags([]string{"--products", "50", "--keep", "--review", "--out", "x", "--database-url", "mysql://u@h/db"}, io.Discard)
	if err != nil || f.products != 50 || !f.keep || !f.review || f.out != "x" || f.databaseURL != "mysql://u@h/db" {
		t.Fatalf("all flags: %+v %v", f, err)
	}
	for _, args := range [][]string{{"--products", "0"}, {"--products", "51"}, {"extra"}, {"--nope"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct{ raw, listen, url string }{
		{"127.0.0.1:18080", "127.0.0.1:18080", "http://127.0.0.1:18080"},
		{":18080", ":18080", "http://127.0.0.1:18080"},
		{"localhost:18080", "localhost:18080", "http://localhost:18080"},
	} {
		listen, u, err := listenAddr(tc.raw)
		if err != nil || listen != tc.listen || u != tc.url {
			t.Errorf("%q: %q %q %v", tc.raw, listen, u, err)
		}
	}
	listen, u, err := listenAddr("")
	if err != nil || !strings.HasPrefix(listen, "127.0.0.1:") || listen == "127.0.0.1:0" || u != "http://"+listen {
		t.Errorf("free port: %q %q %v", listen, u, err)
	}
	if _, _, err := listenAddr("10.1.2.3:8080"); err == nil {
		t.Error("a non-loopback host was accepted: callbacks would go to 127.0.0.1")
	}
}

func TestRunServeFails(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), Options{
		Args: []string{"--out", t.TempDir()}, Stdout: &out,
		Serve: func(context.Context, func(string) string, io.Writer, chan<- string, func(string) string) error {
			return errors.New("invalid configuration: boom")
		},
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("want serve's error, got %v", err)
	}
}

// The fake editor takes what is within 48 levels of the dominant border
// colour; the texture must stay well inside that.
func TestTextureStaysNearTheBase(t *testing.T) {
	base := rgb(200, 100, 50)
	rng := rand.New(rand.NewPCG(1, 2))
	for y := range photoH {
		for x := range photoW {
			c := texture(base, x, y, rng)
			for _, d := range []int{int(c.R) - 200, int(c.G) - 100, int(c.B) - 50} {
				if d < -12 || d > 12 {
					t.Fatalf("(%d,%d): %v is %d from the base", x, y, c, d)
				}
			}
		}
	}
}

func TestPhotosSeparateProductFromBackground(t *testing.T) {
	for i := range len(catalogue) * 2 {
		s := sampleAt(i)
		for k, l := range s.looks {
			data, err := photoJPEG(s, l, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != photoW || b.Dy() != photoH {
				t.Fatalf("%s: %v", s.title, b)
			}
			// Every border pixel is background, close to the base colour.
			for x := range photoW {
				for _, y := range []int{0, photoH - 1} {
					if d := dist(img.At(x, y), l.bg); d > 24 {
						t.Fatalf("%s look %d: border (%d,%d) is %d from the background", s.title, k, x, y, d)
					}
				}
			}
			// Every ink the product is painted in is far from the
			// background, so the editor keeps the product.
			for _, ink := range l.inks {
				if d := dist(ink, l.bg); d < 60 {
					t.Errorf("%s look %d: ink %v only %d from background %v", s.title, k, ink, d, l.bg)
				}
			}
		}
	}
}

// dist is the largest per-channel difference.
func dist(a, b color.Color) int {
	ar, ag, ab, _ := a.RGBA()
	br, bg, bb, _ := b.RGBA()
	d := 0
	for _, p := range [][2]uint32{{ar, br}, {ag, bg}, {ab, bb}} {
		d = max(d, abs(int(p[0]>>8)-int(p[1]>>8)))
	}
	return d
}

func abs(v int) int { return max(v, -v) }

func TestSampleTitlesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := range maxProducts {
		s := sampleAt(i)
		if seen[s.title] {
			t.Fatalf("product %d repeats the title %q", i, s.title)
		}
		seen[s.title] = true
	}
}

func TestContactSheetLayout(t *testing.T) {
	pair := [2]image.Image{image.NewRGBA(image.Rect(0, 0, 480, 360)), image.NewRGBA(image.Rect(0, 0, 480, 360))}
	one := contactSheet([][2]image.Image{pair, pair, pair})
	if b := one.Bounds(); b.Dx() != 2*sheetMargin+2*240+sheetGap || b.Dy() != 2*sheetMargin+3*sheetRowH+2*sheetGap {
		t.Errorf("3 pairs: %v, want one column of 3 rows", b)
	}
	pairs := make([][2]image.Image, 16)
	for i := range pairs {
		pairs[i] = pair
	}
	cellW := 2*240 + sheetGap
	if b := contactSheet(pairs).Bounds(); b.Dx() != 2*sheetMargin+2*cellW+cellGap || b.Dy() != 2*sheetMargin+8*sheetRowH+7*sheetGap {
		t.Errorf("16 pairs: %v, want two columns of 8 rows", b)
	}
}

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	p := newProgress(&out, 3, start)
	p.update([3]int{1, 0, 0}, start)
	p.update([3]int{1, 0, 0}, start) // no change, no line
	p.update([3]int{3, 1, 0}, start.Add(time.Second))
	p.update([3]int{3, 3, 3}, start.Add(3*time.Second))
	want := "" +
		"  submitted to RTB     1/3\n" +
		"  submitted to RTB     3/3   1.0s\n" +
		"  processed by RTB     1/3\n" +
		"  processed by RTB     3/3   3.0s\n" +
		"  written back         3/3   3.0s\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
