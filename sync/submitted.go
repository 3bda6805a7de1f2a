package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
)

// uncertainSubmission is what the merchant reads on a job whose submission
// may or may not have been accepted (and billed).
const uncertainSubmission = "Remove The Background did not confirm the submission. If it accepted the image, its delivery completes this job by itself; otherwise Retry resubmits it."

// notSubmitted records a submission that brought no ticket back. What it
// records is written even when the worker is stopping (its context is
// cancelled): otherwise the job would stay submitting and look unconfirmed.
func (p *Pipeline) notSubmitted(ctx context.Context, l *lease, err error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeAfterStop)
	defer cancel()
	if rtb.MaybeSubmitted(err) {
		// Unknown outcome, unless the job's callback named its ticket while
		// the call was in flight. It may have been accepted and billed: the
		// job waits for its callback, which, once the lease is gone, adopts
		// the ticket itself. One noted while the lease is still held is
		// taken up here: the release is written only if none is noted.
		if ticket, _, nerr := p.callbackNote(wctx, l.job.ID); nerr == nil && ticket != nil {
			return p.submitted(ctx, l, *ticket)
		}
		rerr := l.releaseIf(wctx, "callback_ticket IS NULL", map[string]any{"error": uncertainSubmission}, nil, "submission uncertain: "+err.Error())
		if errors.Is(rerr, ErrLeaseLost) {
			// A callback noted its ticket meanwhile, or the lease is gone.
			if ticket, _, nerr := p.callbackNote(wctx, l.job.ID); nerr == nil && ticket != nil {
				return p.submitted(ctx, l, *ticket)
			}
		}
		return rerr
	}
	// Known not accepted: give the budget back.
	unpaid := map[string]any{"submit_started_at": nil, "submit_month": nil}
	if ctx.Err() != nil {
		// Stopped before a byte left: queued again as if never claimed.
		unpaid["state"] = models.JobQueued
		return l.release(wctx, unpaid, ptr(ms(p.now())), "stopped before the submission left; queued again")
	}
	// Retried or failed with the budget given back, in one write: the
	// worker may be stopping, and the job must not be left marked unpaid
	// but not yet due again.
	return p.failWith(wctx, l, err, submitFailureMessage(err), unpaid)
}

// writeAfterStop bounds the database writes that record a submission's
// outcome after the worker was told to stop.
const writeAfterStop = 5 * time.Second

// submitted records the ticket of an accepted submission. The ticket is
// the only proof of a paid image, so it is kept whatever happened to the
// job meanwhile: if the shop was uninstalled during the call the job is
// cancelled with its ticket (a reinstall finishes it), and if the lease
// was lost the ticket is still written onto the job's submission.
func (p *Pipeline) submitted(ctx context.Context, l *lease, ticket string) error {
	// The worker may be stopping; the ticket must be written all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeAfterStop)
	defer cancel()
	now := p.now()
	fields := map[string]any{"state": models.JobAwaitingRTB, "ticket": ticket, "submitted_at": now}
	var err error
	var shop models.Shop
	if serr := p.o.DB.WithContext(ctx).Select("id", "state").Where("id = ?", l.job.ShopID).Take(&shop).Error; serr == nil && shop.State != models.ShopInstalled {
		fields["state"], fields["error"] = models.JobCancelled, "The app was uninstalled."
		err = l.release(ctx, fields, nil, "submitted, ticket "+ticket+"; the app was uninstalled meanwhile, the ticket is kept for a reinstall")
	} else {
		// Asked about at the first poll, or at once if its callback came
		// while the call was in flight.
		err = l.releaseAwaiting(ctx, fields, p.firstPoll(now), "submitted, ticket "+ticket)
	}
	if !errors.Is(err, ErrLeaseLost) {
		return err
	}
	if kerr := p.keepTicket(ctx, l.job, ticket); kerr != nil {
		return errors.Join(err, kerr)
	}
	return err
}

// keepTicket writes a ticket onto a job whose lease this worker lost, if
// the job still has no ticket and is still the submission that produced
// it (same start time). A job waiting with an unconfirmed submission now
// waits for that ticket's delivery; a cancelled one stays cancelled and is
// finished by a reinstall.
func (p *Pipeline) keepTicket(ctx context.Context, j *models.ImageJob, ticket string) error {
	if j.SubmitStartedAt == nil {
		return nil
	}
	return p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var cur models.ImageJob
		if err := tx.Where("id = ?", j.ID).Take(&cur).Error; err != nil {
			return fmt.Errorf("keep ticket of job %d: %w", j.ID, err)
		}
		// MySQL keeps microseconds of the start time, Go nanoseconds.
		if cur.Ticket != nil || cur.SubmitStartedAt == nil || cur.SubmitStartedAt.Sub(*j.SubmitStartedAt).Abs() >= time.Millisecond {
			return nil
		}
		fields := map[string]any{"ticket": ticket, "submitted_at": p.now(), "updated_at": p.now()}
		to := cur.State
		if cur.State == models.JobSubmitting || cur.State == models.JobFailed {
			to = models.JobAwaitingRTB
			fields["state"], fields["error"], fields["run_at"] = to, "", p.firstPoll(p.now())
		}
		res := tx.Model(&models.ImageJob{}).Where("id = ? AND ticket IS NULL AND submit_started_at = ?", cur.ID, *cur.SubmitStartedAt).Updates(fields)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return p.event(tx, &cur, cur.State, to, "ticket "+ticket+" kept after the lease was lost")
	})
}
