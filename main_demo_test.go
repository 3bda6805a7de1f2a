package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"rtbshopify/models/modelstest"
	"rtbshopify/sync/demo"
)

// doneRow is a row of the demo's final table for an image written back.
var doneRow = regexp.MustCompile(`(?m)^\s+\d\d\s+.+\s+\d+/\d+\s+done\s+\d+$`)

// TestDemo runs `rtbshopify demo` as a newcomer would, with two products:
// one with two images and a variant on the second, one with one image.
func TestDemo(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "demo-output")
			args := []string{"demo", "--products", "2", "--out", out}
			if name == "mysql" {
				args = append(args, "--database-url", modelstest.NewURL(t, "mysql"))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			if err := run(ctx, args, getenv(nil), &stdout, &stderr); err != nil {
				t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
			}
			text := stdout.String()
			if rows := doneRow.FindAllString(text, -1); len(rows) != 3 {
				t.Fatalf("want 3 images done in the table, got %d:\n%s", len(rows), text)
			}
			if !strings.Contains(text, "All 3 images written back") {
				t.Errorf("no closing line:\n%s", text)
			}
			// A pipe is not a terminal: plain lines, no carriage returns.
			if strings.Contains(text, "\r") {
				t.Errorf("progress redrawn in place on a non-terminal:\n%q", text)
			}

			for n := 1; n <= 3; n++ {
				before := readFile(t, filepath.Join(out, fmt.Sprintf("%02d-before.jpg", n)))
				after := readFile(t, filepath.Join(out, fmt.Sprintf("%02d-after.jpg", n)))
				if bytes.Equal(before, after) {
					t.Errorf("image %02d: before and after are the same bytes", n)
				}
			}
			f, err := os.Open(filepath.Join(out, "contact-sheet.png"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sheet, err := png.Decode(f)
			if err != nil {
				t.Fatalf("contact sheet: %v", err)
			}
			if b := sheet.Bounds(); b.Dx() < 300 || b.Dy() < 3*100 {
				t.Errorf("contact sheet is %v, too small for 3 rows of before | after", b)
			}

			// The temporary SQLite database is gone once the demo exits.
			if m := regexp.MustCompile(`sqlite:(\S+)/demo\.db`).FindStringSubmatch(text); m != nil {
				if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
					t.Errorf("temporary directory %s still exists (%v)", m[1], err)
				}
			} else if name == "sqlite" {
				t.Errorf("the output does not name the temporary database:\n%s", text)
			}
		})
	}
}

// TestDemoTimeout: when the pipeline is not done in time the demo fails
// and says which images are not written back and where they are.
func TestDemoTimeout(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	err := demo.Run(context.Background(), demo.Options{
		Args:   []string{"--products", "1", "--out", t.TempDir()},
		Stdout: &stdout, Serve: serve,
		Timeout: 1500 * time.Millisecond, // an image spends ~1.3 s at RTB alone
	})
	if err == nil {
		t.Fatalf("demo succeeded within its timeout:\n%s", &stdout)
	}
	msg := err.Error()
	for _, want := range []string{"not every image was written back within 1.5s", "01 Classic Crew T-shirt (image 1/2)", "02 Classic Crew T-shirt (image 2/2)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return b
}
