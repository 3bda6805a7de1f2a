package shopify

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
)

const productJSON = `{
  "id": 788032119674292922,
  "admin_graphql_api_id": "gid://shopify/Product/788032119674292922",
  "title": "Example T-Shirt", "product_type": "Shirts", "vendor": "Acme", "status": "active",
  "tags": "summer, cotton ,,sale",
  "created_at": "2026-11-27T05:00:00-05:00", "updated_at": "2026-11-27T05:01:00-05:00",
  "images": [{"id": 1, "src": "https://cdn.shopify.com/legacy.jpg"}],
  "media": [
    {"id": 29283020931123, "admin_graphql_api_id": "gid://shopify/MediaImage/29283020931123",
     "status": "READY", "position": 1, "alt": "front", "media_content_type": "IMAGE",
     "preview_image": {"width": 800, "height": 800, "src": "https://cdn.shopify.com/s/files/front.jpg?v=1", "status": "READY"},
     "variant_ids": [40000000000001, 40000000000002]},
    {"id": 29283020931124, "status": "PROCESSING", "position": 2, "alt": null,
     "media_content_type": "IMAGE", "preview_image": null, "variant_ids": []}
  ]
}`

func TestParseProductWebhook(t *testing.T) {
	p, err := ParseProductWebhook([]byte(productJSON))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "gid://shopify/Product/788032119674292922" || p.Title != "Example T-Shirt" || p.ProductType != "Shirts" ||
		p.Vendor != "Acme" || p.Status != "active" {
		t.Fatalf("product = %+v", p)
	}
	if fmt.Sprint(p.Tags) != "[summer cotton sale]" {
		t.Fatalf("tags = %q", p.Tags)
	}
	if !p.CreatedAt.Equal(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)) || !p.UpdatedAt.Equal(time.Date(2026, 11, 27, 10, 1, 0, 0, time.UTC)) {
		t.Fatalf("times = %v %v", p.CreatedAt, p.UpdatedAt)
	}
	if len(p.Media) != 2 {
		t.Fatalf("media = %+v", p.Media)
	}
	m := p.Media[0]
	if m.ID != "gid://shopify/MediaImage/29283020931123" || m.ContentType != "IMAGE" || m.Status != "READY" ||
		m.Position != 1 || m.Alt != "front" || m.PreviewURL != "https://cdn.shopify.com/s/files/front.jpg?v=1" ||
		fmt.Sprint(m.VariantIDs) != "[gid://shopify/ProductVariant/40000000000001 gid://shopify/ProductVariant/40000000000002]" {
		t.Fatalf("media[0] = %+v", m)
	}
	m = p.Media[1]
	if m.ID != "gid://shopify/MediaImage/29283020931124" || m.Status != "PROCESSING" || m.Position != 2 || m.Alt != "" || m.PreviewURL != "" || len(m.VariantIDs) != 0 {
		t.Fatalf("media[1] (no gid, nulls) = %+v", m)
	}

	// Older payloads: no gid, no media, numbers as strings.
	p, err = ParseProductWebhook([]byte(`{"id": "12", "title": "Bare", "tags": ""}`))
	if err != nil || p.ID != "gid://shopify/Product/12" || len(p.Media) != 0 || p.Tags == nil || len(p.Tags) != 0 {
		t.Fatalf("bare payload = %+v, %v", p, err)
	}
	for _, bad := range []string{`{"title":"no id"}`, `not json`, `{"id": 1, "media": [{"status":"READY"}]}`} {
		if _, err := ParseProductWebhook([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestVerifyWebhookHMAC(t *testing.T) {
	body := []byte(`{"a":1}`)
	if !VerifyWebhookHMAC(body, sign(body, testSecret), testSecret, oldSecret) ||
		!VerifyWebhookHMAC(body, sign(body, oldSecret), testSecret, oldSecret) {
		t.Fatal("a valid signature was refused")
	}
	for _, h := range []string{"", "xx", sign(body, "other"), sign([]byte(`{"a":2}`), testSecret)} {
		if VerifyWebhookHMAC(body, h, testSecret, oldSecret) {
			t.Errorf("%q accepted", h)
		}
	}
	if VerifyWebhookHMAC(body, sign(body, ""), "", "") {
		t.Error("empty secrets accepted a signature")
	}
}

func TestWebhookProductEnqueues(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		resp, body := e.webhook(TopicProductsCreate, testShop, "wh-1", []byte(productJSON), testSecret, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if len(e.enq.products) != 1 || e.enq.shops[0] != testShop || len(e.enq.products[0].Media) != 2 ||
			e.enq.products[0].ID != "gid://shopify/Product/788032119674292922" {
			t.Fatalf("enqueued = %+v", e.enq.products)
		}
		var d models.WebhookDelivery
		if err := db.Where("webhook_id = ?", "wh-1").Take(&d).Error; err != nil || d.Topic != TopicProductsCreate || d.ShopDomain != testShop {
			t.Fatalf("delivery = %+v, %v", d, err)
		}

		// A retry of the same delivery: 200, nothing happens.
		if resp, _ := e.webhook(TopicProductsCreate, testShop, "wh-1", []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("duplicate: %d", resp.StatusCode)
		}
		// Signed with the previous secret (during a rotation): accepted.
		if resp, _ := e.webhook(TopicProductsUpdate, testShop, "wh-2", []byte(productJSON), oldSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("previous secret: %d", resp.StatusCode)
		}
		if n, _ := e.enq.calls(); n != 2 {
			t.Fatalf("enqueue calls = %d, want 2 (one per distinct delivery)", n)
		}
		if n := e.count(&models.WebhookDelivery{}, ""); n != 2 {
			t.Fatalf("deliveries = %d", n)
		}
	})
}

func TestWebhookRejects(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		payload := []byte(productJSON)
		cases := []struct {
			name   string
			secret string
			hdr    map[string]string
			body   []byte
			status int
		}{
			{"bad hmac", "wrong-secret", nil, payload, 401},
			{"no hmac", testSecret, map[string]string{"X-Shopify-Hmac-Sha256": ""}, payload, 401},
			{"hmac of another body", testSecret, map[string]string{"X-Shopify-Hmac-Sha256": sign([]byte("{}"), testSecret)}, payload, 401},
			{"no topic", testSecret, map[string]string{"X-Shopify-Topic": ""}, payload, 400},
			{"no webhook id", testSecret, map[string]string{"X-Shopify-Webhook-Id": ""}, payload, 400},
			{"no shop", testSecret, map[string]string{"X-Shopify-Shop-Domain": ""}, payload, 400},
			{"bad shop", testSecret, map[string]string{"X-Shopify-Shop-Domain": "evil.com"}, payload, 400},
			{"unreadable product", testSecret, nil, []byte(`{"title":"no id"}`), 400},
			{"too large", testSecret, nil, []byte(`{"x":"` + strings.Repeat("a", MaxWebhookBody) + `"}`), 413},
		}
		for i, tc := range cases {
			resp, body := e.webhook(TopicProductsUpdate, testShop, fmt.Sprintf("rej-%d", i), tc.body, tc.secret, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.status)
			}
		}
		if n := e.count(&models.WebhookDelivery{}, ""); n != 0 {
			t.Fatalf("%d deliveries recorded from rejected requests", n)
		}
		if n, _ := e.enq.calls(); n != 0 {
			t.Fatal("a rejected webhook reached the enqueuer")
		}
	})
}

func TestWebhookFanOutFailureIsRetriedOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		e.enq.err = errors.New("disk full")
		// The answer depends only on the delivery's own row.
		resp, body := e.post(TopicProductsCreate, testShop, "wh-err", []byte(productJSON), testSecret, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if err := e.fanOut(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("fan-out: %v, want the enqueuer's error", err)
		}
		var d models.WebhookDelivery
		db.Where("webhook_id = ?", "wh-err").Take(&d)
		if d.PendingAt == nil || *d.PendingAt <= e.clock.Now().UnixMilli() || d.Attempts != 1 || len(d.Body) == 0 {
			t.Fatalf("after a failed fan-out: pending_at %v attempts %d body %d bytes; want it postponed with its body", d.PendingAt, d.Attempts, len(d.Body))
		}
		// Not due yet: nothing happens; once due, it is acted on once.
		e.enq.err = nil
		if err := e.fanOut(); err != nil {
			t.Fatal(err)
		}
		if n, _ := e.enq.calls(); n != 0 {
			t.Fatal("a postponed delivery was fanned out before it was due")
		}
		e.clock.Advance(time.Minute)
		if err := e.fanOut(); err != nil {
			t.Fatal(err)
		}
		// Shopify's own retry of the delivery changes nothing.
		if resp, _ := e.webhook(TopicProductsCreate, testShop, "wh-err", []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("retry: %d", resp.StatusCode)
		}
		db.Where("webhook_id = ?", "wh-err").Take(&d)
		if n, _ := e.enq.calls(); n != 1 || e.count(&models.WebhookDelivery{}, "") != 1 || d.PendingAt != nil || d.Body != nil {
			t.Fatalf("after recovery: %d enqueues, delivery pending_at %v body %d bytes", n, d.PendingAt, len(d.Body))
		}
	})
}

