package e2e_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"image/color"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/shopifytest"
)

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// callbackRequest is Remove The Background's webhook for a token, as a form.
func (h *harness) callbackRequest(token, ticket, processed string) *http.Request {
	form := url.Values{"imageTicket": {ticket}, "ProcessedImageURL": {processed}}
	req, _ := http.NewRequest("POST", h.url+"/rtb/callback/"+token, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func attackCallbacks(t *testing.T, db *gorm.DB, tally *attackTally) {
	h := newHarness(t, db, harnessOptions{})
	// Every genuine callback is lost: the jobs wait for the ones below.
	h.rtb.SetCallbackFaults(rtbtest.CallbackFaults{Drop: 1 << 20})
	np := shopifytest.NewProduct{Title: "Vase"}
	for i, bg := range []color.RGBA{sand, {200, 220, 240, 255}, {230, 200, 210, 255}} {
		np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprintf("vase-%d.jpg", i), Data: photo("jpeg", bg), Alt: "A vase"})
	}
	rec := h.createProduct(np)
	waitReady(t, h, rec.ID)
	h.webhook("products/create", rec.ID)
	jobs := h.waitJobs("three submitted", allIn(3, models.JobAwaitingRTB))
	for _, j := range jobs {
		for {
			if info, ok := h.rtb.Job(*j.Ticket); ok && info.StatusID == rtbtest.StatusDelivered {
				break
			}
			sleep()
		}
	}
	a, b, done := jobs[0], jobs[1], jobs[2]
	tok := h.app.Signer.Token
	// The third job gets its genuine callback and finishes.
	if status, _ := attackSend(t, h.callbackRequest(tok(done.ID), *done.Ticket, "")); status != 200 {
		t.Fatalf("genuine callback: %d", status)
	}
	h.waitJobs("one done", func(js []models.ImageJob) bool { return len(js) == 3 && js[2].State == models.JobDone })
	time.Sleep(100 * time.Millisecond)

	before, events, asks := jobsPrint(h), rowCount(t, db, &models.JobEvent{}), statusAsks(h)
	gallery, writes := snapshots(h, rec.ID), storeWrites(h)
	ta, tb, tdone := tok(a.ID), tok(b.ID), tok(done.ID)
	kid, rest, _ := strings.Cut(ta, ".")
	idA, macA, _ := strings.Cut(rest, ".")
	_, restB, _ := strings.Cut(tb, ".")
	_, macB, _ := strings.Cut(restB, ".")
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	metadata := "http://169.254.169.254/latest/meta-data/iam/"

	type forged struct {
		name, token, ticket string
		want                int
	}
	var cases []forged
	for i := 0; i < 12; i++ {
		cases = append(cases, forged{"random token", randomText(8 + 8*i), *a.Ticket, 404})
	}
	for i := 0; i < 6; i++ {
		cases = append(cases, forged{"random MAC for the job", kid + "." + idA + "." + randomText(43), *a.Ticket, 404})
	}
	cases = append(cases,
		forged{"random hex token", hex.EncodeToString([]byte(randomText(32))), *a.Ticket, 404},
		forged{"another job's token with this job's ticket", tb, *a.Ticket, 404},
		forged{"this job's token with another job's ticket", ta, *b.Ticket, 404},
		forged{"a finished job's token with this job's ticket", tdone, *a.Ticket, 404},
		forged{"another job's MAC on this job's id", kid + "." + idA + "." + macB, *a.Ticket, 404},
		forged{"this job's MAC on another job's id", kid + "." + fmt.Sprint(b.ID) + "." + macA, *b.Ticket, 404},
		forged{"a token for a job that does not exist", tok(a.ID + 1000), *a.Ticket, 404},
		forged{"this job's token with a made-up ticket", ta, "a37a1f55-7cd4-4474-db19-ac03e85538a7", 404},
		forged{"this job's token with the zero ticket", ta, rtbtest.ZeroTicket, 404},
		forged{"MAC with its first character changed", kid + "." + idA + "." + flip(macA, 0), *a.Ticket, 404},
		forged{"MAC with its last character changed", kid + "." + idA + "." + flip(macA, len(macA)-1), *a.Ticket, 404},
		forged{"MAC cut short", kid + "." + idA + "." + macA[:len(macA)-1], *a.Ticket, 404},
		forged{"MAC with a character added", kid + "." + idA + "." + macA + "A", *a.Ticket, 404},
		forged{"MAC with base64 padding", kid + "." + idA + "." + macA + "=", *a.Ticket, 404},
		forged{"empty MAC", kid + "." + idA + ".", *a.Ticket, 404},
		forged{"no MAC", kid + "." + idA, *a.Ticket, 404},
		forged{"unknown key id", "k2." + idA + "." + macA, *a.Ticket, 404},
		forged{"key id in another case", strings.ToUpper(kid) + "." + idA + "." + macA, *a.Ticket, 404},
		forged{"job id with a leading zero", kid + ".0" + idA + "." + macA, *a.Ticket, 404},
		forged{"job id with a plus sign", kid + ".+" + idA + "." + macA, *a.Ticket, 404},
		forged{"job id with a space", kid + ".%20" + idA + "." + macA, *a.Ticket, 404},
		forged{"an extra dot", kid + "." + idA + "." + macA + ".", *a.Ticket, 404},
		forged{"CR LF inside the MAC", kid + "." + idA + "." + macA[:20] + "%0D%0A" + macA[20:], *a.Ticket, 404},
		forged{"LF inside the MAC", kid + "." + idA + "." + macA[:20] + "%0A" + macA[20:], *a.Ticket, 404},
		forged{"CR LF after the MAC", ta + "%0D%0A", *a.Ticket, 404},
		forged{"CR LF and a header after the MAC", ta + "%0D%0AX-Injected:%201", *a.Ticket, 404},
		forged{"NUL after the MAC", ta + "%00", *a.Ticket, 404},
		forged{"escaped dot", kid + "%2E" + idA + "." + macA, *a.Ticket, 404},
		forged{"token of 200 characters", ta + randomText(200-len(ta)), *a.Ticket, 404},
		forged{"token of 1000 characters", strings.Repeat(ta, 1000/len(ta)), *a.Ticket, 404},
		forged{"token of 3000 characters", ta + strings.Repeat("A", 3000), *a.Ticket, 404},
		forged{"path traversal", "..%2F..%2Fapi%2Fsettings", *a.Ticket, 404},
		forged{"the finished job's own callback again", tdone, *done.Ticket, 200},
		forged{"the finished job's callback with its ticket in capitals", tdone, strings.ToUpper(*done.Ticket), 200},
		forged{"the finished job's token with a made-up ticket", tdone, "a37a1f55-7cd4-4474-db19-ac03e85538a7", 404},
	)
	if std := strings.NewReplacer("-", "+", "_", "/").Replace(macA); std != macA {
		cases = append(cases, forged{"MAC in standard base64", kid + "." + idA + "." + url.PathEscape(std), *a.Ticket, 404})
	}
	for _, c := range cases {
		tally.try(t, "forged callbacks", c.name, func() string {
			status, answer := attackSend(t, h.callbackRequest(c.token, c.ticket, metadata))
			if status != c.want {
				return fmt.Sprintf("answered %d, want %d", status, c.want)
			}
			if s := leaksSecret(answer); s != "" {
				return s
			}
			if now := jobsPrint(h); now != before {
				return "jobs changed:\n" + now
			}
			if n := rowCount(t, db, &models.JobEvent{}); n != events {
				return fmt.Sprintf("%d job events added", n-events)
			}
			return ""
		})
	}

	// Bodies and requests no sender would make, on a real token.
	odd := []struct {
		name, contentType, body string
		want                    []int
	}{
		{"a body over the cap", "application/x-www-form-urlencoded", "imageTicket=" + *a.Ticket + "&pad=" + strings.Repeat("x", 70<<10), []int{413}},
		{"two different tickets", "application/x-www-form-urlencoded", "imageTicket=" + *a.Ticket + "&ImageTicket=" + *b.Ticket, []int{400}},
		{"a ticket that is a number", "application/json", `{"imageTicket": 12}`, []int{400}},
		{"a ticket of 300 characters", "application/json", `{"imageTicket": "` + strings.Repeat("a", 300) + `"}`, []int{400}},
		{"no ticket", "application/json", `{"ProcessedImageURL": "` + metadata + `"}`, []int{400}},
		{"a JSON array", "application/json", `[{"imageTicket": "` + *a.Ticket + `"}]`, []int{400}},
		{"a SQL ticket", "application/json", `{"imageTicket": "' OR '1'='1"}`, []int{404}},
	}
	for _, c := range odd {
		tally.try(t, "forged callbacks", c.name, func() string {
			req, _ := http.NewRequest("POST", h.url+"/rtb/callback/"+ta, strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.contentType)
			status, answer := attackSend(t, req)
			if !containsInt(c.want, status) {
				return fmt.Sprintf("answered %d %s, want %v", status, answer, c.want)
			}
			if now := jobsPrint(h); now != before {
				return "jobs changed:\n" + now
			}
			return ""
		})
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		tally.try(t, "forged callbacks", m+" on a callback URL", func() string {
			req, _ := http.NewRequest(m, h.url+"/rtb/callback/"+ta+"?imageTicket="+*a.Ticket, nil)
			if status, _ := attackSend(t, req); status < 400 {
				return fmt.Sprintf("answered %d", status)
			}
			if now := jobsPrint(h); now != before {
				return "jobs changed:\n" + now
			}
			return ""
		})
	}
	// A token over 4 KiB, and a CR LF in the request line itself.
	for _, c := range []struct{ name, line string }{
		{"token of 10000 characters", "POST /rtb/callback/" + ta + strings.Repeat("A", 10000) + " HTTP/1.1"},
		{"raw CR LF in the path", "POST /rtb/callback/" + ta[:10] + "\r\n" + ta[10:] + " HTTP/1.1"},
	} {
		tally.try(t, "forged callbacks", c.name, func() string {
			status := rawRequest(t, strings.TrimPrefix(h.url, "http://"), c.line, "imageTicket="+*a.Ticket)
			if status == 200 {
				return "answered 200"
			}
			if now := jobsPrint(h); now != before {
				return "jobs changed:\n" + now
			}
			return ""
		})
	}

	// Nothing woke a job: no worker asked Remove The Background, bought
	// anything or wrote to the store.
	time.Sleep(300 * time.Millisecond)
	tally.effect(t, "forged callbacks", func() string {
		if now := jobsPrint(h); now != before {
			return "jobs changed:\n" + now
		}
		if n := statusAsks(h); n != asks {
			return fmt.Sprintf("%d GET Status asks after forged callbacks", n-asks)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 3 {
			return fmt.Sprintf("%d submissions for 3 images", n)
		}
		if n := storeWrites(h); n != writes {
			return fmt.Sprintf("%d writes to the store", n-writes)
		}
		return galleryChange(gallery, snapshots(h, rec.ID))
	}())

	// The route still works: the genuine callback finishes the job.
	if status, _ := attackSend(t, h.callbackRequest(ta, *a.Ticket, metadata)); status != 200 {
		t.Fatalf("genuine callback after the attack: %d", status)
	}
	h.waitJobs("the genuine callback's job done", func(js []models.ImageJob) bool {
		return js[0].State == models.JobDone && js[1].State == models.JobAwaitingRTB
	})
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// rawRequest writes a request line as given (net/http refuses to send a
// broken one) and returns the answer's status, 0 when there is none.
func rawRequest(t *testing.T, addr, line, body string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "%s\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", line, addr, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
