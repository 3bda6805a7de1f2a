package rtb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // DecodeConfig for the formats Shopify accepts
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
	_ "golang.org/x/image/webp"
	"golang.org/x/sync/semaphore"
)

// Every URL the app downloads from comes from outside (Shopify payloads,
// Remove The Background answers), so the Downloader refuses anything that
// could reach the app's own network, and anything Shopify would refuse anyway.

// Download limits: Shopify's own limits for product images.
const (
	MaxImageBytes  = 20 << 20 // 20 MB
	MaxImageSide   = 4472
	MaxImagePixels = 20_000_000
	maxRedirects   = 3
	// HeldImageBytes bounds the downloaded images a Downloader holds in
	// memory at once: two at Shopify's limit, or many of the usual size.
	// A download waits for room, so 8 workers of 20 MB images cannot hold
	// 160 MB between them.
	HeldImageBytes = 2 * MaxImageBytes
)

// Rules a download can break; DownloadError.Rule is one of these.
const (
	RuleScheme     = "scheme"     // not http or https (also on a redirect)
	RuleAddress    = "address"    // destination is loopback, private, link-local, metadata… or a refused port
	RuleRedirects  = "redirects"  // more than 3 redirects
	RuleSize       = "size"       // body larger than 20 MB
	RuleType       = "type"       // not JPEG, PNG, WEBP or GIF, or undecodable header
	RuleDimensions = "dimensions" // wider or taller than 4472 px, or more than 20 MP
	RuleStatus     = "status"     // non-2xx answer
)

// DownloadError is a download the guard refused or the server failed. Only
// RuleStatus with a 5xx/408/429 status is retryable.
type DownloadError struct {
	Rule       string
	URL        string // redacted: no query string values
	StatusCode int    // for RuleStatus
	Detail     string
}

func (e *DownloadError) Error() string {
	return fmt.Sprintf("download %s refused (%s): %s", e.URL, e.Rule, e.Detail)
}

// Image is a downloaded image that passed every check. Nothing has decoded
// its pixels yet.
type Image struct {
	Data        []byte
	ContentType string // image/jpeg, image/png, image/webp or image/gif
	Ext         string // ".jpg", ".png", ".webp" or ".gif"
	Width       int
	Height      int

	release func() // gives Data's room back to the Downloader; nil for CheckImage's
}

// Release gives the image's room back to its Downloader once the caller is
// done with Data. An image never released gives it back when it is garbage
// collected, later. A nil image has nothing to release.
func (i *Image) Release() {
	if i != nil && i.release != nil {
		i.release()
	}
}

