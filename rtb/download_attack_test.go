package rtb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"code.dny.dev/ssrf"
	"github.com/HugoSmits86/nativewebp"
)

// countingListener accepts connections on addr and counts them.
func countingListener(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, &n
}

// anyPortDownloader checks addresses as production does but allows every
// port, so the address rule alone stands between a URL and a listener on a
// test port.
func anyPortDownloader() *Downloader {
	d := NewDownloader(false)
	d.guard = ssrf.New(ssrf.WithAnyPort())
	return d
}

type attemptCounts struct {
	mu    gosync.Mutex
	kinds []string
	n     map[string]int
}

func (c *attemptCounts) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if _, ok := c.n[kind]; !ok {
		c.kinds = append(c.kinds, kind)
	}
	c.n[kind]++
}

func (c *attemptCounts) log(t *testing.T) {
	var sb strings.Builder
	for _, k := range c.kinds {
		fmt.Fprintf(&sb, "\n%-36s %4d attempts, 0 fetched", k, c.n[k])
	}
	t.Log("download attacks:" + sb.String())
}

// refusedForAddress checks a fetch was refused by the address rule for the
// address itself, without a connection to the listener.
func refusedForAddress(t *testing.T, err error, hits *atomic.Int64) {
	t.Helper()
	de := wantRule(t, err, RuleAddress)
	if !strings.Contains(de.Detail, "prohibited IP address") && !strings.Contains(de.Detail, "non-standard spelling") &&
		!strings.Contains(de.Detail, "reserved for this machine") {
		t.Errorf("refused for %q, not for the address", de.Detail)
	}
	if IsRetryable(err) {
		t.Errorf("a refused address is retryable: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d connections reached the listener", n)
	}
}