func TestWebhookProductForShopWithoutApp(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		if resp, _ := e.webhook(TopicProductsCreate, "stranger.myshopify.com", "wh-s", []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("unknown shop: %d", resp.StatusCode)
		}
		s := e.install(testShop)
		db.Model(&models.Shop{}).Where("id = ?", s.ID).Update("state", models.ShopUninstalled)
		if resp, _ := e.webhook(TopicProductsUpdate, testShop, "wh-u", []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("uninstalled shop: %d", resp.StatusCode)
		}
		if n, _ := e.enq.calls(); n != 0 {
			t.Fatal("enqueued for a shop without the app")
		}
		if n := e.count(&models.WebhookDelivery{}, ""); n != 2 {
			t.Fatalf("deliveries = %d, want 2", n)
		}
	})
}

func TestWebhookAppUninstalled(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		e.clock.Advance(time.Minute)
		resp, _ := e.webhook(TopicAppUninstalled, testShop, "wh-un", []byte(`{"id":1,"domain":"`+testShop+`"}`), testSecret, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		after := e.shop(testShop)
		if after.State != models.ShopUninstalled || after.UninstalledAt == nil || !after.UninstalledAt.Equal(e.clock.Now()) ||
			after.AccessToken != "" || after.RefreshToken != "" || after.AccessTokenExpiresAt != nil || after.RefreshTokenExpiresAt != nil {
			t.Fatalf("shop after uninstall = %+v", after)
		}
		if fmt.Sprint(e.enq.cancels) != fmt.Sprintf("[%d:The app was uninstalled]", s.ID) {
			t.Fatalf("cancels = %v", e.enq.cancels)
		}
		if _, err := e.app.Tokens().AccessToken(t.Context(), testShop); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("AccessToken after uninstall: %v", err)
		}

		// Reinstall, then a late uninstall triggered before it arrives: ignored.
		e.clock.Advance(time.Hour)
		e.install(testShop)
		late := e.clock.Now().Add(-30 * time.Minute).Format(time.RFC3339)
		if resp, _ := e.webhook(TopicAppUninstalled, testShop, "wh-late", []byte(`{}`), testSecret,
			map[string]string{"X-Shopify-Triggered-At": late}); resp.StatusCode != 200 {
			t.Fatalf("late uninstall: %d", resp.StatusCode)
		}
		if got := e.shop(testShop); got.State != models.ShopInstalled || got.AccessToken == "" {
			t.Fatal("a stale app/uninstalled undid a newer install")
		}
		// Unknown shop: fine, nothing to do.
		if resp, _ := e.webhook(TopicAppUninstalled, "stranger.myshopify.com", "wh-x", []byte(`{}`), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("unknown shop: %d", resp.StatusCode)
		}
	})
}

