package shopify

import (
	"context"
	"errors"
	"image/color"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/shopifytest"
)

// These tests run the package against the shared fake store
// (shopify/shopifytest) rather than the local token stub: its token
// endpoint, session tokens, webhook sender and product payloads.
func TestWithFakeStore(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		c := newClock()
		store := shopifytest.New(shopifytest.Options{APIKey: testKey, APISecret: testSecret, Now: c.Now,
			WebhookRetries: 1, WebhookRetryInterval: time.Millisecond})
		t.Cleanup(store.Close)
		store.AddShop(testShop)
		cfg := testConfig(store.URL())
		sealer, err := models.NewSealer(cfg.EncryptionKeys)
		if err != nil {
			t.Fatal(err)
		}
		enq := &fakeEnqueuer{}
		app := New(cfg, db, sealer, enq, slog.New(slog.DiscardHandler), WithClock(c.Now), WithHTTPClient(store.Client()))
		f := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Register(f)
		f.Get("/api/ping", app.RequireSession(), func(c *fiber.Ctx) error { return c.SendString(ShopFrom(c).Domain) })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go f.Listener(ln)
		t.Cleanup(func() { f.Shutdown() })
		base := "http://" + ln.Addr().String()

		get := func(tok string) int {
			req, _ := http.NewRequest(http.MethodGet, base+"/api/ping", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// Token exchange, once.
		if s := get(store.SessionToken(testShop, time.Minute)); s != 200 {
			t.Fatalf("first /api call: %d", s)
		}
		if s := get(store.SessionToken(testShop, time.Minute)); s != 200 || store.Exchanges(testShop) != 1 {
			t.Fatalf("second call: %d, exchanges %d", s, store.Exchanges(testShop))
		}
		var shop models.Shop
		db.Where("domain = ?", testShop).Take(&shop)
		oldRefresh, _ := sealer.Open(shop.RefreshToken, testShop)

		// Refresh and rotation.
		c.Advance(57 * time.Minute)
		if _, err := app.Tokens().AccessToken(context.Background(), testShop); err != nil {
			t.Fatal(err)
		}
		if store.Refreshes(testShop) != 1 {
			t.Fatalf("refreshes = %d", store.Refreshes(testShop))
		}
		_, err = app.Tokens().post(context.Background(), testShop, map[string]string{
			"client_id": testKey, "client_secret": testSecret, "grant_type": "refresh_token", "refresh_token": oldRefresh})
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Status != 400 {
			t.Fatalf("the old refresh token still works: %v", err)
		}

		// A product webhook as the store sends it.
		rec, err := store.CreateProduct(testShop, shopifytest.NewProduct{
			Title: "Tee", ProductType: "Shirts", Vendor: "Acme", Tags: []string{"summer", "sale"},
			Images: []shopifytest.NewImage{
				{Filename: "front.png", Data: shopifytest.SamplePNG(8, 8, color.White), Alt: "front"},
				{Filename: "back.png", Data: shopifytest.SamplePNG(8, 8, color.Black)},
			},
			Variants: []shopifytest.NewVariant{{Title: "S", ImageIndex: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		payload := store.ProductWebhookPayload(testShop, rec.ID)
		resp, err := store.SendWebhook(context.Background(), base+"/webhooks", testShop, TopicProductsCreate, payload)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("webhook: %v %v", resp, err)
		}
		if n, err := app.FanOut(context.Background(), 10); n != 1 || err != nil {
			t.Fatalf("fan-out: %d %v", n, err)
		}
		products := enq.snapshot()
		if len(products) != 1 {
			t.Fatalf("enqueued %d products", len(products))
		}
		p := products[0]
		if p.ID != rec.ID || p.Title != "Tee" || strings.Join(p.Tags, ",") != "summer,sale" || len(p.Media) != 2 {
			t.Fatalf("product = %+v", p)
		}
		if p.Media[0].ID != rec.MediaIDs[0] || p.Media[0].Position != 1 || p.Media[0].Alt != "front" ||
			p.Media[1].ID != rec.MediaIDs[1] || len(p.Media[1].VariantIDs) != 1 || p.Media[1].VariantIDs[0] != rec.VariantIDs[0] {
			t.Fatalf("media = %+v", p.Media)
		}
		// Unsigned: refused.
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks", strings.NewReader(url.Values{}.Encode()))
		req.Header.Set("X-Shopify-Hmac-Sha256", "AAAA")
		if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
			t.Fatalf("unsigned webhook: %v %v", r, err)
		}
	})
}
