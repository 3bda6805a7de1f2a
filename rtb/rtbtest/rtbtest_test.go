package rtbtest_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"rtbshopify/rtb"
	"rtbshopify/rtb/rtbtest"
)

const (
	email = "shop@example.com"
	key   = "key-1111"
)

var cred = rtb.Credentials{ContactEmail: email, ContactAPIKey: key}

var (
	grey = color.NRGBA{R: 120, G: 160, B: 200, A: 255}
	red  = color.NRGBA{R: 220, G: 20, B: 20, A: 255}
)

// productImage is a 60×40 picture: a flat blue-grey background with a red
// block in the middle.
func productImage(t *testing.T, format string) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 60, 40))
	for y := 0; y < 40; y++ {
		for x := 0; x < 60; x++ {
			c := grey
			if x >= 20 && x < 40 && y >= 10 && y < 30 {
				c = red
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	var err error
	if format == "jpeg" {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// receiver is a webhook endpoint answering the given statuses in turn (then 200).
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []rtb.Callback
	srv      *httptest.Server
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		cb, err := rtb.ParseCallback(req.Header.Get("Content-Type"), body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			t.Errorf("callback: %v", err)
		}
		r.got = append(r.got, cb)
		status := 200
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) callbacks() []rtb.Callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rtb.Callback(nil), r.got...)
}

type env struct {
	clock  *rtbtest.Clock
	fake   *rtbtest.Server
	client *rtb.Client
	images *httptest.Server
}

func newEnv(t *testing.T, opts rtbtest.Options) *env {
	t.Helper()
	clock := rtbtest.NewClock(time.Time{})
	opts.Now = clock.Now
	fake := rtbtest.New(opts)
	t.Cleanup(fake.Close)
	fake.AddAccount(email, key)
	client, err := rtb.NewClient(fake.BaseURL(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/product.png":
			w.Write(productImage(t, "png"))
		case "/product.jpg":
			w.Write(productImage(t, "jpeg"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(images.Close)
	return &env{clock: clock, fake: fake, client: client, images: images}
}

func (e *env) status(t *testing.T, ticket string) *rtb.ImageStatus {
	t.Helper()
	st, err := e.client.Status(context.Background(), cred, ticket)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func (e *env) submit(t *testing.T, req rtb.SubmitRequest) string {
	t.Helper()
	ticket, err := e.client.SubmitImage(context.Background(), cred, req)
	if err != nil {
		t.Fatalf("SubmitImage: %v", err)
	}
	return ticket
}

func fetchResult(t *testing.T, finalURL string) (image.Image, string) {
	t.Helper()
	img, err := rtb.NewDownloader(true).Fetch(context.Background(), finalURL)
	if err != nil {
		t.Fatalf("Fetch result: %v", err)
	}
	decoded, _, err := image.Decode(bytes.NewReader(img.Data))
	if err != nil {
		t.Fatal(err)
	}
	return decoded, img.ContentType
}

func near(c color.Color, want color.NRGBA, tol int) bool {
	got := color.NRGBAModel.Convert(c).(color.NRGBA)
	d := func(a, b uint8) bool { return int(a)-int(b) <= tol && int(b)-int(a) <= tol }
	return d(got.R, want.R) && d(got.G, want.G) && d(got.B, want.B) && d(got.A, want.A)
}

func TestFullFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, template, source, wantType string
		border                           color.NRGBA
		tol                              int
		callback                         rtbtest.CallbackFormat
		xmlCase                          rtbtest.XMLCase
	}{
		{"white background keeps PNG", "2000045", "/product.png", "image/png", color.NRGBA{255, 255, 255, 255}, 0, rtbtest.CallbackForm, rtbtest.UpperCase},
		{"transparent template gives PNG with alpha", "2000046", "/product.jpg", "image/png", color.NRGBA{255, 255, 255, 0}, 0, rtbtest.CallbackJSON, rtbtest.CamelCase},
		{"JPEG stays JPEG", "2000045", "/product.jpg", "image/jpeg", color.NRGBA{255, 255, 255, 255}, 8, rtbtest.CallbackForm, rtbtest.CamelCase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, rtbtest.Options{Callback: tt.callback, XMLCase: tt.xmlCase})
			rcv := newReceiver(t)
			ticket := e.submit(t, rtb.SubmitRequest{TemplateID: tt.template, ImageURL: e.images.URL + tt.source, CallbackURL: rcv.srv.URL + "/rtb/callback/tok", DeliveryHours: 24})

			for _, want := range []int{rtb.StatusNew, rtb.StatusInProduction, rtb.StatusFinished} {
				e.fake.Tick()
				if st := e.status(t, ticket); st.StatusID != want || st.FinalImageURL != "" {
					t.Fatalf("status = %+v, want %d", st, want)
				}
				e.clock.Advance(time.Second)
			}
			if len(rcv.callbacks()) != 0 {
				t.Fatal("callback before delivery")
			}
			e.fake.Tick()
			st := e.status(t, ticket)
			if !st.Delivered() || !strings.HasPrefix(st.FinalImageURL, e.fake.URL()+"/files/"+ticket+"/final.") {
				t.Fatalf("status after delivery = %+v", st)
			}
			cbs := rcv.callbacks()
			if len(cbs) != 1 || cbs[0].Ticket != ticket || cbs[0].ProcessedImageURL != st.FinalImageURL {
				t.Fatalf("callbacks = %+v", cbs)
			}

			img, ctype := fetchResult(t, st.FinalImageURL)
			if ctype != tt.wantType {
				t.Errorf("result type %s, want %s", ctype, tt.wantType)
			}
			if c := img.At(1, 1); !near(c, tt.border, tt.tol) {
				t.Errorf("border pixel = %v, want %v", c, tt.border)
			}
			if c := img.At(30, 20); !near(c, red, 24) {
				t.Errorf("centre pixel = %v, want the original red", c)
			}
			if got := e.fake.Submissions()[email]; got != 1 {
				t.Errorf("submissions = %d", got)
			}
		})
	}
}

func TestTemplatesAndCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rtbtest.Options{})
	tpls, err := e.client.Templates(context.Background(), cred)
	if err != nil {
		t.Fatal(err)
	}
	if tpls[0] != (rtb.Template{ID: "2000045", Name: "T-shirts", Price: "0.95", CurrencyID: "1"}) || !strings.Contains(tpls[1].Name, "Transparent") {
		t.Errorf("templates = %+v", tpls)
	}
	bad := rtb.Credentials{ContactEmail: email, ContactAPIKey: "wrong"}
	_, err = e.client.Templates(context.Background(), bad)
	var ae *rtb.APIError
	if !errors.As(err, &ae) || ae.Code != rtbtest.CodeInvalidCredentials || !rtb.IsCredentialsError(err) {
		t.Errorf("wrong key: %v", err)
	}
	_, err = e.client.SubmitImage(context.Background(), bad, rtb.SubmitRequest{ImageURL: "http://x/a.jpg"})
	if !rtb.IsCredentialsError(err) {
		t.Errorf("submit with wrong key: %v", err)
	}
	ticket := e.submit(t, rtb.SubmitRequest{ImageURL: e.images.URL + "/product.png"})
	e.fake.AddAccount("other@example.com", "key-2")
	_, err = e.client.Status(context.Background(), rtb.Credentials{ContactEmail: "other@example.com", ContactAPIKey: "key-2"}, ticket)
	if !errors.As(err, &ae) || ae.Code != rtbtest.CodeImageNotFound {
		t.Errorf("other account's ticket: %v", err)
	}
	if got := e.fake.Submissions(); got[email] != 1 || len(got) != 1 {
		t.Errorf("submissions = %v", got)
	}
	reqs := e.fake.Requests()
	if len(reqs) != 5 || reqs[1].ContactAPIKey != "wrong" || reqs[3].Endpoint != rtbtest.EndpointSubmit || reqs[3].ContactAPIKey != key || reqs[3].DeveloperAPIKey != key {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestCallbackRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		statuses     []int
		faults       rtbtest.CallbackFaults
		wantAttempts int
		wantPosts    int
		delivered    bool
	}{
		{"succeeds on third try", []int{503, 500}, rtbtest.CallbackFaults{}, 3, 3, true},
		{"gives up after three", []int{500, 500, 500, 500}, rtbtest.CallbackFaults{}, 3, 3, false},
		{"dropped first attempt", nil, rtbtest.CallbackFaults{Drop: 1}, 2, 1, true},
		{"duplicated", nil, rtbtest.CallbackFaults{Duplicate: true}, 1, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, rtbtest.Options{CallbackRetry: []time.Duration{time.Minute, 5 * time.Minute}})
			e.fake.SetCallbackFaults(tt.faults)
			rcv := newReceiver(t, tt.statuses...)
			ticket := e.submit(t, rtb.SubmitRequest{ImageURL: e.images.URL + "/product.png", CallbackURL: rcv.srv.URL + "/cb"})
			e.clock.Advance(3 * time.Second)
			e.fake.Tick() // delivery and first attempt
			e.fake.Tick() // nothing is due yet
			if n := countAttempts(e.fake.Callbacks()); n != 1 {
				t.Fatalf("attempts before the first interval = %d", n)
			}
			e.clock.Advance(time.Minute)
			e.fake.Tick()
			e.clock.Advance(5 * time.Minute)
			e.fake.Tick()
			e.clock.Advance(time.Hour)
			e.fake.Tick()
			info, _ := e.fake.Job(ticket)
			if info.CallbackAttempts != tt.wantAttempts || info.CallbackDelivered != tt.delivered || len(rcv.callbacks()) != tt.wantPosts {
				t.Errorf("attempts %d delivered %v posts %d; callbacks %+v", info.CallbackAttempts, info.CallbackDelivered, len(rcv.callbacks()), e.fake.Callbacks())
			}
			for _, cb := range rcv.callbacks() {
				if cb.Ticket != ticket {
					t.Errorf("callback for %q", cb.Ticket)
				}
			}
		})
	}
}