func TestWebhookPrivacyAndOtherTopics(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		for i, topic := range []string{TopicCustomersDataRequest, TopicCustomersRedact, "orders/create", "themes/publish"} {
			body := []byte(`{"shop_domain":"` + testShop + `","customer":{"id":1,"email":"jane@example.com"}}`)
			if resp, _ := e.webhook(topic, testShop, fmt.Sprintf("wh-p%d", i), body, testSecret, nil); resp.StatusCode != 200 {
				t.Fatalf("%s: %d", topic, resp.StatusCode)
			}
		}
		if strings.Contains(e.logs.String(), "jane@example.com") {
			t.Fatal("personal data in the logs")
		}
		if n, c := e.enq.calls(); n != 0 || c != 0 {
			t.Fatal("privacy or unknown topics reached the enqueuer")
		}
		if e.shop(testShop).State != models.ShopInstalled {
			t.Fatal("the shop changed")
		}
	})
}

func TestWebhookShopRedact(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		victim := e.install(testShop)
		other := e.install("other.myshopify.com")
		now := e.clock.Now()
		for _, s := range []*models.Shop{victim, other} {
			job := models.ImageJob{ShopID: s.ID, ProductID: "gid://shopify/Product/1", MediaID: "gid://shopify/MediaImage/1",
				State: models.JobDone, CreatedAt: now, UpdatedAt: now}
			mustCreate(t, db, &job)
			mustCreate(t, db, &models.JobEvent{JobID: job.ID, ShopID: s.ID, ToState: models.JobDone, CreatedAt: now})
			mustCreate(t, db, &models.Settings{ShopID: s.ID, ImageScope: "all", WriteMode: "replace", CreatedAt: now, UpdatedAt: now})
			mustCreate(t, db, &models.Backfill{ShopID: s.ID, State: "done", StartedAt: now, UpdatedAt: now})
		}
		for i, d := range []string{testShop, "other.myshopify.com"} {
			if resp, _ := e.webhook(TopicProductsUpdate, d, fmt.Sprintf("wh-r%d", i), []byte(productJSON), testSecret, nil); resp.StatusCode != 200 {
				t.Fatal(resp.StatusCode)
			}
		}
		// Redaction 48 h after an uninstall.
		e.webhook(TopicAppUninstalled, testShop, "wh-uninst", []byte(`{}`), testSecret, nil)
		e.clock.Advance(48 * time.Hour)
		if resp, _ := e.webhook(TopicShopRedact, testShop, "wh-redact", []byte(`{"shop_id":1,"shop_domain":"`+testShop+`"}`), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("redact: %d", resp.StatusCode)
		}
		for _, c := range []struct {
			model any
			where string
			arg   any
		}{
			{&models.Shop{}, "id = ?", victim.ID},
			{&models.ImageJob{}, "shop_id = ?", victim.ID},
			{&models.JobEvent{}, "shop_id = ?", victim.ID},
			{&models.Settings{}, "shop_id = ?", victim.ID},
			{&models.Backfill{}, "shop_id = ?", victim.ID},
			{&models.WebhookDelivery{}, "shop_domain = ? AND webhook_id <> 'wh-redact'", testShop},
		} {
			if n := e.count(c.model, c.where, c.arg); n != 0 {
				t.Errorf("%T: %d rows of the redacted shop remain", c.model, n)
			}
			if n := e.count(c.model, ""); n == 0 {
				t.Errorf("%T: the other shop's rows were deleted too", c.model)
			}
		}
		// A retry of the redaction is still recognised.
		if resp, _ := e.webhook(TopicShopRedact, testShop, "wh-redact", []byte(`{}`), testSecret, nil); resp.StatusCode != 200 {
			t.Fatalf("redact retry: %d", resp.StatusCode)
		}
		if e.shop("other.myshopify.com").State != models.ShopInstalled {
			t.Fatal("the other shop changed")
		}
	})
}

func mustCreate(t *testing.T, db *gorm.DB, v any) {
	t.Helper()
	if err := db.Create(v).Error; err != nil {
		t.Fatal(err)
	}
}
