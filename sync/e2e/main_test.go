package e2e_test

import (
	"fmt"
	"os"
	"testing"

	"rtbshopify/sync/e2e/benchrec"
)

// TestMain prints the benchmark table once every benchmark of the run has
// recorded its figures (when BENCH_JSON names where they go).
func TestMain(m *testing.M) {
	code := m.Run()
	if err := benchrec.Finish(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark results:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
