package rtb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	testEmail  = "john@example.com"
	testKey    = "44979dfe-5aa7-44ea-b3dd-7fae33bc37e9"
	testDevKey = "dev-55555555-aaaa-bbbb-cccc-dddddddddddd"
)

var testCred = Credentials{ContactEmail: testEmail, ContactAPIKey: testKey}

// The vendor page's samples, verbatim apart from line numbers.
const (
	sampleTemplates = `<TEMPLATESRESPONSE>
<ERRORCODE>noError</ERRORCODE>
<message/>
<TEMPLATES>
<TEMPLATE>
<PRICE>
<AMOUNT>0.95</AMOUNT>
<CURRENCYID>1</CURRENCYID>
</PRICE>
<TEMPLATEID>2000045</TEMPLATEID>
<TEMPLATENAME>T-shirts</TEMPLATENAME>
</TEMPLATE>
</TEMPLATES>
</TEMPLATESRESPONSE>`
	sampleAddImage = `<ADDIMAGERESPONSE>
<ERRORCODE>noError</ERRORCODE>
<message/>
<IMAGETICKET>a37a1f55-7cd4-4474-db19-ac03e85538a7</IMAGETICKET>
</ADDIMAGERESPONSE>`
	sampleStatus = `<IMAGESTATUSRESPONSE>
<ERRORCODE>noError</ERRORCODE>
<message/>
<IMAGESTATUS>
<FINALIMAGEURL>1000003/2000000/final/myimage.jpg</FINALIMAGEURL>
<IMAGETICKET>33979dfe-5ea7-44ea-b3dd-7fde33bc37e9</IMAGETICKET>
<STATUSID>80</STATUSID>
<STATUSNAME>Delivered</STATUSNAME>
</IMAGESTATUS>
</IMAGESTATUSRESPONSE>`
)

// newTestClient serves h on loopback and returns a client whose base is
// {server}/REST.svc.
func newTestClient(t *testing.T, h http.HandlerFunc) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL+"/REST.svc", "", nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, srv
}

func xmlAnswer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestTemplatesSample(t *testing.T) {
	t.Parallel()
	var got *http.Request
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		xmlAnswer(200, sampleTemplates)(w, r)
	})
	tpls, err := c.Templates(context.Background(), testCred)
	if err != nil {
		t.Fatalf("Templates: %v", err)
	}
	want := []Template{{ID: "2000045", Name: "T-shirts", Price: "0.95", CurrencyID: "1"}}
	if fmt.Sprint(tpls) != fmt.Sprint(want) {
		t.Errorf("templates = %+v, want %+v", tpls, want)
	}
	if got.Method != http.MethodGet || got.URL.Path != "/REST.svc/Templates/" {
		t.Errorf("request %s %s", got.Method, got.URL.Path)
	}
	if q := got.URL.Query(); q.Get("ContactEmail") != testEmail || q.Get("ContactAPIkey") != testKey {
		t.Errorf("query = %v", q)
	}
}

func TestDecodeOtherCasings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
	}{
		{"camel", `<TemplatesResponse><ErrorCode>noError</ErrorCode><Message></Message><Templates><Template><Price><Amount>0.95</Amount><CurrencyId>1</CurrencyId></Price><TemplateId>2000045</TemplateId><TemplateName>T-shirts</TemplateName></Template></Templates></TemplatesResponse>`},
		{"lower with declaration", `<?xml version="1.0" encoding="utf-8"?>` + "\n" + lowerTags(sampleTemplates)},
		{"namespaced", `<TemplatesResponse xmlns="http://schemas.datacontract.org/2004/07/RTB" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><ERRORCODE>NOERROR</ERRORCODE><message i:nil="true"/><TEMPLATES><TEMPLATE><PRICE><AMOUNT> 0.95 </AMOUNT><CURRENCYID>1</CURRENCYID></PRICE><TEMPLATEID>2000045</TEMPLATEID><TEMPLATENAME>T-shirts</TEMPLATENAME></TEMPLATE></TEMPLATES></TemplatesResponse>`},
		{"latin1 declaration", `<?xml version="1.0" encoding="ISO-8859-1"?>` + sampleTemplates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newTestClient(t, xmlAnswer(200, tt.body))
			tpls, err := c.Templates(context.Background(), testCred)
			if err != nil {
				t.Fatalf("Templates: %v", err)
			}
			if len(tpls) != 1 || tpls[0] != (Template{ID: "2000045", Name: "T-shirts", Price: "0.95", CurrencyID: "1"}) {
				t.Errorf("templates = %+v", tpls)
			}
		})
	}
}

