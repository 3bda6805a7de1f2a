package shopify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"rtbshopify/models"
)

// MaxWebhookBody caps a webhook body. Product payloads with many variants
// are large, but far below this.
const MaxWebhookBody = 2 << 20

// Webhook topics the app acts on.
const (
	TopicProductsCreate       = "products/create"
	TopicProductsUpdate       = "products/update"
	TopicAppUninstalled       = "app/uninstalled"
	TopicCustomersDataRequest = "customers/data_request"
	TopicCustomersRedact      = "customers/redact"
	TopicShopRedact           = "shop/redact"
)

// VerifyWebhookHMAC checks the base64 HMAC-SHA256 of the raw body against
// each secret (current, then previous) in constant time.
func VerifyWebhookHMAC(body []byte, header string, secrets ...string) bool {
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		m := hmac.New(sha256.New, []byte(s))
		m.Write(body)
		// No early exit: the time taken does not tell which secret matched.
		if hmac.Equal(got, m.Sum(nil)) {
			ok = true
		}
	}
	return ok
}

type webhookDelivery struct {
	topic, shop, id string
	triggeredAt     time.Time // zero when the header is missing or unreadable
}

// handleWebhook verifies a delivery and records it in the inbox; the
// answer leaves only once the row is committed. What the delivery causes
// runs afterwards from the inbox (FanOut), so a slow or failing step never
// makes Shopify wait or retry, and a retry of a recorded delivery is
// recognised by its id.
func (a *App) handleWebhook(c *fiber.Ctx) error {
	ctx := c.UserContext()
	body := c.BodyRaw()
	if len(body) > MaxWebhookBody {
		return WriteError(c, fiber.StatusRequestEntityTooLarge, "payload_too_large", "Webhook body too large.")
	}
	if !VerifyWebhookHMAC(body, c.Get("X-Shopify-Hmac-Sha256"), a.cfg.ShopifyAPISecret, a.cfg.ShopifyAPISecretPrevious) {
		a.log.WarnContext(ctx, "webhook with a bad signature rejected", "topic", strings.Clone(c.Get("X-Shopify-Topic")))
		return WriteError(c, fiber.StatusUnauthorized, "invalid_hmac", "Webhook signature does not match.")
	}
	d := webhookDelivery{
		topic: strings.Clone(strings.TrimSpace(c.Get("X-Shopify-Topic"))),
		shop:  strings.ToLower(strings.Clone(strings.TrimSpace(c.Get("X-Shopify-Shop-Domain")))),
		id:    strings.Clone(strings.TrimSpace(c.Get("X-Shopify-Webhook-Id"))),
	}
	if d.topic == "" || d.id == "" || len(d.id) > 128 || len(d.topic) > 64 || !ValidShop(d.shop) {
		return WriteError(c, fiber.StatusBadRequest, "bad_webhook",
			"X-Shopify-Topic, X-Shopify-Webhook-Id and a valid X-Shopify-Shop-Domain are required.")
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(c.Get("X-Shopify-Triggered-At"))); err == nil {
		d.triggeredAt = t.UTC()
	}
	if d.topic == TopicProductsCreate || d.topic == TopicProductsUpdate {
		// Checked now so that a payload the pipeline cannot read is
		// refused to Shopify rather than accepted and dropped.
		if err := checkProductWebhook(body); err != nil {
			a.log.ErrorContext(ctx, "unreadable product webhook", "shop", d.shop, "topic", d.topic, "webhook_id", d.id, "err", err)
			return WriteError(c, fiber.StatusBadRequest, "bad_payload", "Product payload could not be read.")
		}
	}
	now := a.now().UTC()
	row := &models.WebhookDelivery{WebhookID: d.id, Topic: d.topic, ShopDomain: d.shop, ReceivedAt: now,
		Body: bytes.Clone(body), PendingAt: &[]int64{now.UnixMilli()}[0], InboxKey: &[]int64{a.inbox.place(d.shop)}[0]}
	if !d.triggeredAt.IsZero() {
		row.TriggeredAt = &d.triggeredAt
	}
	if err := a.inbox.record(row); err != nil {
		a.log.ErrorContext(ctx, "webhook not recorded; Shopify will retry", "shop", d.shop, "topic", d.topic, "webhook_id", d.id, "err", err)
		return WriteError(c, fiber.StatusInternalServerError, "internal", "The webhook could not be recorded; it will be retried.")
	}
	return c.SendStatus(fiber.StatusOK)
}