func TestDownloadAttacks(t *testing.T) {
	counts := &attemptCounts{}
	t.Cleanup(func() { counts.log(t) })
	port, hits := countingListener(t, "127.0.0.1:0")
	p := ":" + port

	t.Run("addresses", func(t *testing.T) {
		d := anyPortDownloader()
		for _, host := range []string{
			"127.0.0.1", "localhost", "LOCALHOST", "localhost.", "app.localhost", "127.0.0.1.", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
			"[0:0:0:0:0:ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b::127.0.0.1]", "2130706433", "0177.0.0.1",
			"0177.0000.0000.0001", "0x7f.0.0.1", "0x7f000001", "0X7F.1", "017700000001", "127.1", "127.0.1",
			"127.000.000.001", "0.0.0.0", "0", "0x0", "[::]", "[::ffff:0.0.0.0]", "0.0.0.0.", "127.127.127.127",
		} {
			counts.add("loopback and its spellings")
			_, err := d.Fetch(context.Background(), "http://"+host+p+"/x.png")
			refusedForAddress(t, err, hits)
		}
		for _, raw := range []string{
			"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
			"http://[fd00:ec2::254]/latest/meta-data/",
			"http://[::ffff:169.254.169.254]/latest/meta-data/",
			"http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
			"http://2852039166/latest/meta-data/", // 169.254.169.254 in decimal
			"http://0251.0376.0251.0376/latest/meta-data/",
			"http://0xa9fea9fe/latest/meta-data/",
			"http://169.254.170.2/v2/credentials",
			"http://100.100.100.200/latest/meta-data/",
			"http://[fe80::a9fe:a9fe%25eth0]/",
			"http://10.0.0.1/", "http://10.255.255.255/", "http://172.16.0.1/", "http://172.31.255.255/",
			"http://192.168.0.1/", "http://100.64.0.1/", "http://198.18.0.1/", "http://192.0.0.170/",
			"http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fe80::1]/", "http://[::ffff:10.0.0.1]/",
			"http://[64:ff9b::a00:1]/", "http://[2001:db8::1]/", "http://224.0.0.1/", "http://255.255.255.255/",
			"http://[ff02::1]/", "http://240.0.0.1/",
		} {
			counts.add("private, link-local and metadata")
			start := time.Now()
			_, err := d.Fetch(context.Background(), raw)
			refusedForAddress(t, err, hits)
			if time.Since(start) > time.Second {
				t.Errorf("%s: refused after %s: it was dialled", raw, time.Since(start))
			}
		}
		// The socket's own check, behind the resolver's.
		for _, addr := range []string{"127.0.0.1:80", "[::1]:443", "169.254.169.254:80", "[fd00:ec2::254]:80", "10.0.0.1:443", "[::ffff:127.0.0.1]:80", "0.0.0.0:80"} {
			counts.add("dial-time check")
			if err := NewDownloader(false).control("tcp", addr, nil); err == nil {
				t.Errorf("the dial-time check let %s through", addr)
			}
		}
	})

	t.Run("DNS rebinding", func(t *testing.T) {
		// A "public" host on 127.0.0.2 at the listener's port: the name
		// answers it first, then 127.0.0.1.
		public, err := net.Listen("tcp", "127.0.0.2"+p)
		if err != nil {
			t.Skipf("no second loopback address to play the public host: %v", err)
		}
		img := encodeTestImage(t, "png", 4, 4)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hop" {
				w.Header().Set("Connection", "close") // the next request dials again
				http.Redirect(w, r, "/x.png", http.StatusFound)
				return
			}
			w.Write(img)
		})}
		go srv.Serve(public)
		t.Cleanup(func() { srv.Close() })
		var lookups atomic.Int64
		d := anyPortDownloader()
		d.exempt = func(ap netip.AddrPort) bool { return ap.Addr() == netip.MustParseAddr("127.0.0.2") }
		rebind := func(first int64) func(context.Context, string) ([]netip.Addr, error) {
			return func(context.Context, string) ([]netip.Addr, error) {
				if lookups.Add(1) <= first {
					return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
				}
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
		}
		// Public for the first dial, loopback for the redirect's.
		lookups.Store(0)
		d.lookup = rebind(1)
		counts.add("DNS rebinding")
		_, err = d.Fetch(context.Background(), "http://rebind.example"+p+"/hop")
		refusedForAddress(t, err, hits)

		// A first download while the name is public, a second once it has
		// turned to loopback (a TTL of zero).
		lookups.Store(0)
		d.lookup = rebind(1)
		counts.add("DNS rebinding")
		if _, err := d.Fetch(context.Background(), "http://rebind.example"+p+"/x.png"); err != nil {
			t.Fatalf("the public answer: %v", err)
		}
		d.client.CloseIdleConnections()
		for range 5 {
			counts.add("DNS rebinding")
			_, err = d.Fetch(context.Background(), "http://rebind.example"+p+"/x.png")
			refusedForAddress(t, err, hits)
		}
		// Public and private in one answer.
		for _, private := range []string{"127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:127.0.0.1"} {
			counts.add("DNS rebinding")
			d.lookup = func(context.Context, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr(private)}, nil
			}
			_, err = d.Fetch(context.Background(), "http://mixed.example"+p+"/x.png")
			refusedForAddress(t, err, hits)
		}
	})

	t.Run("redirect chains", func(t *testing.T) {
		targets := []string{
			"http://127.0.0.1" + p + "/x.png", "http://localhost" + p + "/x.png", "http://[::ffff:127.0.0.1]" + p + "/x.png",
			"http://2130706433" + p + "/x.png", "http://0177.0.0.1" + p + "/x.png", "http://[64:ff9b::7f00:1]" + p + "/x.png",
			"http://0.0.0.0" + p + "/x.png", "//127.0.0.1" + p + "/x.png", "http://169.254.169.254/latest/meta-data/",
			"http://[fd00:ec2::254]/latest/meta-data/", "http://10.0.0.1/x.png",
		}
		var public *http.Server
		var publicURL string
		mux := http.NewServeMux()
		mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
			code := []int{301, 302, 303, 307, 308}[len(r.URL.Query().Get("t"))%5]
			w.Header().Set("Location", r.URL.Query().Get("t"))
			w.WriteHeader(code)
		})
		mux.HandleFunc("/chain", func(w http.ResponseWriter, r *http.Request) {
			n := len(r.URL.Query().Get("n"))
			if n < 2 {
				http.Redirect(w, r, "/chain?n="+strings.Repeat("x", n+1)+"&t="+url.QueryEscape(r.URL.Query().Get("t")), http.StatusFound)
				return
			}
			http.Redirect(w, r, r.URL.Query().Get("t"), http.StatusFound)
		})
		ln, err := net.Listen("tcp", "127.0.0.3:0")
		if err != nil {
			t.Skipf("no third loopback address to play the public host: %v", err)
		}
		public = &http.Server{Handler: mux}
		go public.Serve(ln)
		t.Cleanup(func() { public.Close() })
		publicURL = "http://" + ln.Addr().String()
		pub := netip.MustParseAddrPort(ln.Addr().String())
		d := anyPortDownloader()
		d.exempt = func(ap netip.AddrPort) bool { return ap == pub }
		for _, target := range targets {
			for _, path := range []string{"/to?t=", "/chain?t="} {
				counts.add("redirect chains to private addresses")
				_, err := d.Fetch(context.Background(), publicURL+path+url.QueryEscape(target))
				refusedForAddress(t, err, hits)
			}
		}
		for _, target := range []string{"file:///etc/passwd", "gopher://127.0.0.1" + p + "/", "ftp://127.0.0.1/x.png", "data:image/png;base64,AAAA", "dict://127.0.0.1:11211/stat"} {
			counts.add("redirect chains to other schemes")
			_, err := d.Fetch(context.Background(), publicURL+"/to?t="+url.QueryEscape(target))
			var de *DownloadError
			if !errors.As(err, &de) || (de.Rule != RuleScheme && de.Rule != RuleAddress) || hits.Load() != 0 {
				t.Errorf("redirect to %s: %v", target, err)
			}
		}
	})
}