// Downloader fetches images with the guard described in the package docs. It
// is safe for concurrent use.
type Downloader struct {
	allowPrivate bool
	guard        *ssrf.Guardian
	client       *http.Client
	held         *semaphore.Weighted // bytes of downloaded images not yet released

	// Test seams, set only by tests before first use: exempt lets a loopback
	// test server count as public while every other address is still checked;
	// lookup replaces DNS.
	exempt func(netip.AddrPort) bool
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewDownloader returns a guarded downloader. allowPrivate (tests and the demo
// only) lifts the address rule; every other rule still applies.
func NewDownloader(allowPrivate bool) *Downloader {
	d := &Downloader{
		allowPrivate: allowPrivate,
		// Ports 80 and 443 only: image hosts use nothing else, and other ports
		// on public hosts are how SSRF probes services.
		guard: ssrf.New(ssrf.WithPorts(80, 443)),
		held:  semaphore.NewWeighted(HeldImageBytes),
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would make the dial-time check meaningless
		DialContext:           d.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          50,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	d.client = &http.Client{
		Transport:     tr,
		Timeout:       2 * time.Minute, // 20 MB on a slow link, but never forever
		CheckRedirect: checkRedirect,
	}
	return d
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return &DownloadError{Rule: RuleRedirects, URL: redactURL(via[0].URL), Detail: fmt.Sprintf("more than %d redirects", maxRedirects)}
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return &DownloadError{Rule: RuleScheme, URL: redactURL(req.URL), Detail: "redirect to a scheme other than http or https"}
	}
	return nil
}

// dialContext resolves the host itself, checks every address, and dials the
// checked address, so a DNS answer cannot change between check and use.
func (d *Downloader) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	targets, err := d.resolve(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: d.control}
	var firstErr error
	for _, ap := range targets {
		conn, err := dialer.DialContext(ctx, network, ap.String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// resolve turns host:port into checked addresses. A name with any refused
// address is refused outright: public hosts never publish private addresses,
// attackers do.
func (d *Downloader) resolve(ctx context.Context, network, addr string) ([]netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := net.LookupPort(network, portStr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		// A literal is checked as written: ::ffff:10.0.0.1 stays IPv6-mapped
		// and is refused as such.
		ips = []netip.Addr{ip.WithZone("")}
	} else if numericHost(host) {
		// 2130706433, 0177.0.0.1, 0x7f.1, 127.1: resolvers disagree on
		// these (the C library reads them as 127.0.0.1, Go's resolver asks
		// DNS), so none is trusted to mean a public address.
		return nil, &DownloadError{Rule: RuleAddress, URL: host, Detail: "an IP address in a non-standard spelling (decimal, octal, hex or shortened)"}
	} else if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		// Reserved for this machine (RFC 6761), whatever DNS says of it.
		return nil, &DownloadError{Rule: RuleAddress, URL: host, Detail: "a name reserved for this machine"}
	} else {
		lookup := d.lookup
		if lookup == nil {
			lookup = func(ctx context.Context, h string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
			}
		}
		if ips, err = lookup(ctx, host); err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("no address for %s", host)
		}
		for i, ip := range ips {
			// The resolver may hand back IPv4 answers in IPv4-mapped form,
			// which the guard would refuse as non-global IPv6.
			ips[i] = ip.Unmap().WithZone("")
		}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(port))
		if err := d.check(ap); err != nil {
			return nil, &DownloadError{Rule: RuleAddress, URL: host, Detail: err.Error()}
		}
		out = append(out, ap)
	}
	return out, nil
}

// numericHost reports whether host ends in a numeric label, as the URL
// standard reads a host: then it is an IPv4 address in some spelling, never
// a name (no top-level domain is a number).
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	digits := "0123456789"
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		last, digits = last[2:], "0123456789abcdefABCDEF"
	}
	for _, c := range last {
		if !strings.ContainsRune(digits, c) {
			return false
		}
	}
	return true
}

// check applies the address rule to one destination.
func (d *Downloader) check(ap netip.AddrPort) error {
	if d.allowPrivate || (d.exempt != nil && d.exempt(ap)) {
		return nil
	}
	return d.guard.SafeAddrPort(ap)
}

// control re-checks the socket's actual destination just before connect
// (the ssrf package's intended use), as a second line behind dialContext.
func (d *Downloader) control(network, address string, c syscall.RawConn) error {
	if d.allowPrivate {
		return nil
	}
	if ap, err := netip.ParseAddrPort(address); err == nil && d.exempt != nil && d.exempt(ap) {
		return nil
	}
	if err := d.guard.Safe(network, address, c); err != nil {
		return &DownloadError{Rule: RuleAddress, URL: address, Detail: err.Error()}
	}
	return nil
}

// Fetch downloads rawURL and checks it is an image Shopify will accept,
// reading at most 20 MB + 1 byte and decoding only the header.
func (d *Downloader) Fetch(ctx context.Context, rawURL string) (*Image, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, &DownloadError{Rule: RuleScheme, URL: "(unparsable URL)", Detail: "not a valid URL"}
	}
	safeURL := redactURL(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &DownloadError{Rule: RuleScheme, URL: safeURL, Detail: fmt.Sprintf("scheme %q is not http or https", u.Scheme)}
	}
	if u.Hostname() == "" {
		return nil, &DownloadError{Rule: RuleAddress, URL: safeURL, Detail: "no host"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", safeURL, unwrapURLError(err))
	}
	req.Header.Set("Accept", "image/jpeg, image/png, image/webp, image/gif")
	req.Header.Set("User-Agent", "rtbshopify")

	// Room for the largest image is taken before the download starts and
	// what the image does not need is given back once it is read.
	if err := d.held.Acquire(ctx, MaxImageBytes); err != nil {
		return nil, &TransientError{Op: OpDownload, URL: safeURL, Err: fmt.Errorf("wait for memory: %w", err)}
	}
	held := int64(MaxImageBytes)
	defer func() { d.held.Release(held) }()

	resp, err := d.client.Do(req)
	if err != nil {
		err = unwrapURLError(err)
		var de *DownloadError
		if errors.As(err, &de) {
			if de.Rule == RuleAddress {
				de.Detail = de.URL + ": " + de.Detail
			}
			de.URL = safeURL
			return nil, de
		}
		return nil, &TransientError{Op: OpDownload, URL: safeURL, Err: err}
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &DownloadError{Rule: RuleStatus, URL: safeURL, StatusCode: resp.StatusCode, Detail: fmt.Sprintf("HTTP %d", resp.StatusCode)}
	}
	if resp.ContentLength > MaxImageBytes {
		return nil, &DownloadError{Rule: RuleSize, URL: safeURL, Detail: fmt.Sprintf("%d bytes announced, limit %d", resp.ContentLength, MaxImageBytes)}
	}
	data, err := readBody(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, &TransientError{Op: OpDownload, URL: safeURL, Err: fmt.Errorf("read body: %w", unwrapURLError(err))}
	}
	if len(data) > MaxImageBytes {
		return nil, &DownloadError{Rule: RuleSize, URL: safeURL, Detail: fmt.Sprintf("body larger than %d bytes", MaxImageBytes)}
	}
	img, err := CheckImage(data)
	if err != nil {
		var de *DownloadError
		if errors.As(err, &de) {
			de.URL = safeURL
		}
		return nil, err
	}
	keep := min(int64(cap(data)), held)
	d.held.Release(held - keep)
	held = 0
	img.release = sync.OnceFunc(func() { d.held.Release(keep) })
	runtime.AddCleanup(img, func(release func()) { release() }, img.release)
	return img, nil
}

