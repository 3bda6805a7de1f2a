package sync

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/text"
	"rtbshopify/shopify"
)

// Candidate is one product image as seen in a webhook, the reconciler or
// the backfill.
type Candidate struct {
	ProductID    string
	ProductTitle string
	ProductType  string
	Vendor       string
	Tags         []string
	MediaID      string
	ContentType  string
	Status       string
	Position     int // 0-based
	Alt          string
	URL          string
	VariantIDs   []string
}

// EnqueueProduct turns a products/create or products/update webhook into
// image jobs, inside the webhook's transaction. It implements shopify.Enqueuer.
func (p *Pipeline) EnqueueProduct(ctx context.Context, tx *gorm.DB, shop *models.Shop, w shopify.ProductWebhook) error {
	cands := make([]Candidate, 0, len(w.Media))
	for _, m := range w.Media {
		pos := m.Position - 1
		if pos < 0 {
			pos = 0
		}
		cands = append(cands, Candidate{ProductID: w.ID, ProductTitle: w.Title, ProductType: w.ProductType, Vendor: w.Vendor,
			Tags: w.Tags, MediaID: m.ID, ContentType: m.ContentType, Status: m.Status, Position: pos, Alt: m.Alt,
			URL: m.PreviewURL, VariantIDs: m.VariantIDs})
	}
	_, err := p.enqueue(ctx, tx, shop, cands)
	if err == nil {
		p.Notify()
	}
	return err
}

// EnqueueResult counts what enqueue did.
type EnqueueResult struct{ Queued, Skipped, Known int }

// enqueue records a job per candidate image that has none yet (one job per
// media, ever: the unique (shop_id, media_id) index is the guard against
// processing an image twice). A skipped image may be looked at again when
// its product changes.
func (p *Pipeline) enqueue(ctx context.Context, tx *gorm.DB, shop *models.Shop, cands []Candidate) (EnqueueResult, error) {
	return p.enqueueRun(ctx, tx, shop, cands, nil)
}