// TestHostileImageBytes refuses every image cut short or carrying data after
// its end, in each format Shopify takes, without decoding a pixel.
func TestHostileImageBytes(t *testing.T) {
	var webp bytes.Buffer
	if err := nativewebp.Encode(&webp, image.NewNRGBA(image.Rect(0, 0, 9, 7)), nil); err != nil {
		t.Fatal(err)
	}
	withThumb := encodeTestImage(t, "jpeg", 20, 10)
	// An APP1 segment holding a JPEG's end marker, as an EXIF thumbnail does.
	app1 := append([]byte{0xFF, 0xE1, 0x00, 0x08}, 0xFF, 0xD9, 0xFF, 0xD8, 0xFF, 0xD9)
	withThumb = append(append(bytes.Clone(withThumb[:2]), app1...), withThumb[2:]...)
	complete := map[string][]byte{
		"jpeg": encodeTestImage(t, "jpeg", 40, 30), "jpeg with a thumbnail": withThumb,
		"png": encodeTestImage(t, "png", 40, 30), "gif": encodeTestImage(t, "gif", 40, 30),
		"webp": webp.Bytes(), "webp header": tinyWebP(),
	}
	cut, after := 0, 0
	for name, data := range complete {
		if _, err := CheckImage(data); err != nil {
			t.Fatalf("%s: a complete image refused: %v", name, err)
		}
		// Every prefix that still has its header: none may pass.
		for n := len(data) - 1; n > 0; n-- {
			cut++
			if _, err := CheckImage(data[:n]); err == nil {
				t.Errorf("%s cut to %d of %d bytes accepted", name, n, len(data))
			}
		}
		for _, tail := range []string{"\x00", "<script>alert(1)</script>", "<?php system($_GET['c']); ?>", "PK\x05\x06" + strings.Repeat("\x00", 18)} {
			after++
			if _, err := CheckImage(append(bytes.Clone(data), tail...)); err == nil {
				t.Errorf("%s with %q after its end accepted", name, tail)
			}
		}
	}
	t.Logf("%d truncated images and %d polyglots refused", cut, after)
}
