package rtb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func encodeTestImage(t *testing.T, format string, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	img.Set(0, 0, color.NRGBA{R: 255, A: 255})
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, nil)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tinyWebP is a lossless WEBP header declaring 2×3 pixels: enough for
// DecodeConfig, which is all the guard runs.
func tinyWebP() []byte {
	payload := []byte{0x2f, 0x01, 0x80, 0x00, 0x00, 0x00} // signature, (w-1)|(h-1)<<14, pad
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8L\x05\x00\x00\x00")
	b = append(b, payload...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// pngBomb is a valid PNG signature and IHDR declaring w×h, then IEND with
// nothing between: a full decode would try to allocate w*h*4 bytes.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	b.Write([]byte("\x00\x00\x00\x00IEND\xae\x42\x60\x82"))
	return b.Bytes()
}

func serveBytes(t *testing.T, ctype string, body []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func addrOf(t *testing.T, srv *httptest.Server) netip.AddrPort {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// publicDownloader treats the given loopback servers as public hosts and
// checks every other address normally.
func publicDownloader(t *testing.T, servers ...*httptest.Server) *Downloader {
	t.Helper()
	allowed := map[netip.AddrPort]bool{}
	for _, s := range servers {
		allowed[addrOf(t, s)] = true
	}
	d := NewDownloader(false)
	d.exempt = func(ap netip.AddrPort) bool { return allowed[ap] }
	return d
}

func wantRule(t *testing.T, err error, rule string) *DownloadError {
	t.Helper()
	var de *DownloadError
	if !errors.As(err, &de) || de.Rule != rule {
		t.Fatalf("err = %v, want rule %q", err, rule)
	}
	return de
}

func TestFetchRefusesAddresses(t *testing.T) {
	t.Parallel()
	d := NewDownloader(false)
	for _, raw := range []string{
		"http://127.0.0.1/a.jpg",
		"http://[::1]/a.jpg",
		"http://10.1.2.3/a.jpg",
		"http://172.16.0.1/a.jpg",
		"http://172.31.255.254/a.jpg",
		"http://192.168.1.1/a.jpg",
		"http://169.254.169.254/latest/meta-data/",
		"http://100.64.0.1/a.jpg",
		"http://224.0.0.1/a.jpg",
		"http://0.0.0.0/a.jpg",
		"http://[::ffff:127.0.0.1]/a.jpg",
		"http://[::ffff:10.0.0.1]/a.jpg",
		"http://[64:ff9b::7f00:1]/a.jpg",
		"http://[fe80::1]/a.jpg",
		"http://[fc00::1]/a.jpg",
		"https://localhost/a.jpg",   // a name that resolves to loopback
		"http://8.8.8.8:8080/a.jpg", // public, but a port image hosts never use
	} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			_, err := d.Fetch(context.Background(), raw)
			wantRule(t, err, RuleAddress)
			if IsRetryable(err) {
				t.Error("a refused address must not be retryable")
			}
		})
	}
}

func TestFetchRefusesLoopbackServerAndScheme(t *testing.T) {
	t.Parallel()
	srv := serveBytes(t, "image/png", encodeTestImage(t, "png", 4, 4))
	d := NewDownloader(false)
	_, err := d.Fetch(context.Background(), srv.URL+"/a.png")
	wantRule(t, err, RuleAddress)

	for _, raw := range []string{"file:///etc/passwd", "ftp://x.example/a.jpg", "gopher://x/", "//x.example/a.jpg"} {
		_, err := d.Fetch(context.Background(), raw)
		wantRule(t, err, RuleScheme)
	}
}

func TestFetchRedirects(t *testing.T) {
	t.Parallel()
	private := serveBytes(t, "image/png", encodeTestImage(t, "png", 4, 4))
	hops := 0
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-private":
			http.Redirect(w, r, private.URL+"/a.png", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/loop":
			hops++
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/three":
			n := len(r.URL.Query().Get("n"))
			if n < 3 {
				http.Redirect(w, r, "/three?n="+strings.Repeat("x", n+1), http.StatusFound)
				return
			}
			w.Write(encodeTestImage(t, "png", 4, 4))
		}
	}))
	t.Cleanup(public.Close)
	d := publicDownloader(t, public)

	tests := []struct{ path, rule string }{
		{"/to-private", RuleAddress},
		{"/to-metadata", RuleAddress},
		{"/to-file", RuleScheme},
		{"/loop", RuleRedirects},
	}
	for _, tt := range tests {
		_, err := d.Fetch(context.Background(), public.URL+tt.path)
		wantRule(t, err, tt.rule)
	}
	if _, err := d.Fetch(context.Background(), public.URL+"/three"); err != nil {
		t.Errorf("three redirects refused: %v", err)
	}
}