// enqueueRun is enqueue for a backfill run: the jobs it queues (new, or
// queued again) carry the run, whose confirmed amount they count against.
func (p *Pipeline) enqueueRun(ctx context.Context, tx *gorm.DB, shop *models.Shop, cands []Candidate, run *int64) (EnqueueResult, error) {
	var res EnqueueResult
	if shop.State != models.ShopInstalled || len(cands) == 0 {
		return res, nil
	}
	settings, err := LoadSettings(ctx, tx, p.o.Sealer, shop)
	if err != nil {
		return res, err
	}
	if ok, _ := settings.Ready(); !ok {
		// Nothing is recorded for a shop that is not set up: when the
		// merchant turns processing on, the backfill picks these up.
		return res, nil
	}
	var keys *queueKeys
	place := func() (int64, error) {
		if keys == nil {
			keys = p.newQueueKeys(tx.WithContext(ctx), p.now())
		}
		return keys.next(shop.ID)
	}
	var mediaIDs []string
	for _, c := range cands {
		if c.MediaID != "" {
			mediaIDs = append(mediaIDs, c.MediaID)
		}
	}
	if len(mediaIDs) == 0 {
		return res, nil
	}
	// One read for the jobs these images already have and two (results,
	// files held for review) for the images the app itself made, whatever
	// the number of images.
	var known []models.ImageJob
	if err := tx.WithContext(ctx).Where("shop_id = ? AND media_id IN ?", shop.ID, mediaIDs).Find(&known).Error; err != nil {
		return res, fmt.Errorf("look up jobs of product images: %w", err)
	}
	existing := make(map[string]*models.ImageJob, len(known))
	for i := range known {
		existing[known[i].MediaID] = &known[i]
	}
	var ownIDs []string
	if err := tx.WithContext(ctx).Model(&models.ImageJob{}).Where("shop_id = ? AND result_media_id IN ?", shop.ID, mediaIDs).
		Pluck("result_media_id", &ownIDs).Error; err != nil {
		return res, fmt.Errorf("look up the app's own images: %w", err)
	}
	// A file held for review may be put on a product by hand.
	var heldIDs []string
	if err := tx.WithContext(ctx).Model(&models.ImageJob{}).Where("shop_id = ? AND review_file_id IN ?", shop.ID, mediaIDs).
		Pluck("review_file_id", &heldIDs).Error; err != nil {
		return res, fmt.Errorf("look up the app's held images: %w", err)
	}
	ownIDs = append(ownIDs, heldIDs...)
	own := make(map[string]bool, len(ownIDs))
	for _, id := range ownIDs {
		own[id] = true
	}
	var fresh []*models.ImageJob
	var reasons []string
	seen := map[string]bool{}
	for _, c := range cands {
		if c.MediaID == "" || seen[c.MediaID] {
			continue
		}
		seen[c.MediaID] = true
		reason := p.ineligibleGiven(settings, c, own[c.MediaID])
		if job, ok := existing[c.MediaID]; ok {
			res.Known++
			if reason == "" {
				revived, err := p.revive(ctx, tx, job, c, place, run)
				if err != nil {
					return res, err
				}
				if revived {
					res.Queued++
				}
			}
			continue
		}
		job, err := p.newJob(shop, settings, c, reason, place)
		if job != nil && reason == "" {
			job.BackfillRun = run
		}
		if err != nil {
			return res, err
		}
		fresh = append(fresh, job)
		reasons = append(reasons, reason)
	}
	if len(fresh) == 0 {
		return res, nil
	}
	// All new jobs and their first events in two statements, in a savepoint:
	// a concurrent insert of one of the same media (the unique index) rolls
	// back only this, and then each job is recorded on its own.
	err = tx.WithContext(ctx).Transaction(func(stx *gorm.DB) error {
		if err := stx.Create(fresh).Error; err != nil {
			return err
		}
		events := make([]models.JobEvent, len(fresh))
		for i, job := range fresh {
			events[i] = p.newEvent(job, "", job.State, firstMessage(reasons[i]))
		}
		return stx.Create(&events).Error
	})
	if err == nil {
		for _, r := range reasons {
			if r != "" {
				res.Skipped++
			} else {
				res.Queued++
			}
		}
		return res, nil
	}
	if !models.IsDuplicate(err) {
		return res, fmt.Errorf("record jobs of product images: %w", err)
	}
	for i, job := range fresh {
		job.ID = 0
		err := tx.WithContext(ctx).Transaction(func(stx *gorm.DB) error {
			if err := stx.Create(job).Error; err != nil {
				return err
			}
			return p.event(stx, job, "", job.State, firstMessage(reasons[i]))
		})
		if models.IsDuplicate(err) {
			res.Known++
			continue
		}
		if err != nil {
			return res, fmt.Errorf("record job of %s: %w", job.MediaID, err)
		}
		if reasons[i] != "" {
			res.Skipped++
		} else {
			res.Queued++
		}
	}
	return res, nil
}

func firstMessage(reason string) string {
	if reason != "" {
		return reason
	}
	return "queued"
}

// newJob builds the job of a new image. A job that can run now gets its
// place in the claim order from place; one whose media is not ready yet
// gets it when it comes due.
func (p *Pipeline) newJob(shop *models.Shop, s Settings, c Candidate, reason string, place func() (int64, error)) (*models.ImageJob, error) {
	now := p.now()
	job := &models.ImageJob{
		ShopID: shop.ID, ProductID: c.ProductID, ProductTitle: text.Truncate(c.ProductTitle, 500), MediaID: c.MediaID,
		OriginalURL: c.URL, OriginalAlt: c.Alt, OriginalPosition: c.Position, OriginalFilename: originalFilename(c.URL),
		VariantIDs: variantJSON(c.VariantIDs), WriteMode: s.WriteMode, TemplateID: s.TemplateID,
		State: models.JobQueued, CreatedAt: now, UpdatedAt: now,
	}
	if reason != "" {
		job.State, job.Error = models.JobSkipped, reason
		return job, nil
	}
	if !strings.EqualFold(c.Status, "READY") && c.Status != "" {
		job.RunAt = ptr(ms(now.Add(p.o.MediaRecheck)))
		return job, nil
	}
	key, err := place()
	if err != nil {
		return nil, err
	}
	job.FairKey, job.QueueKey, job.RunAt = key, &key, ptr(ms(now))
	return job, nil
}

