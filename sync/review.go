package sync

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/text"
	"rtbshopify/rtb"
	"rtbshopify/shopify/admin"
)

// maxBulkReview caps how many jobs one bulk approve or reject names.
const maxBulkReview = 1000

// holdForReview keeps a delivered image in the shop's Files, off the
// product, and parks the job in awaiting_review when the shop publishes
// only after review and the merchant has not decided on this image yet.
// It reports whether it held the job (or failed trying): the write-back
// goes on only when it did not. The file has the name the write-back's
// new-media path gives the processed image, so an approval attaches this
// very file instead of uploading a second copy.
func (p *Pipeline) holdForReview(ctx context.Context, l *lease, s Settings, c *admin.Client, img *rtb.Image) (bool, error) {
	j := l.job
	if s.Publish != PublishReview || j.ReviewDecidedAt != nil {
		return false, nil
	}
	w := &writer{p: p, l: l, c: c, img: img, up: delivered(img, "")}
	id := j.ReviewFileID
	if id == "" {
		name := processedName(j, w.up.ext)
		var err error
		id, err = w.ensureFile(ctx, name, j.OriginalAlt, func() (string, error) {
			return c.StageUpload(ctx, name, w.up.mime, w.up.data)
		})
		if err != nil {
			return true, p.fail(ctx, l, err, "Could not keep the processed image in Files for review.")
		}
		if err := l.update(ctx, map[string]any{"review_file_id": id}, "processed image kept in Files for review"); err != nil {
			return true, err
		}
	}
	// The dashboard shows the file: wait until Shopify serves it.
	if err := w.waitReady(ctx, id); err != nil {
		return true, p.fail(ctx, l, err, writeBackFailure(err))
	}
	url := ""
	if st, err := c.FileStatus(ctx, id); err == nil {
		url = st[id].URL
	}
	return true, l.release(ctx, map[string]any{"state": models.JobAwaitingReview, "review_held_at": p.now(), "processed_url": url,
		"attempts": 0, "error": ""}, nil, "held for the merchant's review; the product is unchanged")
}

// Approve writes a held image back to the product, exactly as an automatic
// write-back would. A job already decided is answered as it is (a second
// click changes nothing); one never held for review is a conflict.
func (p *Pipeline) Approve(ctx context.Context, shopID, jobID uint64) (*models.ImageJob, error) {
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		_, err := p.decide(ctx, tx, j, true, "")
		return err
	})
}

// Reject ends a held image's job as rejected with the merchant's reason;
// nothing on the product changes and the processed image stays in Files.
func (p *Pipeline) Reject(ctx context.Context, shopID, jobID uint64, reason string) (*models.ImageJob, error) {
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		_, err := p.decide(ctx, tx, j, false, reason)
		return err
	})
}

// decide applies the merchant's decision to a held job, reporting whether
// it changed anything.
func (p *Pipeline) decide(ctx context.Context, tx *gorm.DB, j *models.ImageJob, approve bool, reason string) (bool, error) {
	if j.ReviewHeldAt == nil {
		return false, &ConflictError{"This image was never held for review; it is " + j.State + "."}
	}
	if j.State != models.JobAwaitingReview {
		return false, nil
	}
	now := p.now()
	fields := map[string]any{"review_decided_at": now, "error": ""}
	msg := "approved by the merchant"
	if approve {
		fields["state"], fields["run_at"], fields["attempts"] = models.JobWritingBack, ms(now), 0
	} else {
		fields["state"], fields["run_at"], fields["review_reason"] = models.JobRejected, nil, text.Truncate(reason, 1000)
		msg = "rejected by the merchant"
	}
	changed, err := p.transition(ctx, tx, j, []string{models.JobAwaitingReview}, fields, msg)
	if err == nil && changed {
		j.ReviewDecidedAt = &now
		if !approve {
			j.ReviewReason = fields["review_reason"].(string)
		}
	}
	return changed, err
}

// DecideMany approves or rejects the shop's held jobs named by ids, or all
// of them, and returns how many it decided now. Jobs not held (or decided
// already) are left as they are.
func (p *Pipeline) DecideMany(ctx context.Context, shopID uint64, ids []uint64, all, approve bool, reason string) (int, error) {
	if !all && len(ids) == 0 {
		return 0, nil
	}
	if len(ids) > maxBulkReview {
		return 0, &ConflictError{fmt.Sprintf("At most %d images can be decided at once.", maxBulkReview)}
	}
	q := p.o.DB.WithContext(ctx).Where("shop_id = ? AND state = ?", shopID, models.JobAwaitingReview)
	if !all {
		q = q.Where("id IN ?", ids)
	}
	var jobs []models.ImageJob
	if err := q.Order("id").Find(&jobs).Error; err != nil {
		return 0, fmt.Errorf("held jobs of shop %d: %w", shopID, err)
	}
	n := 0
	for i := range jobs {
		err := p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			changed, err := p.decide(ctx, tx, &jobs[i], approve, reason)
			if changed {
				n++
			}
			return err
		})
		if err != nil {
			return n, err
		}
	}
	if n > 0 {
		p.Notify()
	}
	return n, nil
}

// ReviewReminder counts the shop's held images older than its reminder
// days that the dashboard has not pointed out yet.
func (p *Pipeline) ReviewReminder(ctx context.Context, shop *models.Shop) (int64, error) {
	s, err := LoadSettings(ctx, p.o.DB, p.o.Sealer, shop)
	if err != nil {
		return 0, err
	}
	var n int64
	cut := p.now().Add(-time.Duration(s.ReviewReminderDays) * 24 * time.Hour)
	err = p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("shop_id = ? AND state = ? AND review_held_at < ? AND review_notified_at IS NULL", shop.ID, models.JobAwaitingReview, cut).
		Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("held images to remind of: %w", err)
	}
	return n, nil
}

// DismissReviewReminder records that the merchant saw the reminder: the
// images it named are not pointed out again (they still wait, and are
// never published by themselves).
func (p *Pipeline) DismissReviewReminder(ctx context.Context, shop *models.Shop) error {
	s, err := LoadSettings(ctx, p.o.DB, p.o.Sealer, shop)
	if err != nil {
		return err
	}
	cut := p.now().Add(-time.Duration(s.ReviewReminderDays) * 24 * time.Hour)
	return p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("shop_id = ? AND state = ? AND review_held_at < ? AND review_notified_at IS NULL", shop.ID, models.JobAwaitingReview, cut).
		Update("review_notified_at", p.now()).Error
}
