package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"rtbshopify/models/modelstest"
)

// logSink collects the app's log output and reports the listening address.
type logSink struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
}

var listenRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if m := listenRE.FindSubmatch(p); m != nil {
		select {
		case s.addr <- string(m[1]):
		default:
		}
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func testEnv(dbURL string) map[string]string {
	return map[string]string{
		"LISTEN_ADDR":        "127.0.0.1:0",
		"APP_URL":            "http://127.0.0.1:8080",
		"DATABASE_URL":       dbURL,
		"SHOPIFY_API_KEY":    "test-key",
		"SHOPIFY_API_SECRET": "test-secret-value",
		"ENCRYPTION_KEYS":    "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)),
		"WORKERS":            "2",
	}
}

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// startApp runs the whole app through run() and returns its base URL and
// a function that stops it and returns run's error.
func startApp(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	base, stop, _ := startAppWith(t, getenv(env))
	return base, stop
}

// startAppWith is startApp for any getenv; it also returns the app's log.
func startAppWith(t *testing.T, getenv func(string) string) (string, func() error, *logSink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sink := &logSink{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, io.Discard, sink) }()
	select {
	case addr := <-sink.addr:
		stop := func() error {
			cancel()
			select {
			case err := <-done:
				return err
			case <-time.After(15 * time.Second):
				t.Fatalf("the app did not stop within 15 s; log:\n%s", sink.String())
				return nil
			}
		}
		t.Cleanup(func() { cancel() })
		return "http://" + addr, stop, sink
	case err := <-done:
		cancel()
		t.Fatalf("run exited before listening: %v\nlog:\n%s", err, sink.String())
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("the app did not listen within 20 s; log:\n%s", sink.String())
	}
	return "", nil, nil
}

func TestServeEndToEnd(t *testing.T) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			dbURL := modelstest.NewURL(t, name)
			env := testEnv(dbURL)
			if name == "mysql" {
				var out bytes.Buffer
				if err := run(context.Background(), []string{"migrate"}, getenv(env), &out, io.Discard); err != nil {
					t.Fatalf("migrate: %v", err)
				}
				if !strings.Contains(out.String(), "applied migrations") {
					t.Fatalf("migrate printed %q", out.String())
				}
			}
			base, stop := startApp(t, env)
			for _, path := range []string{"/healthz", "/readyz"} {
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]string
				json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %v", path, resp.StatusCode, body)
				}
			}
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{`rtbshopify_image_jobs{state="queued"} 0`, `rtbshopify_http_requests_total{method="GET",route="/readyz",status="200"} 1`, "go_goroutines"} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			// The database runs here: the replica's clock is the database's.
			if m := regexp.MustCompile(`(?m)^rtbshopify_clock_offset_seconds (\S+)$`).FindSubmatch(metrics); m == nil {
				t.Error("/metrics lacks rtbshopify_clock_offset_seconds")
			} else if off, err := strconv.ParseFloat(string(m[1]), 64); err != nil || math.Abs(off) > 1 {
				t.Errorf("rtbshopify_clock_offset_seconds is %s (%v), want under a second", m[1], err)
			}
			resp, err = http.Get(base + "/no-such-route")
			if err != nil {
				t.Fatal(err)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != 404 || e.Error.Code != "not_found" {
				t.Fatalf("unknown route: %d %+v", resp.StatusCode, e)
			}
			if err := stop(); err != nil {
				t.Fatalf("run returned %v after cancel, want a clean exit", err)
			}
		})
	}
}

func TestServeRefusesSchemaBehindOnMySQL(t *testing.T) {
	if len(modelstest.Dialects()) < 2 {
		t.Skip(modelstest.MySQLEnv + " is not set")
	}
	env := testEnv(modelstest.NewURL(t, "mysql"))
	err := run(context.Background(), []string{"serve"}, getenv(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "rtbshopify migrate") {
		t.Fatalf("serve on an unmigrated MySQL = %v, want a refusal that says to run migrate", err)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	env := testEnv("sqlite:" + t.TempDir() + "/x.db")
	delete(env, "SHOPIFY_API_SECRET")
	err := run(context.Background(), []string{"serve"}, getenv(env), io.Discard, io.Discard)
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "SHOPIFY_API_SECRET") {
		t.Fatalf("serve without SHOPIFY_API_SECRET = %v, want one line naming it", err)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, getenv(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "rtbshopify ") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, getenv(nil), io.Discard, io.Discard); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}