// revive gives a job that stopped short another chance when its image is
// seen again and is eligible: a skipped image, or one cancelled by an
// uninstall before it was submitted, is queued again; one cancelled after
// Remove The Background accepted it (already paid) waits for its delivery
// again instead of being submitted twice.
func (p *Pipeline) revive(ctx context.Context, tx *gorm.DB, job *models.ImageJob, c Candidate, place func() (int64, error), run *int64) (bool, error) {
	// Waiting again, it is given a place in the claim order when a claim
	// finds it due; queued again, it gets one now.
	fields := map[string]any{"error": "", "run_at": ms(p.now()), "lease_owner": nil, "lease_until": nil, "queue_key": nil}
	switch {
	case job.State == models.JobCancelled && job.Ticket != nil:
		fields["state"] = models.JobAwaitingRTB
		if job.DeliveredAt != nil {
			fields["state"] = models.JobWritingBack
		}
	case job.State == models.JobCancelled && job.SubmitStartedAt != nil:
		// Cancelled with a submission of unknown outcome: it may be paid,
		// so it is never resubmitted by itself. It waits again for its
		// callback, which adopts the ticket, or the merchant's Retry.
		fields["state"], fields["run_at"] = models.JobSubmitting, nil
		fields["error"] = uncertainSubmission
	case job.State == models.JobSkipped || job.State == models.JobCancelled && job.SubmitStartedAt == nil:
		fair, err := place()
		if err != nil {
			return false, err
		}
		for k, v := range map[string]any{"state": models.JobQueued, "fair_key": fair, "queue_key": fair, "original_url": c.URL, "original_alt": c.Alt,
			"original_position": c.Position, "variant_ids": variantJSON(c.VariantIDs)} {
			fields[k] = v
		}
		if run != nil {
			fields["backfill_run"] = *run
		}
	default:
		return false, nil
	}
	return p.transition(ctx, tx, job, []string{job.State}, fields, "seen again and eligible")
}

// ineligible says why an image is not to be processed, or "" if it is.
func (p *Pipeline) ineligible(ctx context.Context, tx *gorm.DB, shop *models.Shop, s Settings, c Candidate) string {
	var own int64
	tx.WithContext(ctx).Model(&models.ImageJob{}).Where("shop_id = ? AND result_media_id = ?", shop.ID, c.MediaID).Count(&own)
	if own == 0 {
		// A file held for review, put on the product by hand.
		tx.WithContext(ctx).Model(&models.ImageJob{}).Where("shop_id = ? AND review_file_id = ?", shop.ID, c.MediaID).Count(&own)
	}
	return p.ineligibleGiven(s, c, own > 0)
}

