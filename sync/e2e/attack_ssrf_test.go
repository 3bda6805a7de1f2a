package e2e_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/color"
	"io"
	"net"
	"net/http"
	"path"
	"regexp"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/shopifytest"
)

var finalURLPattern = regexp.MustCompile(`(?is)<finalimageurl>[^<]+</finalimageurl>`)

// finalURLs stands between the app and Remove The Background and rewrites
// the FINALIMAGEURL of its status answers, as a spoofed or compromised
// service would: each ticket, once delivered, takes the next URL of the list.
type finalURLs struct {
	base     http.RoundTripper
	mu       gosync.Mutex
	next     []string
	byTicket map[string]string
}

func newFinalURLs(urls []string) *finalURLs {
	return &finalURLs{base: http.DefaultTransport.(*http.Transport).Clone(), next: urls, byTicket: map[string]string{}}
}

func (f *finalURLs) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.base.RoundTrip(r)
	if err != nil || !strings.Contains(r.URL.Path, "/Image/Status/") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if finalURLPattern.Match(body) {
		ticket := strings.ToLower(path.Base(strings.TrimSuffix(r.URL.Path, "/")))
		f.mu.Lock()
		u, ok := f.byTicket[ticket]
		if !ok && len(f.next) > 0 {
			u, f.next = f.next[0], f.next[1:]
			f.byTicket[ticket] = u
		}
		f.mu.Unlock()
		if u != "" {
			var esc bytes.Buffer
			xml.EscapeText(&esc, []byte(u))
			body = finalURLPattern.ReplaceAllLiteral(body, []byte("<FINALIMAGEURL>"+esc.String()+"</FINALIMAGEURL>"))
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// urlOf is the URL a ticket was given.
func (f *finalURLs) urlOf(ticket string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byTicket[strings.ToLower(ticket)]
}

// connCounter is a listener that counts the connections made to it.
type connCounter struct {
	port string
	n    atomic.Int64
}

func countConnections(t *testing.T, addr string) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c := &connCounter{port: port}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	return c
}

// manyImages is one product with n images, each of its own colour.
func manyImages(title string, n int) shopifytest.NewProduct {
	np := shopifytest.NewProduct{Title: title}
	for i := range n {
		bg := color.RGBA{uint8(120 + i*3%120), uint8(200 - i*2%100), uint8(90 + i*4%150), 255}
		np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprintf("%s-%d.jpg", title, i), Data: photo("jpeg", bg), Alt: "View " + fmt.Sprint(i)})
	}
	return np
}

// settled holds when every job has failed or met an error it will retry.
func settled(n int) func([]models.ImageJob) bool {
	return func(jobs []models.ImageJob) bool {
		if len(jobs) != n {
			return false
		}
		for _, j := range jobs {
			if j.State != models.JobFailed && j.State != models.JobDone && (j.Error == "" || j.Attempts == 0) {
				return false
			}
		}
		return true
	}
}

func eventsOf(t *testing.T, db *gorm.DB, jobID uint64) string {
	t.Helper()
	var evs []models.JobEvent
	if err := db.Where("job_id = ?", jobID).Order("id").Find(&evs).Error; err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, e := range evs {
		sb.WriteString(e.Message + "\n")
	}
	return sb.String()
}

// runDownloadAttack gives each URL to one image's job as its processed
// image and waits until every job has settled; it returns the jobs and the
// product before and after.
func runDownloadAttack(t *testing.T, db *gorm.DB, name string, urls []string, guarded bool) (*harness, *finalURLs, []models.ImageJob, []shopifytest.ProductSnapshot) {
	t.Helper()
	rewrite := newFinalURLs(urls)
	h := newHarness(t, db, harnessOptions{guardedDownloads: guarded, rtbHTTP: &http.Client{Transport: rewrite, Timeout: 30 * time.Second}})
	rec := h.createProduct(manyImages(name, len(urls)))
	before := []shopifytest.ProductSnapshot{waitReady(t, h, rec.ID)}
	h.webhook("products/create", rec.ID)
	h.waitJobs("every download settled", settled(len(urls)))
	time.Sleep(200 * time.Millisecond) // anything still to happen happens now
	return h, rewrite, h.jobs(), before
}

