package sync

import (
	"context"
	"errors"
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
// very file instead of uploading a second copy. A held file Shopify failed
// to process (or that is gone from Files) is forgotten and made again, so
// a failed file never blocks the job or its Retry.
func (p *Pipeline) holdForReview(ctx context.Context, l *lease, s Settings, c *admin.Client, img *rtb.Image) (bool, error) {
	j := l.job
	if s.Publish != PublishReview || j.ReviewDecidedAt != nil {
		return false, nil
	}
	w := &writer{p: p, l: l, c: c, img: img, up: delivered(img, "")}
	for try := 0; ; try++ {
		if j.ReviewFileID == "" {
			name := processedName(j, w.up.ext)
			id, err := w.ensureFile(ctx, name, j.OriginalAlt, true, func() (string, error) {
				return c.StageUpload(ctx, name, w.up.mime, w.up.data)
			})
			if err != nil {
				return true, p.fail(ctx, l, err, "Could not keep the processed image in Files for review.")
			}
			if err := l.update(ctx, map[string]any{"review_file_id": id}, "processed image kept in Files for review"); err != nil {
				return true, err
			}
			j.ReviewFileID = id
		}
		// The dashboard shows the file: wait until Shopify serves it.
		err := w.waitReady(ctx, j.ReviewFileID)
		if errors.Is(err, errMediaFailed) || errors.Is(err, admin.ErrNotFound) {
			if ferr := w.forgetHeld(ctx, err); ferr != nil {
				return true, p.fail(ctx, l, ferr, "Could not replace the image held for review that Shopify failed to process.")
			}
			if try > 0 {
				// Shopify may fail to fetch a source for a while: try
				// again later, and fail clearly once the attempts are used up.
				return true, p.fail(ctx, l, fmt.Errorf("%w: %w", errNotReadyYet, err),
					"Shopify could not process the image kept in Files for review; the product is unchanged.")
			}
			continue
		}
		if err != nil {
			return true, p.fail(ctx, l, err, writeBackFailure(err))
		}
		break
	}
	url := ""
	if st, err := c.FileStatus(ctx, j.ReviewFileID); err == nil {
		url = st[j.ReviewFileID].URL
	}
	return true, l.release(ctx, map[string]any{"state": models.JobAwaitingReview, "review_held_at": p.now(), "processed_url": url,
		"attempts": 0, "error": ""}, nil, "held for the merchant's review; the product is unchanged")
}

// forgetHeld deletes the file the job made and recorded to hold its image
// for review, which Shopify failed to process (cause), and clears the
// record, so the next try makes the file again under the same name instead
// of finding the failed one. Only that file of the app's is deleted: never
// the original or its kept copy.
func (w *writer) forgetHeld(ctx context.Context, cause error) error {
	j := w.l.job
	id := j.ReviewFileID
	if id == "" || id == j.MediaID || id == j.OriginalFileID || id == j.ResultMediaID {
		return cause
	}
	msg := "the image held for review is no longer in Files; it is made again"
	if errors.Is(cause, errMediaFailed) {
		// A failed file is on no product: Shopify attaches only READY ones.
		if err := w.c.DeleteFiles(ctx, id); err != nil {
			return err
		}
		msg = "Shopify failed to process the image held for review; it was deleted and is made again"
	}
	if err := w.l.update(ctx, map[string]any{"review_file_id": ""}, msg); err != nil {
		return err
	}
	j.ReviewFileID = ""
	return nil
}

// Approve writes a held image back to the product, exactly as an automatic
// write-back would. A job approved already is answered as it is (a second
// click changes nothing); one rejected, or never held for review, is a
// conflict.
func (p *Pipeline) Approve(ctx context.Context, shopID, jobID uint64) (*models.ImageJob, error) {
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		_, err := p.decide(ctx, tx, j, true, "")
		return err
	})
}

// Reject ends a held image's job as rejected with the merchant's reason;
// nothing on the product changes and the processed image stays in Files.
// A job rejected already is answered as it is; one approved, or never held
// for review, is a conflict.
func (p *Pipeline) Reject(ctx context.Context, shopID, jobID uint64, reason string) (*models.ImageJob, error) {
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		_, err := p.decide(ctx, tx, j, false, reason)
		return err
	})
}

