package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"rtbshopify/models/modelstest"
)

// TestDemoReview runs `rtbshopify demo --review`: every image is held for
// review, the demo merchant rejects one (whose product keeps its original)
// and approves the rest, which are written back.
func TestDemoReview(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "demo-output")
			args := []string{"demo", "--review", "--products", "2", "--out", out}
			if name == "mysql" {
				args = append(args, "--database-url", modelstest.NewURL(t, "mysql"))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			if err := run(ctx, args, getenv(nil), &stdout, &stderr); err != nil {
				t.Fatalf("demo --review: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
			}
			text := stdout.String()
			for _, want := range []string{"publish after review", "3 images held in Files for review", "approved the other 2 at once",
				"2 images approved and written back, 1 rejected"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			if rows := doneRow.FindAllString(text, -1); len(rows) != 2 {
				t.Errorf("want 2 images done in the table, got %d:\n%s", len(rows), text)
			}
			rejected := regexp.MustCompile(`(?m)^\s+(\d\d)\s+.+\s+\d+/\d+\s+rejected\s+\d+$`).FindStringSubmatch(text)
			if rejected == nil {
				t.Fatalf("no rejected image in the table:\n%s", text)
			}
			// The rejected image's product kept its original.
			before := readFile(t, filepath.Join(out, fmt.Sprintf("%s-before.jpg", rejected[1])))
			after := readFile(t, filepath.Join(out, fmt.Sprintf("%s-after.jpg", rejected[1])))
			if !bytes.Equal(before, after) {
				t.Errorf("image %s was rejected but its product changed", rejected[1])
			}
		})
	}
}