func attackDownloads(t *testing.T, db *gorm.DB, tally *attackTally) {
	target := countConnections(t, "127.0.0.1:0")
	p := target.port
	// Each refusal must name the address itself (or its spelling), not
	// only the port, for the URLs on port 80 or 443.
	ipRule := []string{"prohibited IP address", "non-standard spelling", "reserved for this machine"}
	anyRule := append([]string{"prohibited port"}, ipRule...)
	type attempt struct {
		url  string
		want []string
	}
	attempts := []attempt{
		{"http://127.0.0.1/x.png", ipRule},
		{"https://127.0.0.1/x.png", ipRule},
		{"http://127.0.0.1:" + p + "/x.png", anyRule},
		{"http://localhost/x.png", ipRule},
		{"http://localhost:" + p + "/x.png", anyRule},
		{"http://localhost./x.png", ipRule},
		{"http://admin.localhost/x.png", ipRule},
		{"http://127.0.0.2/x.png", ipRule},
		{"http://[::1]/x.png", ipRule},
		{"http://user:pass@127.0.0.1/x.png", ipRule},
		{"http://[::ffff:127.0.0.1]/x.png", ipRule},
		{"http://[::ffff:127.0.0.1]:" + p + "/x.png", anyRule},
		{"http://[::ffff:7f00:1]/x.png", ipRule},
		{"http://[64:ff9b::7f00:1]/x.png", ipRule},
		{"http://[64:ff9b::7f00:1]:" + p + "/x.png", anyRule},
		{"http://2130706433/x.png", ipRule},
		{"http://2130706433:" + p + "/x.png", anyRule},
		{"http://0177.0.0.1/x.png", ipRule},
		{"http://0177.0.0.1:" + p + "/x.png", anyRule},
		{"http://0x7f.0.0.1/x.png", ipRule},
		{"http://0x7f000001/x.png", ipRule},
		{"http://017700000001/x.png", ipRule},
		{"http://127.1/x.png", ipRule},
		{"http://127.000.000.001/x.png", ipRule},
		{"http://127.0.0.1./x.png", ipRule},
		{"http://0.0.0.0/x.png", ipRule},
		{"http://0.0.0.0:" + p + "/x.png", anyRule},
		{"http://0/x.png", ipRule},
		{"http://[::]/x.png", ipRule},
		{"http://169.254.169.254/latest/meta-data/iam/security-credentials/", ipRule},
		{"http://[::ffff:169.254.169.254]/latest/meta-data/", ipRule},
		{"http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", ipRule},
		{"http://[fd00:ec2::254]/latest/meta-data/", ipRule},
		{"http://169.254.170.2/v2/credentials", ipRule},
		{"http://100.100.100.200/latest/meta-data/", ipRule},
		{"http://[fe80::1%25eth0]/x.png", ipRule},
		{"http://10.0.0.1/x.png", ipRule},
		{"http://172.16.0.1/x.png", ipRule},
		{"http://192.168.1.1/x.png", ipRule},
		{"http://100.64.0.1/x.png", ipRule},
		{"http://[fc00::1]/x.png", ipRule},
		{"http://198.18.0.1/x.png", ipRule},
		{"http://224.0.0.1/x.png", ipRule},
		{"http://255.255.255.255/x.png", ipRule},
	}
	urls := make([]string, len(attempts))
	want := map[string][]string{}
	for i, a := range attempts {
		urls[i], want[a.url] = a.url, a.want
	}
	start := time.Now()
	h, rewrite, jobs, before := runDownloadAttack(t, db, "ssrf", urls, true)
	seen := map[string]bool{}
	for _, j := range jobs {
		u := rewrite.urlOf(strp(j.Ticket))
		seen[u] = true
		tally.try(t, "SSRF downloads (pipeline)", u, func() string {
			if u == "" {
				return "job " + fmt.Sprint(j.ID) + " was never given a URL"
			}
			if j.State != models.JobFailed || !strings.Contains(j.Error, "was refused (address)") {
				return fmt.Sprintf("job %s: %q", j.State, j.Error)
			}
			ev := eventsOf(t, db, j.ID)
			for _, w := range want[u] {
				if strings.Contains(ev, w) {
					return ""
				}
			}
			return fmt.Sprintf("refused for another reason than %q:\n%s", want[u], ev)
		})
	}
	tally.effect(t, "SSRF downloads (pipeline)", func() string {
		if len(seen) != len(urls) {
			return fmt.Sprintf("%d of %d URLs reached a job", len(seen), len(urls))
		}
		if n := target.n.Load(); n != 0 {
			return fmt.Sprintf("%d connections reached the listener on 127.0.0.1", n)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != len(urls) {
			return fmt.Sprintf("%d submissions for %d images", n, len(urls))
		}
		if n := storeWrites(h); n != 0 {
			return fmt.Sprintf("%d writes to the store", n)
		}
		return galleryChange(before, snapshots(h, before[0].ID))
	}())
	t.Logf("%d SSRF URLs refused in %s", len(urls), time.Since(start).Round(time.Millisecond))
}
