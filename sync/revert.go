package sync

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/admin"
)

// Revert asks for a done job's original image to be restored. The worker
// does it; the job turns reverted when the product shows the original again.
func (p *Pipeline) Revert(ctx context.Context, shopID, jobID uint64) (*models.ImageJob, error) {
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		if j.State != models.JobDone {
			return &ConflictError{"Only a finished job can be reverted; this one is " + j.State + "."}
		}
		if j.Step == StepRevertRequested {
			return nil
		}
		_, err := p.transition(ctx, tx, j, []string{models.JobDone}, map[string]any{"step": StepRevertRequested, "run_at": ms(p.now())}, "revert requested")
		return err
	})
}

// Retry re-queues a failed job from where it stopped: a delivered image is
// written back again, a submitted one polled again, and one never accepted
// (or whose submission is uncertain) submitted again — the merchant's
// explicit consent to pay for it once more.
func (p *Pipeline) Retry(ctx context.Context, shopID, jobID uint64) (*models.ImageJob, error) {
	return p.act(ctx, shopID, jobID, func(tx *gorm.DB, j *models.ImageJob) error {
		uncertain := j.State == models.JobSubmitting && j.Ticket == nil && j.LeaseOwner == nil
		if j.State != models.JobFailed && !uncertain {
			return &ConflictError{"Only a failed job can be retried; this one is " + j.State + "."}
		}
		fields := map[string]any{"attempts": 0, "error": "", "run_at": ms(p.now()), "lease_owner": nil, "lease_until": nil}
		msg := "retry requested"
		switch {
		case j.DeliveredAt != nil:
			fields["state"] = models.JobWritingBack
		case j.Ticket != nil:
			fields["state"] = models.JobAwaitingRTB
		case j.CallbackTicket != nil:
			// A callback named its ticket while the submission was in
			// flight: it was accepted, so follow it rather than pay again.
			fields["state"], fields["ticket"], fields["submitted_at"] = models.JobAwaitingRTB, *j.CallbackTicket, j.SubmitStartedAt
			msg = "retry requested; following ticket " + *j.CallbackTicket + " named by the job's callback"
		default:
			fields["state"] = models.JobQueued
			fields["submit_started_at"], fields["submit_month"], fields["price"] = nil, nil, ""
			if j.SubmitStartedAt != nil {
				msg = "resubmit requested by the merchant after an unconfirmed submission"
			}
			// The unconfirmed submission may have been billed: its charge
			// stays in the month's budget beside the resubmission's.
			if j.SubmitMonth != nil && j.Price != "" {
				charge := models.JobCharge{ShopID: j.ShopID, JobID: j.ID, Month: *j.SubmitMonth, Price: j.Price, CreatedAt: p.now()}
				if err := tx.Create(&charge).Error; err != nil {
					return fmt.Errorf("keep the charge of job %d: %w", j.ID, err)
				}
			}
		}
		_, err := p.transition(ctx, tx, j, []string{j.State}, fields, msg)
		return err
	})
}

// act loads a shop's job under a transaction and applies an API action.
func (p *Pipeline) act(ctx context.Context, shopID, jobID uint64, fn func(tx *gorm.DB, j *models.ImageJob) error) (*models.ImageJob, error) {
	var job models.ImageJob
	err := p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ? AND shop_id = ?", jobID, shopID).Take(&job).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			return err
		}
		return fn(tx, &job)
	})
	if err != nil {
		return nil, err
	}
	p.Notify()
	return &job, nil
}

// GetJob returns one of a shop's jobs.
func (p *Pipeline) GetJob(ctx context.Context, shopID, jobID uint64) (*models.ImageJob, error) {
	var job models.ImageJob
	err := p.o.DB.WithContext(ctx).Where("id = ? AND shop_id = ?", jobID, shopID).Take(&job).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &job, err
}

// ListJobs pages a shop's jobs newest first. The cursor is the last id seen.
func (p *Pipeline) ListJobs(ctx context.Context, shopID uint64, state string, limit int, cursor string) ([]models.ImageJob, string, error) {
	q := p.o.DB.WithContext(ctx).Where("shop_id = ?", shopID)
	if state != "" {
		q = q.Where("state = ?", state)
	}
	if cursor != "" {
		before, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", ErrBadCursor
		}
		q = q.Where("id < ?", before)
	}
	var jobs []models.ImageJob
	if err := q.Order("id DESC").Limit(limit + 1).Find(&jobs).Error; err != nil {
		return nil, "", err
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = strconv.FormatUint(jobs[limit-1].ID, 10)
	}
	return jobs, next, nil
}

// revert restores the original image on the product, exactly: its bytes,
// position, alt text and variant links.
func (p *Pipeline) revert(ctx context.Context, l *lease) error {
	j := l.job
	shop, _, err := p.loadShop(ctx, j.ShopID)
	if err != nil {
		return p.fail(ctx, l, err, "Could not read the shop.")
	}
	c := p.productClient(shop.Domain, l)
	if err := p.awaitPending(ctx, l, c); err != nil {
		return p.revertFailed(ctx, l, err)
	}
	product, err := c.Product(ctx, j.ProductID)
	if errors.Is(err, admin.ErrNotFound) {
		return l.release(ctx, map[string]any{"step": "", "error": "The product was deleted; there is nothing to revert."}, nil, "revert: product gone")
	}
	if err != nil {
		return p.revertFailed(ctx, l, err)
	}
	w := &writer{p: p, l: l, c: c}
	switch {
	case j.ResultMediaID == j.MediaID:
		err = w.revertInPlace(ctx)
	case j.WriteMode == ModeAdd:
		if m, _ := findMedia(product, j.ResultMediaID); m != nil {
			err = c.DetachFile(ctx, j.ResultMediaID, j.ProductID)
		}
	default:
		err = w.revertNew(ctx, product)
	}
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, ErrLeaseLost) && j.WriteMode == ModeReplace && j.ResultMediaID != j.MediaID {
			w.undoRevertNew(context.WithoutCancel(ctx))
		}
		return p.revertFailed(ctx, l, err)
	}
	return l.release(ctx, map[string]any{"state": models.JobReverted, "step": "", "error": ""}, nil, "original restored")
}