// lowerTags lower-cases element names only.
func lowerTags(s string) string {
	return regexp.MustCompile(`</?[A-Za-z]+`).ReplaceAllStringFunc(s, strings.ToLower)
}

func TestSubmitImagePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cred      Credentials
		req       SubmitRequest
		wantDev   string
		wantHours string
	}{
		{"contact key doubles as developer key", testCred,
			SubmitRequest{TemplateID: "2000045", ImageURL: "http://shop.example/a.jpg", CallbackURL: "https://app.example/rtb/callback/x", DeliveryHours: 24},
			testKey, "24"},
		{"developer key and default delivery", Credentials{ContactEmail: testEmail, ContactAPIKey: testKey, DeveloperAPIKey: testDevKey},
			SubmitRequest{ImageURL: "http://shop.example/a.jpg"}, testDevKey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body []byte
			var ctype, path string
			c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ = io.ReadAll(r.Body)
				ctype, path = r.Header.Get("Content-Type"), r.URL.RequestURI()
				xmlAnswer(200, sampleAddImage)(w, r)
			})
			ticket, err := c.SubmitImage(context.Background(), tt.cred, tt.req)
			if err != nil {
				t.Fatalf("SubmitImage: %v", err)
			}
			if ticket != "a37a1f55-7cd4-4474-db19-ac03e85538a7" {
				t.Errorf("ticket = %q", ticket)
			}
			if path != "/REST.svc/Image/" || ctype != "application/json; charset=UTF-8" {
				t.Errorf("path %q content type %q", path, ctype)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("payload: %v", err)
			}
			want := map[string]any{
				"ContactEmail": tt.cred.ContactEmail, "ContactAPIkey": tt.cred.ContactAPIKey,
				"developerAPIkey": tt.wantDev, "templateId": tt.req.TemplateID,
				"ImageURL": tt.req.ImageURL, "ImageURL2": "",
				"ImageRequestedDeliveryTimeInHours": tt.wantHours, "ImageCallbackURL": tt.req.CallbackURL,
			}
			if fmt.Sprint(m) != fmt.Sprint(want) {
				t.Errorf("payload = %v\nwant      %v", m, want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, files, final, want string
	}{
		{"relative against origin", "", "1000003/2000000/final/myimage.jpg", "/1000003/2000000/final/myimage.jpg"},
		{"relative against files base", "http://files.example/base/", "1000003/final/x.jpg", "http://files.example/base/1000003/final/x.jpg"},
		{"absolute kept", "http://files.example/base/", "https://cdn.example/x.jpg", "https://cdn.example/x.jpg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.EscapedPath()
				xmlAnswer(200, strings.Replace(sampleStatus, "1000003/2000000/final/myimage.jpg", tt.final, 1))(w, r)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(srv.URL+"/REST.svc/", tt.files, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.Status(context.Background(), testCred, "33979DFE-5ea7-44ea-b3dd-7fde33bc37e9")
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			want := tt.want
			if strings.HasPrefix(want, "/") {
				want = srv.URL + want
			}
			if st.FinalImageURL != want || !st.Delivered() || st.StatusName != "Delivered" {
				t.Errorf("status = %+v, want final %q", st, want)
			}
			if path != "/REST.svc/Image/Status/33979DFE-5ea7-44ea-b3dd-7fde33bc37e9/" {
				t.Errorf("path = %q", path)
			}
		})
	}
}