// decide applies the merchant's decision to a held job, reporting whether
// it changed anything. The same decision again changes nothing; the
// opposite one, once the job is decided, is a conflict: a published image
// is taken back with Revert, a rejected one is sent again.
func (p *Pipeline) decide(ctx context.Context, tx *gorm.DB, j *models.ImageJob, approve bool, reason string) (bool, error) {
	if j.ReviewHeldAt == nil {
		return false, &ConflictError{"This image was never held for review; it is " + j.State + "."}
	}
	if j.State != models.JobAwaitingReview {
		approved := j.ReviewDecidedAt != nil && j.State != models.JobRejected
		switch {
		case j.ReviewDecidedAt == nil:
			return false, &ConflictError{"This image no longer waits for review; it is " + j.State + "."}
		case approve && !approved:
			return false, &ConflictError{"This image was rejected, so it cannot be approved. Send it again for a new result."}
		case !approve && approved:
			return false, &ConflictError{"This image was approved already, so it cannot be rejected. Revert it once it is published to restore the original."}
		}
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
	if err != nil {
		return false, err
	}
	if !changed {
		// Decided meanwhile by another click: answer by what it is now.
		if err := tx.WithContext(ctx).Where("id = ?", j.ID).Take(j).Error; err != nil {
			return false, fmt.Errorf("reread job %d: %w", j.ID, err)
		}
		if j.State != models.JobAwaitingReview {
			return p.decide(ctx, tx, j, approve, reason)
		}
		return false, nil
	}
	j.ReviewDecidedAt = &now
	if !approve {
		j.ReviewReason = fields["review_reason"].(string)
	}
	return true, nil
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

// ConfirmError is a send-again whose confirmAmount is missing, is not an
// amount, or is below what the submission costs now.
type ConfirmError struct{ Message string }

func (e *ConfirmError) Error() string { return e.Message }

// SendAgain submits a rejected image to Remove The Background once more:
// a new paid submission, made only once the merchant confirmed at least
// what it costs now (confirm, a decimal string). The earlier submission's
// charge keeps counting in its month's budget, and in its backfill run's
// (whose confirmed amount grows by this price, which the merchant
// confirmed apart). The rejected file is deleted from Files first: the new
// result is made under the same name, and must not be taken for the old
// one. The new result is held for review or published like any other, and
// the month's budget applies as to any submission. Only a rejected job can
// be sent again, so a second click, which finds it queued, submits nothing.
func (p *Pipeline) SendAgain(ctx context.Context, shopID, jobID uint64, confirm string) (*models.ImageJob, error) {
	j, err := p.GetJob(ctx, shopID, jobID)
	if err != nil {
		return nil, err
	}
	if j.State != models.JobRejected {
		return nil, notRejected(j)
	}
	shop, s, err := p.loadShop(ctx, shopID)
	if err != nil {
		return nil, err
	}
	if ok, why := s.Ready(); !ok {
		return nil, &ConflictError{why + " Finish the settings before sending the image again."}
	}
	price, ok := parseMoney(s.TemplatePrice)
	if !ok {
		return nil, &ConflictError{"The template's price is not known. Save the settings again so the app reads it, then send the image again."}
	}
	if err := confirmCovers(confirm, s.TemplatePrice, price); err != nil {
		return nil, err
	}
	if err := p.dropRejectedFile(ctx, shop, j); err != nil {
		return nil, err
	}
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		if j.State != models.JobRejected {
			return notRejected(j)
		}
		month, charged, run, paidTicket := j.SubmitMonth, j.Price, j.BackfillRun, j.Ticket
		now := p.now()
		fields := map[string]any{
			"state": models.JobQueued, "run_at": ms(now), "queue_key": nil, "attempts": 0, "error": "", "step": "",
			"lease_owner": nil, "lease_until": nil, "ticket": nil, "callback_ticket": nil, "callback_at": nil,
			"submit_started_at": nil, "submitted_at": nil, "submit_month": nil, "price": "", "due_by": nil,
			"delivered_at": nil, "final_image_url": "", "processed_url": "", "result_media_id": "",
			"review_held_at": nil, "review_decided_at": nil, "review_reason": "", "review_file_id": "", "review_notified_at": nil,
		}
		changed, err := p.transition(ctx, tx, j, []string{models.JobRejected}, fields,
			"sent again by the merchant, who confirmed "+confirm+"; the rejected result was deleted from Files")
		if err != nil {
			return err
		}
		if !changed {
			return notRejected(j)
		}
		// The earlier submission was paid: it stays in the month's budget
		// beside the new one.
		if month != nil && charged != "" {
			c := models.JobCharge{ShopID: j.ShopID, JobID: j.ID, Month: *month, Price: charged, Ticket: paidTicket, CreatedAt: now}
			if err := tx.Create(&c).Error; err != nil {
				return fmt.Errorf("keep the charge of job %d: %w", j.ID, err)
			}
		}
		if run != nil {
			if err := raiseRunCap(ctx, tx, shopID, *run, price); err != nil {
				return err
			}
		}
		return tx.WithContext(ctx).Where("id = ?", j.ID).Take(j).Error
	})
}

