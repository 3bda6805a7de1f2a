package e2e_test

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
)

func webhookMAC(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// webhookRequest is a delivery as Shopify sends it; edit changes its
// headers before it leaves.
func (h *harness) webhookRequest(topic, id string, body []byte, edit func(http.Header)) *http.Request {
	req, _ := http.NewRequest("POST", h.url+"/webhooks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Topic", topic)
	req.Header.Set("X-Shopify-Shop-Domain", shopDomain)
	req.Header.Set("X-Shopify-Webhook-Id", id)
	req.Header.Set("X-Shopify-Triggered-At", time.Now().UTC().Format(time.RFC3339Nano))
	req.Header.Set("X-Shopify-API-Version", "2026-10")
	req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(webhookMAC(h.cfg.ShopifyAPISecret, body)))
	if edit != nil {
		edit(req.Header)
	}
	return req
}

func attackWebhooks(t *testing.T, db *gorm.DB, tally *attackTally) {
	h := newHarness(t, db, harnessOptions{})
	rec, other := h.createProduct(oneImage("forged")), h.createProduct(oneImage("replayed"))
	waitReady(t, h, rec.ID)
	waitReady(t, h, other.ID)
	body, _ := json.Marshal(h.store.ProductWebhookPayload(shopDomain, rec.ID))
	otherBody, _ := json.Marshal(h.store.ProductWebhookPayload(shopDomain, other.ID))
	secret := h.cfg.ShopifyAPISecret
	sig := func(secret string, b []byte) string { return base64.StdEncoding.EncodeToString(webhookMAC(secret, b)) }
	set := func(k, v string) func(http.Header) { return func(hd http.Header) { hd.Set(k, v) } }
	del := func(k string) func(http.Header) { return func(hd http.Header) { hd.Del(k) } }
	mac := webhookMAC(secret, body)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	reordered := bytes.Replace(body, []byte(`{"`), []byte(`{ "`), 1)
	big := append(append([]byte(`{"id":1,"pad":"`), bytes.Repeat([]byte("x"), 3<<20)...), `"}`...)
	huge := bytes.Repeat([]byte(" "), 5<<20)

	type forged struct {
		name  string
		topic string
		body  []byte
		edit  func(http.Header)
		want  []int // any of these; 0 is a connection the server closed
	}
	refused := []int{401}
	cases := []forged{
		{name: "no signature", body: body, edit: del("X-Shopify-Hmac-Sha256"), want: refused},
		{name: "empty signature", body: body, edit: set("X-Shopify-Hmac-Sha256", ""), want: refused},
		{name: "garbage signature", body: body, edit: set("X-Shopify-Hmac-Sha256", "not-a-signature"), want: refused},
		{name: "zero signature", body: body, edit: set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(make([]byte, 32))), want: refused},
		{name: "signature of another body", body: body, edit: set("X-Shopify-Hmac-Sha256", sig(secret, otherBody)), want: refused},
		{name: "signature of the body with a byte changed", body: append(bytes.Clone(body[:len(body)-1]), ' '), edit: set("X-Shopify-Hmac-Sha256", sig(secret, body)), want: refused},
		{name: "body re-spaced under the old signature", body: reordered, edit: set("X-Shopify-Hmac-Sha256", sig(secret, body)), want: refused},
		{name: "body with a trailing newline", body: append(bytes.Clone(body), '\n'), edit: set("X-Shopify-Hmac-Sha256", sig(secret, body)), want: refused},
		{name: "another app's secret", body: body, edit: set("X-Shopify-Hmac-Sha256", sig("other-app-secret", body)), want: refused},
		{name: "empty secret", body: body, edit: set("X-Shopify-Hmac-Sha256", sig("", body)), want: refused},
		{name: "secret in another case", body: body, edit: set("X-Shopify-Hmac-Sha256", sig(strings.ToUpper(secret), body)), want: refused},
		{name: "secret with a trailing space", body: body, edit: set("X-Shopify-Hmac-Sha256", sig(secret+" ", body)), want: refused},
		{name: "SHA-1 instead of SHA-256", body: body, edit: set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac[:20])), want: refused},
		{name: "hex instead of base64", body: body, edit: set("X-Shopify-Hmac-Sha256", hex.EncodeToString(mac)), want: refused},
		{name: "truncated signature", body: body, edit: set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac[:16])), want: refused},
		{name: "signature with a byte appended", body: body, edit: set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(append(bytes.Clone(mac), 0))), want: refused},
		{name: "a forged signature before the right one", body: body, edit: func(hd http.Header) {
			hd["X-Shopify-Hmac-Sha256"] = []string{sig("other-app-secret", body), sig(secret, body)}
		}, want: refused},
		{name: "signature over the gzip body sent plain", body: body, edit: set("X-Shopify-Hmac-Sha256", sig(secret, gz.Bytes())), want: refused},
		{name: "gzip body signed over its plain text", body: gz.Bytes(), edit: func(hd http.Header) {
			hd.Set("Content-Encoding", "gzip")
			hd.Set("X-Shopify-Hmac-Sha256", sig(secret, body))
		}, want: refused},
		{name: "forged app/uninstalled", topic: "app/uninstalled", body: []byte(`{"id":1,"domain":"` + shopDomain + `"}`), edit: set("X-Shopify-Hmac-Sha256", sig("other-app-secret", []byte("x"))), want: refused},
		{name: "forged shop/redact", topic: "shop/redact", body: []byte(`{"shop_id":1,"shop_domain":"` + shopDomain + `"}`), edit: del("X-Shopify-Hmac-Sha256"), want: refused},
		{name: "forged customers/redact", topic: "customers/redact", body: []byte(`{"shop_domain":"` + shopDomain + `"}`), edit: set("X-Shopify-Hmac-Sha256", "AAAA"), want: refused},
		{name: "no topic", body: body, edit: del("X-Shopify-Topic"), want: []int{400}},
		{name: "no webhook id", body: body, edit: del("X-Shopify-Webhook-Id"), want: []int{400}},
		{name: "webhook id of 200 characters", body: body, edit: set("X-Shopify-Webhook-Id", strings.Repeat("w", 200)), want: []int{400}},
		{name: "no shop domain", body: body, edit: del("X-Shopify-Shop-Domain"), want: []int{400}},
		{name: "shop domain not on myshopify.com", body: body, edit: set("X-Shopify-Shop-Domain", "evil.example.com"), want: []int{400}},
		{name: "shop domain with a suffix", body: body, edit: set("X-Shopify-Shop-Domain", shopDomain+".evil.com"), want: []int{400}},
		{name: "shop domain with a path", body: body, edit: set("X-Shopify-Shop-Domain", shopDomain+"/admin"), want: []int{400}},
		{name: "unreadable product payload", body: []byte(`{"id":"gid://x'; DROP TABLE image_jobs;--"`), want: []int{400}},
		{name: "body over the webhook cap", body: big, want: []int{413, 0}},
		{name: "body over the server's cap", body: huge, want: []int{413, 0}},
	}
	deliveries := rowCount(t, db, &models.WebhookDelivery{})
	for i, c := range cases {
		topic := c.topic
		if topic == "" {
			topic = "products/update"
		}
		b := c.body
		req := h.webhookRequest(topic, fmt.Sprintf("forged-%d", i), b, nil)
		if c.edit != nil {
			// The default signature is over the body sent: edits replace it.
			c.edit(req.Header)
		}
		tally.try(t, "forged webhooks", c.name, func() string {
			status, answer := attackSend(t, req)
			ok := false
			for _, w := range c.want {
				ok = ok || status == w
			}
			if !ok {
				return fmt.Sprintf("answered %d %s, want %v", status, answer, c.want)
			}
			if s := leaksSecret(answer); s != "" {
				return s
			}
			if n := rowCount(t, db, &models.WebhookDelivery{}); n != deliveries {
				return fmt.Sprintf("%d deliveries recorded", n-deliveries)
			}
			return ""
		})
	}

	// A delivery recorded once is acted on once, however often it comes
	// back, with whatever body.
	first := h.webhookRequest("products/create", "replay-1", body, nil)
	if status, answer := attackSend(t, first); status != 200 {
		t.Fatalf("the genuine delivery: %d %s", status, answer)
	}
	deliveries++
	type replay struct {
		name string
		req  func() *http.Request
	}
	var replays []replay
	for range 10 {
		replays = append(replays, replay{"the same delivery again", func() *http.Request {
			return h.webhookRequest("products/create", "replay-1", body, nil)
		}})
	}
	for _, topic := range []string{"products/create", "products/update"} {
		for range 3 {
			replays = append(replays, replay{"its id with another product's signed body", func() *http.Request {
				return h.webhookRequest(topic, "replay-1", otherBody, nil)
			}})
		}
	}
	replays = append(replays, replay{"its id with spaces around it", func() *http.Request {
		return h.webhookRequest("products/create", "  replay-1 ", otherBody, nil)
	}})
	for _, r := range replays {
		tally.try(t, "replayed webhooks", r.name, func() string {
			status, answer := attackSend(t, r.req())
			if status != 200 {
				return fmt.Sprintf("answered %d %s, want 200", status, answer)
			}
			if n := rowCount(t, db, &models.WebhookDelivery{}); n != deliveries {
				return fmt.Sprintf("%d more deliveries recorded", n-deliveries)
			}
			return ""
		})
	}
	// Ten copies of one new delivery at once: one is recorded.
	var wg gosync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = attackSend(t, h.webhookRequest("products/update", "replay-2", otherBody, nil))
		}()
	}
	wg.Wait()
	deliveries++
	for i, s := range statuses {
		tally.try(t, "replayed webhooks", "concurrent copies of one delivery", func() string {
			if s != 200 {
				return fmt.Sprintf("copy %d answered %d", i, s)
			}
			if n := rowCount(t, db, &models.WebhookDelivery{}); n != deliveries {
				return fmt.Sprintf("%d deliveries recorded for one", n-deliveries+1)
			}
			return ""
		})
	}

	// The two genuine deliveries make one job each, and the image of each
	// is submitted once.
	jobs := h.waitJobs("the genuine deliveries done", allIn(2, models.JobDone))
	time.Sleep(200 * time.Millisecond)
	jobs = h.jobs()
	tally.effect(t, "replayed webhooks", func() string {
		if len(jobs) != 2 || jobs[0].ProductID == jobs[1].ProductID {
			return "jobs after the replays: " + describe(jobs)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 2 {
			return fmt.Sprintf("%d submissions for 2 images", n)
		}
		for _, id := range []string{rec.ID, other.ID} {
			if m := h.store.Product(shopDomain, id).Media; len(m) != 1 {
				return fmt.Sprintf("product %s has %d media", id, len(m))
			}
		}
		return ""
	}())
	tally.effect(t, "forged webhooks", shopIntact(t, h))
}
