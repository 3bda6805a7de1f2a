package rtb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"mime/multipart"
	"strings"
	"sync"
	"testing"
	"time"
)

func testSigner(t testing.TB, ids ...string) *TokenSigner {
	t.Helper()
	keys := make([]TokenKey, len(ids))
	for i, id := range ids {
		sum := sha256.Sum256([]byte("test secret " + id))
		keys[i] = TokenKey{ID: id, Secret: sum[:]}
	}
	s, err := NewTokenSigner(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	s := testSigner(t, "k1")
	for _, id := range []uint64{0, 1, 42, 1<<64 - 1} {
		tok := s.Token(id)
		got, ok := s.Verify(tok)
		if !ok || got != id {
			t.Errorf("Verify(Token(%d)) = %d, %v", id, got, ok)
		}
		if parts := strings.Split(tok, "."); len(parts) != 3 || len(parts[2]) != 43 {
			t.Errorf("token %q: want kid.id.mac with a 256-bit mac", tok)
		}
	}
}

func TestTokenRejects(t *testing.T) {
	t.Parallel()
	s := testSigner(t, "k1")
	good := s.Token(42)
	mac := good[strings.LastIndex(good, ".")+1:]
	flip := func(tok string, i int) string {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	other := testSigner(t, "k1x")
	tests := map[string]string{
		"empty":               "",
		"no dots":             "k1",
		"altered mac":         flip(good, len(good)-2),
		"altered job":         "k1.43." + mac,
		"leading zero":        "k1.042." + mac,
		"plus sign":           "k1.+42." + mac,
		"unknown kid":         "k2.42." + mac,
		"extra part":          good + ".x",
		"padded mac":          good + "=",
		"std base64":          "k1.42." + strings.NewReplacer("-", "+", "_", "/").Replace(mac) + "+",
		"short mac":           "k1.42." + mac[:20],
		"other key same kid":  strings.Replace(other.Token(42), "k1x", "k1", 1),
		"overflow":            "k1.18446744073709551616." + mac,
		"very long":           good + strings.Repeat("A", 500),
		"negative":            "k1.-1." + mac,
		"whitespace":          " " + good,
		"carriage return":     "k1.42." + mac[:10] + "\r" + mac[10:],
		"newline in mac":      "k1.42." + mac[:30] + "\n" + mac[30:],
		"non-canonical trail": good[:len(good)-1] + "B", // last char's spare bits set
	}
	for name, tok := range tests {
		if id, ok := s.Verify(tok); ok {
			t.Errorf("%s: Verify(%q) accepted as job %d", name, tok, id)
		}
	}
}

func TestTokenRotation(t *testing.T) {
	t.Parallel()
	old := testSigner(t, "old")
	oldTok := old.Token(7)
	rotated := testSigner(t, "new", "old")
	if id, ok := rotated.Verify(oldTok); !ok || id != 7 {
		t.Errorf("old token no longer verifies")
	}
	newTok := rotated.Token(7)
	if !strings.HasPrefix(newTok, "new.") {
		t.Errorf("new tokens must be signed with the first key: %q", newTok)
	}
	if _, ok := old.Verify(newTok); ok {
		t.Error("signer without the new key accepted its token")
	}
}

func TestNewTokenSignerValidation(t *testing.T) {
	t.Parallel()
	secret := bytes.Repeat([]byte{1}, 32)
	bad := [][]TokenKey{
		nil,
		{{ID: "", Secret: secret}},
		{{ID: "a.b", Secret: secret}},
		{{ID: "a/b", Secret: secret}},
		{{ID: "k", Secret: []byte("short")}},
		{{ID: "k", Secret: secret}, {ID: "k", Secret: secret}},
	}
	for i, keys := range bad {
		if _, err := NewTokenSigner(keys); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func TestParseCallback(t *testing.T) {
	t.Parallel()
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("ImageTicket", "T-3")
	mw.WriteField("processedImageUrl", "http://x/3.jpg")
	mw.Close()
	tests := []struct {
		name, ctype, body string
		want              Callback
		wantErr           bool
	}{
		{"json", "application/json", `{"imageTicket":"T-1","ProcessedImageURL":"http://x/1.jpg"}`, Callback{"T-1", "http://x/1.jpg"}, false},
		{"json charset and casing", "application/json; charset=utf-8", `{"IMAGETICKET":" T-1 ","processedimageurl":"http://x/1.jpg","other":5}`, Callback{"T-1", "http://x/1.jpg"}, false},
		{"form", "application/x-www-form-urlencoded", "imageTicket=T-2&ProcessedImageURL=http%3A%2F%2Fx%2F2.jpg", Callback{"T-2", "http://x/2.jpg"}, false},
		{"form casing", "application/x-www-form-urlencoded; charset=UTF-8", "ImageTicket=T-2", Callback{"T-2", ""}, false},
		{"multipart", mw.FormDataContentType(), mp.String(), Callback{"T-3", "http://x/3.jpg"}, false},
		{"json without content type", "", `  {"imageTicket":"T-4"}`, Callback{"T-4", ""}, false},
		{"form as text/plain", "text/plain", "imageTicket=T-5", Callback{"T-5", ""}, false},
		{"json null url", "application/json", `{"imageTicket":"T-6","ProcessedImageURL":null}`, Callback{"T-6", ""}, false},
		{"missing ticket json", "application/json", `{"ProcessedImageURL":"http://x"}`, Callback{}, true},
		{"missing ticket form", "application/x-www-form-urlencoded", "ProcessedImageURL=http://x", Callback{}, true},
		{"empty ticket", "application/json", `{"imageTicket":"  "}`, Callback{}, true},
		{"ticket not a string", "application/json", `{"imageTicket":12}`, Callback{}, true},
		{"json array", "application/json", `["imageTicket"]`, Callback{}, true},
		{"broken json", "application/json", `{"imageTicket":`, Callback{}, true},
		{"conflicting duplicates", "application/json", `{"imageTicket":"A","ImageTicket":"B"}`, Callback{}, true},
		{"bad form escape", "application/x-www-form-urlencoded", "imageTicket=%zz", Callback{}, true},
		{"empty body", "", "", Callback{}, true},
		{"ticket too long", "application/json", `{"imageTicket":"` + strings.Repeat("a", 200) + `"}`, Callback{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCallback(tt.ctype, []byte(tt.body))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseCallback = %+v, %v; want %+v, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// memStore is an in-memory CallbackStore: jobs map to tickets.
type memStore struct {
	mu       sync.Mutex
	tickets  map[uint64]string
	recorded map[uint64]Callback
	lookups  int
	fail     error
}

func newMemStore(tickets map[uint64]string) *memStore {
	return &memStore{tickets: tickets, recorded: map[uint64]Callback{}}
}

func (m *memStore) RecordCallback(_ context.Context, jobID uint64, cb Callback) (CallbackOutcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	if m.fail != nil {
		return 0, m.fail
	}
	ticket, ok := m.tickets[jobID]
	switch {
	case !ok:
		return CallbackUnknownJob, nil
	case !strings.EqualFold(ticket, cb.Ticket):
		return CallbackTicketMismatch, nil
	}
	if _, dup := m.recorded[jobID]; dup {
		return CallbackDuplicate, nil
	}
	m.recorded[jobID] = cb
	return CallbackRecorded, nil
}

func TestCallbackHandler(t *testing.T) {
	t.Parallel()
	signer := testSigner(t, "k1")
	store := newMemStore(map[uint64]string{1: "T-1", 2: "T-2"})
	var logs bytes.Buffer
	h := &CallbackHandler{Signer: signer, Store: store, MaxBody: 1024, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	form := "application/x-www-form-urlencoded"
	tok1 := signer.Token(1)
	steps := []struct {
		name, token, ctype, body string
		want                     int
		wantLookups              int // cumulative store calls
	}{
		{"bad token", "nonsense", form, "imageTicket=T-1", 404, 0},
		{"altered token", tok1[:len(tok1)-1] + "x", form, "imageTicket=T-1", 404, 0},
		{"token for another job", signer.Token(2), form, "imageTicket=T-1", 404, 1},
		{"unknown job", signer.Token(99), form, "imageTicket=T-99", 404, 2},
		{"unparsable", tok1, "application/json", "{", 400, 2},
		{"too large", tok1, form, "imageTicket=T-1&x=" + strings.Repeat("a", 2000), 413, 2},
		{"recorded json", tok1, "application/json", `{"imageTicket":"t-1","ProcessedImageURL":"http://x/1.jpg"}`, 200, 3},
		{"duplicate form", tok1, form, "imageTicket=T-1&ProcessedImageURL=http://x/1.jpg", 200, 4},
	}
	for _, st := range steps {
		if got := h.Handle(context.Background(), st.token, st.ctype, []byte(st.body)); got != st.want {
			t.Errorf("%s: status %d, want %d", st.name, got, st.want)
		}
		if store.lookups != st.wantLookups {
			t.Errorf("%s: store called %d times, want %d", st.name, store.lookups, st.wantLookups)
		}
	}
	if len(store.recorded) != 1 || store.recorded[1].ProcessedImageURL != "http://x/1.jpg" {
		t.Errorf("recorded = %+v", store.recorded)
	}
	if _, ok := store.recorded[2]; ok {
		t.Error("ticket mismatch wrote to the store")
	}
	mac := tok1[strings.LastIndex(tok1, ".")+1:]
	if strings.Contains(logs.String(), mac) {
		t.Errorf("token logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "job_id=1") {
		t.Errorf("job id not logged:\n%s", logs.String())
	}

	store.fail = errors.New("database is down")
	if got := h.Handle(context.Background(), signer.Token(2), form, []byte("imageTicket=T-2")); got != 500 {
		t.Errorf("store failure: status %d, want 500", got)
	}
}

func BenchmarkCallbackHandle(b *testing.B) {
	signer := testSigner(b, "k1")
	const jobs = 1024
	tickets := make(map[uint64]string, jobs)
	tokens := make([]string, jobs)
	bodies := make([][]byte, jobs)
	for i := range uint64(jobs) {
		tickets[i] = "ticket-" + strings.Repeat("a", 30)
		tokens[i] = signer.Token(i)
		bodies[i] = []byte(`{"imageTicket":"` + tickets[i] + `","ProcessedImageURL":"http://x/final.jpg"}`)
	}
	h := &CallbackHandler{Signer: signer, Store: newMemStore(tickets)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if st := h.Handle(ctx, tokens[i%jobs], "application/json", bodies[i%jobs]); st != 200 {
			b.Fatalf("status %d", st)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}

func FuzzParseCallback(f *testing.F) {
	for _, seed := range []struct{ ctype, body string }{
		{"application/json", `{"imageTicket":"a37a1f55-7cd4-4474-db19-ac03e85538a7","ProcessedImageURL":"http://x/final.jpg"}`},
		{"application/x-www-form-urlencoded", "imageTicket=T&ProcessedImageURL=http%3A%2F%2Fx"},
		{"", `{"IMAGETICKET":null}`},
		{"multipart/form-data; boundary=xx", "--xx\r\nContent-Disposition: form-data; name=\"imageTicket\"\r\n\r\nT\r\n--xx--\r\n"},
		{"text/plain", "imageTicket=%zz"},
		{"application/json; charset=\"", "{}"},
	} {
		f.Add(seed.ctype, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		cb, err := ParseCallback(ctype, body)
		if err == nil && (cb.Ticket == "" || len(cb.Ticket) > maxTicketLen) {
			t.Errorf("accepted ticket %q", cb.Ticket)
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	s := testSigner(f, "k1")
	f.Add(s.Token(1))
	f.Add(s.Token(1)[:12] + "\r" + s.Token(1)[12:])
	f.Add("k1.01.x")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		if id, ok := s.Verify(tok); ok && s.Token(id) != tok {
			t.Errorf("accepted non-canonical token %q", tok)
		}
	})
}