func TestFetchAcceptsImages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ctype, ext string
		body             []byte
		w, h             int
	}{
		{"jpeg", "image/jpeg", ".jpg", encodeTestImage(t, "jpeg", 30, 20), 30, 20},
		{"png", "image/png", ".png", encodeTestImage(t, "png", 7, 9), 7, 9},
		{"gif", "image/gif", ".gif", encodeTestImage(t, "gif", 5, 5), 5, 5},
		{"webp", "image/webp", ".webp", tinyWebP(), 2, 3},
		{"largest allowed", "image/png", ".png", pngBomb(MaxImageSide, MaxImageSide), MaxImageSide, MaxImageSide},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The server lies about the type: sniffing decides.
			srv := serveBytes(t, "application/octet-stream", tt.body)
			img, err := publicDownloader(t, srv).Fetch(context.Background(), srv.URL+"/x?sig=secret")
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if img.ContentType != tt.ctype || img.Ext != tt.ext || img.Width != tt.w || img.Height != tt.h || !bytes.Equal(img.Data, tt.body) {
				t.Errorf("image = %s %s %d×%d", img.ContentType, img.Ext, img.Width, img.Height)
			}
		})
	}
}

func TestFetchRefusesContent(t *testing.T) {
	t.Parallel()
	big := append(encodeTestImage(t, "png", 2, 2), make([]byte, MaxImageBytes)...)
	tests := []struct {
		name, rule string
		body       []byte
	}{
		{"oversize body", RuleSize, big},
		{"html", RuleType, []byte("<html><body>hello</body></html>")},
		{"svg", RuleType, []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`)},
		{"pdf", RuleType, []byte("%PDF-1.4\n")},
		{"truncated png", RuleType, []byte("\x89PNG\r\n\x1a\n\x00\x00")},
		{"too wide", RuleDimensions, encodeTestImage(t, "png", MaxImageSide+1, 1)},
		{"too many pixels", RuleDimensions, pngBomb(4472, 4473)},
		{"decompression bomb", RuleDimensions, pngBomb(100000, 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := serveBytes(t, "image/png", tt.body)
			_, err := publicDownloader(t, srv).Fetch(context.Background(), srv.URL+"/x?sig=secret")
			de := wantRule(t, err, tt.rule)
			if strings.Contains(err.Error(), "secret") || de.URL == "" {
				t.Errorf("error URL not redacted: %v", err)
			}
		})
	}
}

func TestFetchStatus(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code      int
		retryable bool
	}{{404, false}, {403, false}, {503, true}, {500, true}, {429, true}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.code)
		}))
		t.Cleanup(srv.Close)
		_, err := publicDownloader(t, srv).Fetch(context.Background(), srv.URL)
		de := wantRule(t, err, RuleStatus)
		if de.StatusCode != tt.code || IsRetryable(err) != tt.retryable {
			t.Errorf("%d: err = %v retryable %v", tt.code, err, IsRetryable(err))
		}
	}
}

func TestFetchAllowPrivate(t *testing.T) {
	t.Parallel()
	srv := serveBytes(t, "image/png", encodeTestImage(t, "png", 3, 3))
	img, err := NewDownloader(true).Fetch(context.Background(), srv.URL+"/a.png")
	if err != nil || img.Width != 3 {
		t.Fatalf("Fetch = %v, %v", img, err)
	}
	// Other rules still apply.
	_, err = NewDownloader(true).Fetch(context.Background(), "ftp://127.0.0.1/a.png")
	wantRule(t, err, RuleScheme)
}

func TestFetchConnectionErrorRetryable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	d := publicDownloader(t, srv)
	srv.Close()
	_, err := d.Fetch(context.Background(), srv.URL+"/a.png?token=secret")
	if !IsRetryable(err) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveChecksEveryAnswer(t *testing.T) {
	t.Parallel()
	answers := map[string][]netip.Addr{
		"public.example": {netip.MustParseAddr("::ffff:93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1")},
		"mixed.example":  {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.5")},
		"rebind.example": {netip.MustParseAddr("::ffff:127.0.0.1")},
		"meta.example":   {netip.MustParseAddr("169.254.169.254")},
	}
	d := NewDownloader(false)
	d.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		return append([]netip.Addr(nil), answers[host]...), nil
	}
	got, err := d.resolve(context.Background(), "tcp", "public.example:443")
	if err != nil || len(got) != 2 || got[0] != netip.MustParseAddrPort("93.184.216.34:443") {
		t.Errorf("public: %v, %v", got, err)
	}
	for _, host := range []string{"mixed.example", "rebind.example", "meta.example"} {
		_, err := d.resolve(context.Background(), "tcp", host+":80")
		wantRule(t, err, RuleAddress)
	}
}