func countAttempts(cbs []rtbtest.CallbackAttempt) int {
	n := 0
	for _, c := range cbs {
		if !c.Duplicate {
			n++
		}
	}
	return n
}

func TestFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rtbtest.Options{})
	ctx := context.Background()

	e.fake.SetFault(rtbtest.EndpointTemplates, rtbtest.Fault{HTTPStatus: 503, Count: 1})
	if _, err := e.client.Templates(ctx, cred); !rtb.IsRetryable(err) {
		t.Errorf("503: %v", err)
	}
	if _, err := e.client.Templates(ctx, cred); err != nil {
		t.Errorf("fault outlived its count: %v", err)
	}

	e.fake.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{ErrorCode: "QueueFull", Message: "try later", Count: 1})
	_, err := e.client.SubmitImage(ctx, cred, rtb.SubmitRequest{ImageURL: e.images.URL + "/product.png"})
	var ae *rtb.APIError
	if !errors.As(err, &ae) || ae.Code != "QueueFull" {
		t.Errorf("forced code: %v", err)
	}
	if n := e.fake.Submissions()[email]; n != 0 {
		t.Errorf("refused submit billed: %d", n)
	}

	e.fake.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{LoseAnswer: true, Count: 1})
	_, err = e.client.SubmitImage(ctx, cred, rtb.SubmitRequest{ImageURL: e.images.URL + "/product.png"})
	if !rtb.IsRetryable(err) || !rtb.MaybeSubmitted(err) {
		t.Errorf("lost answer: %v", err)
	}
	if n := e.fake.Submissions()[email]; n != 1 || len(e.fake.Jobs()) != 1 {
		t.Errorf("lost answer: submissions %d jobs %d", n, len(e.fake.Jobs()))
	}

	slow, err := rtb.NewClient(e.fake.BaseURL(), "", &http.Client{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.SetFault(rtbtest.EndpointStatus, rtbtest.Fault{Delay: time.Minute, Count: 1})
	if _, err := slow.Status(ctx, cred, e.fake.Jobs()[0].Ticket); !rtb.IsRetryable(err) {
		t.Errorf("slow answer: %v", err)
	}
}

func TestDeliveryWaitsForSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rtbtest.Options{})
	ticket := e.submit(t, rtb.SubmitRequest{ImageURL: e.images.URL + "/missing.png"})
	e.clock.Advance(time.Hour)
	e.fake.Tick()
	info, _ := e.fake.Job(ticket)
	if info.StatusID != rtbtest.StatusFinished || info.LastError == "" {
		t.Errorf("job = %+v", info)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, rtbtest.Options{TickInterval: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ticket, err := e.client.SubmitImage(context.Background(), cred, rtb.SubmitRequest{ImageURL: e.images.URL + "/product.png"})
			if err != nil {
				t.Error(err)
				return
			}
			e.clock.Advance(time.Second)
			if _, err := e.client.Status(context.Background(), cred, ticket); err != nil {
				t.Error(err)
			}
			e.fake.Requests()
		}()
	}
	wg.Wait()
	if n := e.fake.Submissions()[email]; n != 8 {
		t.Errorf("submissions = %d", n)
	}
}