// revertFailed keeps the job done (the processed image is still in place)
// and retries the revert a few times before reporting it.
func (p *Pipeline) revertFailed(ctx context.Context, l *lease, err error) error {
	if errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
		return err
	}
	attempts := l.job.Attempts + 1
	if retryable(err) && attempts < p.o.MaxAttempts {
		return l.release(ctx, map[string]any{"attempts": attempts}, ptr(ms(p.now().Add(backoff(attempts)))), "revert failed, will retry: "+err.Error())
	}
	return l.release(ctx, map[string]any{"step": "", "attempts": 0, "error": "Could not restore the original image; the processed one is still in place. Try Revert again."}, nil, "revert failed: "+err.Error())
}

func (w *writer) revertInPlace(ctx context.Context) error {
	j := w.l.job
	files, err := w.c.FileStatus(ctx, j.OriginalFileID)
	if err != nil {
		return err
	}
	orig, ok := files[j.OriginalFileID]
	if !ok || orig.URL == "" {
		return fmt.Errorf("the kept original %s is not in Files any more", j.OriginalFileID)
	}
	if err := w.c.ReplaceFileImage(ctx, j.MediaID, orig.URL); err != nil {
		return err
	}
	return w.waitReady(ctx, j.MediaID)
}

// revertNew re-attaches the detached original where the processed image
// is, gives it back its variants, and detaches the processed image. On a
// product that holds Shopify's maximum of media, the processed image makes
// room first: its place is recorded, it is detached, and the original is
// attached there; a revert taken up again finds neither on the product and
// goes on from the recorded place.
func (w *writer) revertNew(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	processed, _ := findMedia(product, j.ResultMediaID)
	pos := j.OriginalPosition
	if processed != nil {
		pos = processed.Position
	}
	if m, _ := findMedia(product, j.MediaID); m == nil {
		if processed != nil && len(product.Media) >= maxProductMedia {
			if err := w.l.update(ctx, map[string]any{"original_position": pos},
				fmt.Sprintf("the product holds Shopify's maximum of %d media: the processed image is detached first, to make room for the original", maxProductMedia)); err != nil {
				return err
			}
			if err := w.c.DetachFile(ctx, j.ResultMediaID, j.ProductID); err != nil {
				return err
			}
			processed = nil
		}
		if err := w.c.AttachFile(ctx, j.MediaID, j.ProductID, nil); err != nil {
			return err
		}
		if err := w.waitReady(ctx, j.MediaID); err != nil {
			return err
		}
		var err error
		if product, err = w.c.Product(ctx, j.ProductID); err != nil {
			return err
		}
		processed, _ = findMedia(product, j.ResultMediaID)
	}
	if err := w.moveTo(ctx, product, j.MediaID, pos); err != nil {
		return err
	}
	if err := w.relink(ctx, product, variantList(j.VariantIDs), j.ResultMediaID, j.MediaID); err != nil {
		return err
	}
	if processed != nil {
		return w.c.DetachFile(ctx, j.ResultMediaID, j.ProductID)
	}
	return nil
}

// undoRevertNew puts a half-done revert back to the processed state: the
// variants on the processed image and the re-attached original detached
// again, so the product never shows both.
func (w *writer) undoRevertNew(ctx context.Context) {
	j := w.l.job
	product, err := w.c.Product(ctx, j.ProductID)
	if err != nil {
		w.p.log.Error("undo revert: read product", "job", j.ID, "err", err)
		return
	}
	processed, _ := findMedia(product, j.ResultMediaID)
	orig, _ := findMedia(product, j.MediaID)
	if processed == nil && orig == nil {
		// The processed image made room on a full product and the original
		// could not take its place: the processed image goes back there.
		w.restoreProcessed(ctx)
		return
	}
	if processed == nil || orig == nil {
		return
	}
	if err := w.relink(ctx, product, variantList(j.VariantIDs), j.MediaID, j.ResultMediaID); err != nil {
		w.p.log.Error("undo revert: variant links", "job", j.ID, "err", err)
	}
	if err := w.c.DetachFile(ctx, j.MediaID, j.ProductID); err != nil {
		w.p.log.Error("undo revert: detach original", "job", j.ID, "err", err)
	}
}

// restoreProcessed attaches the processed image again at the place recorded
// when it made room, with the variants it had.
func (w *writer) restoreProcessed(ctx context.Context) {
	j := w.l.job
	if err := w.c.AttachFile(ctx, j.ResultMediaID, j.ProductID, nil); err != nil {
		w.p.log.Error("undo revert: attach the processed image again", "job", j.ID, "err", err)
		return
	}
	if err := w.waitReady(ctx, j.ResultMediaID); err != nil {
		w.p.log.Error("undo revert: processed image not ready", "job", j.ID, "err", err)
		return
	}
	product, err := w.c.Product(ctx, j.ProductID)
	if err == nil {
		err = w.moveTo(ctx, product, j.ResultMediaID, j.OriginalPosition)
	}
	if err == nil {
		err = w.relink(ctx, product, variantList(j.VariantIDs), j.MediaID, j.ResultMediaID)
	}
	if err != nil {
		w.p.log.Error("undo revert: put the processed image back in its place", "job", j.ID, "err", err)
	}
}
