// Package benchrec collects the figures the benchmarks print into one
// table and one JSON file, so a single run of every benchmark reads as one
// report. Benchmarks call Record; BENCH_JSON names the file the records go
// to (JSON lines while the run lasts; Finish rewrites it as one JSON
// array and prints the table).
package benchrec

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Env names the file the records are written to.
const Env = "BENCH_JSON"

// Figure is one measured number with its unit.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Result is one benchmark case's figures.
type Result struct {
	Benchmark string    `json:"benchmark"`
	Case      string    `json:"case,omitempty"`
	Database  string    `json:"database,omitempty"`
	Figures   []Figure  `json:"figures"`
	Note      string    `json:"note,omitempty"`
	At        time.Time `json:"at"`
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"goVersion"`
}

var mu sync.Mutex

// Record appends r to the file BENCH_JSON names; without it, it does
// nothing (the benchmark's own log lines still say everything).
func Record(r Result) error {
	path := os.Getenv(Env)
	if path == "" {
		return nil
	}
	r.At = time.Now().UTC().Truncate(time.Second)
	r.CPUs = runtime.NumCPU()
	r.GoVersion = runtime.Version()
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("benchmark results: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("benchmark results: %w", err)
	}
	return f.Close()
}

// Read returns the records in path, whether still JSON lines or already
// rewritten as one array.
func Read(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		var rs []Result
		if err := json.Unmarshal(data, &rs); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		return rs, nil
	}
	var rs []Result
	sc := bufio.NewScanner(strings.NewReader(trimmed))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// Finish rewrites the file BENCH_JSON names as one indented JSON array and
// prints every record in it as a table to w. It does nothing when the
// variable is unset or nothing was recorded.
func Finish(w io.Writer) error {
	path := os.Getenv(Env)
	if path == "" {
		return nil
	}
	rs, err := Read(path)
	if os.IsNotExist(err) || (err == nil && len(rs) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nbenchmark results (%d cases, %d CPUs, %s), also in %s\n", len(rs), rs[0].CPUs, rs[0].GoVersion, path)
	return Table(w, rs)
}

// Table prints records as aligned rows: benchmark, case, database and the
// figures in the order they were recorded.
func Table(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tcase\tdatabase\tfigures")
	for _, r := range rs {
		figs := make([]string, 0, len(r.Figures))
		for _, f := range r.Figures {
			figs = append(figs, format(f))
		}
		row := strings.Join(figs, ", ")
		if r.Note != "" {
			row += "  (" + r.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.TrimPrefix(r.Benchmark, "Benchmark"), dash(r.Case), dash(r.Database), row)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func format(f Figure) string {
	v := fmt.Sprintf("%.2f", f.Value)
	switch {
	case f.Value == float64(int64(f.Value)) && f.Value < 1e15 && f.Value > -1e15:
		v = fmt.Sprintf("%d", int64(f.Value))
	case f.Value >= 100 || f.Value <= -100:
		v = fmt.Sprintf("%.0f", f.Value)
	}
	if f.Unit == "" {
		return f.Name + " " + v
	}
	return f.Name + " " + v + " " + f.Unit
}