// ineligibleGiven is ineligible when whether the image is one the app
// uploaded (a job's result) is known already.
func (p *Pipeline) ineligibleGiven(s Settings, c Candidate, own bool) string {
	if ct := strings.ToUpper(c.ContentType); ct != "" && ct != "IMAGE" {
		return "Not an image (" + strings.ToLower(ct) + ")."
	}
	if strings.EqualFold(c.Status, "FAILED") {
		return "Shopify could not process this image."
	}
	// The app's own images are known by the ids it recorded, whatever their
	// names: each id is recorded before the file is put on a product, so no
	// products/update can show one the app does not know yet.
	if own {
		return "This is an image the app uploaded."
	}
	if s.ImageScope == ScopeFeatured && c.Position != 0 {
		return "Only the featured image is processed (settings: image scope)."
	}
	f := s.Filters
	if len(f.ProductTypes) > 0 && !containsFold(f.ProductTypes, c.ProductType) {
		return "The product type is not in the settings' product types."
	}
	if len(f.Vendors) > 0 && !containsFold(f.Vendors, c.Vendor) {
		return "The vendor is not in the settings' vendors."
	}
	if len(f.TagsInclude) > 0 && !anyFold(f.TagsInclude, c.Tags) {
		return "The product has none of the settings' required tags."
	}
	if len(f.TagsExclude) > 0 && anyFold(f.TagsExclude, c.Tags) {
		return "The product has a tag the settings exclude."
	}
	return ""
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), strings.TrimSpace(v)) {
			return true
		}
	}
	return false
}

func anyFold(list, values []string) bool {
	for _, v := range values {
		if containsFold(list, v) {
			return true
		}
	}
	return false
}

// fileName is the last path segment of a URL, without its query.
func fileName(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if u == "" {
		return ""
	}
	return path.Base(u)
}

// maxFilename is the original_filename column's size, in characters.
const maxFilename = 255

// originalFilename is the name of the image at u as the merchant reads it
// (percent-escapes decoded), cut to fit its column: a CJK name of 300
// characters is 2,700 once escaped. The stem is cut and the extension kept,
// since it tells which format the image's file can take.
func originalFilename(u string) string {
	name := fileName(u)
	if dec, err := url.PathUnescape(name); err == nil {
		name = dec
	}
	ext := path.Ext(name)
	if n := utf8.RuneCountInString(ext); n > 16 || !utf8.ValidString(ext) {
		ext = "" // no extension, only a dot inside the name
	}
	return text.Truncate(strings.TrimSuffix(name, ext), maxFilename-utf8.RuneCountInString(ext)) + ext
}

// CancelShopJobs cancels every job of the shop that has not finished, inside
// the caller's transaction. It implements shopify.Enqueuer. A job a worker
// holds is left to that worker: it finds the shop uninstalled when its step
// ends (a submission in flight keeps its ticket, so a reinstall finishes
// the paid image) and cancels the job itself.
func (p *Pipeline) CancelShopJobs(ctx context.Context, tx *gorm.DB, shopID uint64, reason string) error {
	var jobs []models.ImageJob
	open := []string{models.JobQueued, models.JobRetrying, models.JobOverBudget, models.JobAwaitingRTB, models.JobSubmitting, models.JobWritingBack}
	if err := tx.WithContext(ctx).Where("shop_id = ? AND state IN ?", shopID, open).Find(&jobs).Error; err != nil {
		return err
	}
	for i := range jobs {
		if _, err := p.transition(ctx, tx, &jobs[i], open, map[string]any{
			"state": models.JobCancelled, "error": reason, "run_at": nil, "lease_owner": nil, "lease_until": nil,
		}, reason); err != nil {
			return err
		}
	}
	return nil
}

// RedactShop deletes the pipeline's own rows of a shop beyond the tables
// the webhook receiver clears (shop/redact). It implements shopify.ShopRedactor.
func (p *Pipeline) RedactShop(ctx context.Context, tx *gorm.DB, shopID uint64) error {
	if err := tx.WithContext(ctx).Where("shop_id = ?", shopID).Delete(&models.JobCharge{}).Error; err != nil {
		return err
	}
	return tx.WithContext(ctx).Where("shop_id = ?", shopID).Delete(&models.ProductLock{}).Error
}

// newEvent is the audit line p.event would write, for writing many at once.
func (p *Pipeline) newEvent(job *models.ImageJob, from, to, msg string) models.JobEvent {
	return models.JobEvent{JobID: job.ID, ShopID: job.ShopID, FromState: from, ToState: to, Message: text.Truncate(msg, 2000), CreatedAt: p.now()}
}