// readBody reads at most MaxImageBytes+1 bytes of body. An announced size
// (never above the limit here) is read into one slice of that size, so the
// image is never copied or its buffer regrown on the way in.
func readBody(body io.Reader, announced int64) ([]byte, error) {
	if announced < 0 {
		return io.ReadAll(io.LimitReader(body, MaxImageBytes+1))
	}
	// bytes.MinRead spare: reading up to the announced size ends at EOF
	// without growing the buffer.
	buf := bytes.NewBuffer(make([]byte, 0, announced+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(body, MaxImageBytes+1))
	return buf.Bytes(), err
}

// imageTypes maps sniffed content types to the DecodeConfig format name and
// the file extension Shopify expects.
var imageTypes = map[string]struct{ format, ext string }{
	"image/jpeg": {"jpeg", ".jpg"},
	"image/png":  {"png", ".png"},
	"image/webp": {"webp", ".webp"},
	"image/gif":  {"gif", ".gif"},
}

// CheckImage applies the type and dimension rules to bytes already in memory
// (at most MaxImageBytes): sniff the type, read only the header, then walk
// the format's structure to its end, which must be the end of the data.
// Nothing decodes the pixels here, so a small file declaring a huge image (a
// decompression bomb) is refused before it can allocate anything.
func CheckImage(data []byte) (*Image, error) {
	if len(data) > MaxImageBytes {
		return nil, &DownloadError{Rule: RuleSize, Detail: fmt.Sprintf("%d bytes, limit %d", len(data), MaxImageBytes)}
	}
	ct := sniffImage(data)
	t, ok := imageTypes[ct]
	if !ok {
		return nil, &DownloadError{Rule: RuleType, Detail: fmt.Sprintf("content is %s, not JPEG, PNG, WEBP or GIF", ct)}
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, &DownloadError{Rule: RuleType, Detail: fmt.Sprintf("%s header does not decode: %v", ct, err)}
	}
	if format != t.format {
		return nil, &DownloadError{Rule: RuleType, Detail: fmt.Sprintf("sniffed %s but decodes as %s", ct, format)}
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 || w > MaxImageSide || h > MaxImageSide || int64(w)*int64(h) > MaxImagePixels {
		return nil, &DownloadError{Rule: RuleDimensions, Detail: fmt.Sprintf("%d×%d exceeds %d×%d or %d pixels", w, h, MaxImageSide, MaxImageSide, MaxImagePixels)}
	}
	if end := imageEnd(t.format, data); end != len(data) {
		detail := "the file is cut short or broken"
		if end > 0 {
			detail = fmt.Sprintf("%d bytes follow the end of the image", len(data)-end)
		}
		return nil, &DownloadError{Rule: RuleType, Detail: ct + ": " + detail}
	}
	return &Image{Data: data, ContentType: ct, Ext: t.ext, Width: w, Height: h}, nil
}

// sniffImage is http.DetectContentType plus an explicit WEBP check (RIFF
// container with a WEBP form type), which older sniffers lack.
func sniffImage(data []byte) string {
	if len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP" {
		return "image/webp"
	}
	ct := http.DetectContentType(data)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return ct
}
