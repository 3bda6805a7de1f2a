package web

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"rtbshopify/models/modelstest"
)

func TestMetricsSurviveMixedRequests(t *testing.T) {
	db := modelstest.Open(t, "sqlite").DB
	log := slog.New(slog.DiscardHandler)
	app := NewServer(ServerOptions{DB: db, Log: log, Registry: NewRegistry(db, log)})
	for range 20 {
		for _, m := range []string{"PUT", "GET", "DELETE", "POST"} {
			resp, err := app.Test(httptest.NewRequest(m, "/healthz", nil), -1)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	for range 2 {
		resp, err := app.Test(httptest.NewRequest("GET", "/metrics", nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
		}
		for _, want := range []string{`method="PUT",route="unmatched",status="405"`, `method="GET",route="/healthz",status="200"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s:\n%s", want, grep(string(body), "rtbshopify_http_requests_total"))
			}
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