func (a *App) actOnWebhook(ctx context.Context, tx *gorm.DB, d webhookDelivery, product *ProductWebhook) error {
	switch d.topic {
	case TopicProductsCreate, TopicProductsUpdate:
		shop, err := shopInTx(tx, d.shop)
		if err != nil {
			return err
		}
		if shop == nil || shop.State != models.ShopInstalled {
			a.log.InfoContext(ctx, "product webhook for a shop without the app ignored", "shop", d.shop, "topic", d.topic)
			return nil
		}
		if err := a.enq.EnqueueProduct(ctx, tx, shop, *product); err != nil {
			return fmt.Errorf("enqueue product %s: %w", product.ID, err)
		}
		return nil
	case TopicAppUninstalled:
		return a.uninstall(ctx, tx, d)
	case TopicShopRedact:
		return a.redactShop(ctx, tx, d)
	case TopicCustomersDataRequest, TopicCustomersRedact:
		// The app stores no customer data: nothing to report or erase.
		a.log.InfoContext(ctx, "customer privacy request received; the app keeps no customer data", "shop", d.shop, "topic", d.topic, "webhook_id", d.id)
		return nil
	default:
		a.log.InfoContext(ctx, "webhook topic ignored", "shop", d.shop, "topic", d.topic)
		return nil
	}
}

func shopInTx(tx *gorm.DB, domain string) (*models.Shop, error) {
	var s models.Shop
	err := tx.Where("domain = ?", domain).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load shop: %w", err)
	}
	return &s, nil
}

// reinstalledSince reports whether the shop was installed again after the
// event was triggered: deliveries can arrive a day late and out of order,
// and an old uninstall must not undo a newer install.
func reinstalledSince(s *models.Shop, d webhookDelivery) bool {
	return s.State == models.ShopInstalled && !d.triggeredAt.IsZero() &&
		s.InstalledAt != nil && s.InstalledAt.After(d.triggeredAt)
}

func (a *App) uninstall(ctx context.Context, tx *gorm.DB, d webhookDelivery) error {
	shop, err := lockShopOrNil(tx, d.shop)
	if err != nil || shop == nil {
		return err
	}
	if reinstalledSince(shop, d) {
		a.log.InfoContext(ctx, "stale app/uninstalled ignored: the shop reinstalled since", "shop", d.shop)
		return nil
	}
	now := a.now().UTC()
	err = tx.Model(&models.Shop{}).Where("id = ?", shop.ID).Updates(map[string]any{
		"state": models.ShopUninstalled, "uninstalled_at": now,
		"access_token": "", "access_token_expires_at": nil,
		"refresh_token": "", "refresh_token_expires_at": nil,
		"updated_at": now,
	}).Error
	if err != nil {
		return fmt.Errorf("mark shop uninstalled: %w", err)
	}
	if err := a.enq.CancelShopJobs(ctx, tx, shop.ID, "The app was uninstalled"); err != nil {
		return fmt.Errorf("cancel jobs of %s: %w", d.shop, err)
	}
	a.log.InfoContext(ctx, "app uninstalled", "shop", d.shop)
	return nil
}

func lockShopOrNil(tx *gorm.DB, domain string) (*models.Shop, error) {
	s, err := models.LockShop(tx, "domain = ?", domain)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock shop: %w", err)
	}
	return s, nil
}

// redactShop erases everything the app holds about a shop, 48 h after it
// uninstalled. The delivery record of this request stays, so a retry is
// still recognised as a duplicate.
func (a *App) redactShop(ctx context.Context, tx *gorm.DB, d webhookDelivery) error {
	shop, err := lockShopOrNil(tx, d.shop)
	if err != nil {
		return err
	}
	if shop != nil && reinstalledSince(shop, d) {
		a.log.InfoContext(ctx, "stale shop/redact ignored: the shop reinstalled since", "shop", d.shop)
		return nil
	}
	if shop != nil {
		if r, ok := a.enq.(ShopRedactor); ok {
			if err := r.RedactShop(ctx, tx, shop.ID); err != nil {
				return fmt.Errorf("redact pipeline data of %s: %w", d.shop, err)
			}
		}
		for _, del := range []struct {
			what  string
			model any
		}{
			{"job events", &models.JobEvent{}},
			{"image jobs", &models.ImageJob{}},
			{"settings", &models.Settings{}},
			{"backfill", &models.Backfill{}},
		} {
			if err := tx.Where("shop_id = ?", shop.ID).Delete(del.model).Error; err != nil {
				return fmt.Errorf("redact %s of %s: %w", del.what, d.shop, err)
			}
		}
		if err := tx.Where("id = ?", shop.ID).Delete(&models.Shop{}).Error; err != nil {
			return fmt.Errorf("redact shop %s: %w", d.shop, err)
		}
	}
	if err := tx.Where("shop_domain = ? AND webhook_id <> ?", d.shop, d.id).Delete(&models.WebhookDelivery{}).Error; err != nil {
		return fmt.Errorf("redact webhook deliveries of %s: %w", d.shop, err)
	}
	a.log.InfoContext(ctx, "shop data erased", "shop", d.shop)
	return nil
}