func notRejected(j *models.ImageJob) error {
	return &ConflictError{"Only a rejected image can be sent again; this one is " + j.State + "."}
}

// confirmCovers checks the merchant's confirmed amount against the price
// (as shown, and in ten-thousandths) of one submission now.
func confirmCovers(confirm, shown string, price int64) error {
	if confirm == "" {
		return &ConfirmError{"Confirm the price first: sending this image again costs " + shown + ". Send it as confirmAmount."}
	}
	v, ok := parseMoney(confirm)
	if !ok || v < 0 {
		return &ConfirmError{"confirmAmount must be a decimal amount such as " + shown + "."}
	}
	if v < price {
		return &ConfirmError{"confirmAmount " + confirm + " is below what sending this image again costs now (" + shown + "). Confirm the current price."}
	}
	return nil
}

// dropRejectedFile deletes a rejected job's processed image from Files
// before the image is sent again, unless the merchant put it on the
// product by hand (then it is theirs, and nothing is sent again).
func (p *Pipeline) dropRejectedFile(ctx context.Context, shop *models.Shop, j *models.ImageJob) error {
	c := p.o.Admin(shop.Domain)
	product, err := c.Product(ctx, j.ProductID)
	if errors.Is(err, admin.ErrNotFound) {
		return &ConflictError{"The product was deleted; there is nothing to send again."}
	}
	if err != nil {
		return fmt.Errorf("send job %d again: read product: %w", j.ID, err)
	}
	if m, _ := findMedia(product, j.MediaID); m == nil {
		return &ConflictError{"The image was removed from the product; there is nothing to send again."}
	}
	if j.ReviewFileID == "" {
		return nil
	}
	if m, _ := findMedia(product, j.ReviewFileID); m != nil {
		return &ConflictError{"The rejected image was put on the product by hand. Remove it from the product first, then send the image again."}
	}
	if err := c.DeleteFiles(ctx, j.ReviewFileID); err != nil {
		return fmt.Errorf("send job %d again: delete the rejected file: %w", j.ID, err)
	}
	return nil
}

// raiseRunCap adds a confirmed resubmission's price to the amount its
// backfill run may spend, so the run's cap, which counts the job's earlier
// charge and this submission, neither holds it back nor lets the run spend
// more than the merchant confirmed in all.
func raiseRunCap(ctx context.Context, tx *gorm.DB, shopID uint64, run, price int64) error {
	var b models.Backfill
	err := tx.WithContext(ctx).Where("shop_id = ? AND run = ?", shopID, run).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || err == nil && b.ConfirmAmount == "" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backfill run of shop %d: %w", shopID, err)
	}
	limit, _ := parseMoney(b.ConfirmAmount)
	err = tx.WithContext(ctx).Model(&models.Backfill{}).Where("shop_id = ? AND run = ? AND confirm_amount = ?", shopID, run, b.ConfirmAmount).
		Update("confirm_amount", formatMoney(limit+price)).Error
	if err != nil {
		return fmt.Errorf("raise the confirmed amount of shop %d's backfill: %w", shopID, err)
	}
	return nil
}