func TestStatusTicketEscapedAndInProgress(t *testing.T) {
	t.Parallel()
	var path string
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		xmlAnswer(200, `<ImageStatusResponse><ErrorCode>noError</ErrorCode><ImageStatus><StatusId>65</StatusId><StatusName>Odd</StatusName></ImageStatus></ImageStatusResponse>`)(w, r)
	})
	st, err := c.Status(context.Background(), testCred, "a/b?c")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if path != "/REST.svc/Image/Status/a%2Fb%3Fc/" {
		t.Errorf("path = %q", path)
	}
	if st.Delivered() || st.StatusID != 65 || st.Ticket != "a/b?c" || st.FinalImageURL != "" {
		t.Errorf("status = %+v", st)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	type call func(*Client) error
	templates := func(c *Client) error { _, err := c.Templates(context.Background(), testCred); return err }
	submit := func(c *Client) error {
		_, err := c.SubmitImage(context.Background(), testCred, SubmitRequest{ImageURL: "http://x.example/a.jpg"})
		return err
	}
	status := func(c *Client) error { _, err := c.Status(context.Background(), testCred, "t-1"); return err }
	errXML := `<ADDIMAGERESPONSE><ERRORCODE>InvalidCredentials</ERRORCODE><message>Wrong key</message><IMAGETICKET>00000000-0000-0000-0000-000000000000</IMAGETICKET></ADDIMAGERESPONSE>`
	tests := []struct {
		name      string
		h         http.HandlerFunc
		call      call
		apiCode   string
		retryable bool
		creds     bool
		status    int
	}{
		{"error code on 200", xmlAnswer(200, errXML), submit, "InvalidCredentials", false, true, 0},
		{"error code on 500", xmlAnswer(500, errXML), status, "InvalidCredentials", false, true, 0},
		{"templates error code is credentials", xmlAnswer(200, `<TEMPLATESRESPONSE><ERRORCODE>Whatever</ERRORCODE></TEMPLATESRESPONSE>`), templates, "Whatever", false, true, 0},
		{"status unknown ticket", xmlAnswer(200, `<IMAGESTATUSRESPONSE><ERRORCODE>ImageNotFound</ERRORCODE></IMAGESTATUSRESPONSE>`), status, "ImageNotFound", false, false, 0},
		{"all-zero ticket", xmlAnswer(200, `<ADDIMAGERESPONSE><ERRORCODE>noError</ERRORCODE><IMAGETICKET>00000000-0000-0000-0000-000000000000</IMAGETICKET></ADDIMAGERESPONSE>`), submit, "NoTicket", false, false, 0},
		{"missing ticket", xmlAnswer(200, `<ADDIMAGERESPONSE><ERRORCODE>noError</ERRORCODE></ADDIMAGERESPONSE>`), submit, "NoTicket", false, false, 0},
		{"503 retryable", xmlAnswer(503, "<html>down</html>"), templates, "", true, false, 503},
		{"429 retryable", xmlAnswer(429, "slow down"), status, "", true, false, 429},
		{"400 permanent", xmlAnswer(400, "Bad Request"), submit, "", false, false, 400},
		{"403 credentials", xmlAnswer(403, "Forbidden"), status, "", false, true, 403},
		{"html on 200 retryable", xmlAnswer(200, "<html><body>maintenance</body></html>"), status, "", true, false, 0},
		{"garbage on 200 retryable", xmlAnswer(200, "not xml at all"), templates, "", true, false, 0},
		{"bad status id", xmlAnswer(200, `<X><ERRORCODE>noError</ERRORCODE><STATUSID>abc</STATUSID></X>`), status, "", true, false, 0},
		{"oversized body", xmlAnswer(200, "<a>"+strings.Repeat("x", maxAnswerBytes)+"</a>"), templates, "", false, false, 200},
		{"echoed key in error page", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			io.WriteString(w, "no such page: "+r.URL.String())
		}, templates, "", false, false, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newTestClient(t, tt.h)
			err := tt.call(c)
			if err == nil {
				t.Fatal("no error")
			}
			assertNoSecrets(t, err)
			var ae *APIError
			if tt.apiCode != "" && (!errors.As(err, &ae) || ae.Code != tt.apiCode) {
				t.Errorf("err = %v, want APIError %q", err, tt.apiCode)
			}
			if got := IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v (%v)", got, tt.retryable, err)
			}
			if got := IsCredentialsError(err); got != tt.creds {
				t.Errorf("IsCredentialsError = %v, want %v (%v)", got, tt.creds, err)
			}
			var he *HTTPError
			if tt.status != 0 && (!errors.As(err, &he) || he.StatusCode != tt.status) {
				t.Errorf("err = %v, want HTTPError %d", err, tt.status)
			}
		})
	}
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for _, s := range []string{testKey, testDevKey, "44979dfe"} {
		if strings.Contains(msg, s) {
			t.Errorf("error leaks a key: %s", msg)
		}
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := NewClient(srv.URL+"/REST.svc", "", &http.Client{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background(), testCred, "t-1")
	if err == nil || !IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	assertNoSecrets(t, err)
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	_, err := c.Templates(ctx, testCred)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertNoSecrets(t, err)
}

func TestConnectionErrorHidesCredentials(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more: connection refused
	c, err := NewClient(base+"/REST.svc", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Templates(context.Background(), testCred)
	if err == nil || !IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "ContactAPIkey=REDACTED") {
		t.Errorf("error = %q", err.Error())
	}
	if MaybeSubmitted(err) {
		t.Error("a refused connection cannot have submitted anything")
	}
}

func TestSubmitAnswerLost(t *testing.T) {
	t.Parallel()
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, err := c.SubmitImage(context.Background(), testCred, SubmitRequest{ImageURL: "http://x.example/a.jpg"})
	if err == nil || !IsRetryable(err) || !MaybeSubmitted(err) {
		t.Fatalf("err = %v: want retryable and maybe submitted", err)
	}
	assertNoSecrets(t, err)
}

func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	cred := Credentials{ContactEmail: testEmail, ContactAPIKey: testKey, DeveloperAPIKey: testDevKey}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "cred", cred)
	for _, s := range []string{fmt.Sprint(cred), fmt.Sprintf("%+v", cred), fmt.Sprintf("%#v", cred), logged.String()} {
		if strings.Contains(s, testKey) || strings.Contains(s, testDevKey) {
			t.Errorf("leak: %s", s)
		}
		if !strings.Contains(s, testEmail) {
			t.Errorf("email missing: %s", s)
		}
	}
}

func TestNewClientValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ base, files string }{
		{"ftp://x/REST.svc", ""}, {"not a url", ""}, {"http:///nohost", ""}, {"http://ok/REST.svc", "file:///etc"},
	} {
		if _, err := NewClient(tt.base, tt.files, nil); err == nil {
			t.Errorf("NewClient(%q, %q) accepted", tt.base, tt.files)
		}
	}
	c, _ := NewClient("http://ok/REST.svc", "", nil)
	if _, err := c.Templates(context.Background(), Credentials{}); err == nil {
		t.Error("empty credentials accepted")
	}
	if _, err := c.SubmitImage(context.Background(), testCred, SubmitRequest{ImageURL: "http://x/a.jpg", DeliveryHours: -1}); err == nil {
		t.Error("negative delivery hours accepted")
	}
	if _, err := c.Status(context.Background(), testCred, ".."); err == nil {
		t.Error("ticket '..' accepted")
	}
}

func TestNoCrossHostRedirect(t *testing.T) {
	t.Parallel()
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = true
	}))
	t.Cleanup(other.Close)
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	})
	_, err := c.SubmitImage(context.Background(), testCred, SubmitRequest{ImageURL: "http://x/a.jpg"})
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusTemporaryRedirect || IsRetryable(err) {
		t.Errorf("err = %v, want a permanent HTTP 307 error", err)
	}
	if leaked {
		t.Error("the submit body was replayed to another host")
	}
	assertNoSecrets(t, err)
}
