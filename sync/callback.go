package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
)

// RecordCallback notes Remove The Background's callback for a job, once.
// It never downloads anything: it only wakes the job so a worker asks GET
// Status, whose answer is what counts. It implements rtb.CallbackStore.
func (p *Pipeline) RecordCallback(ctx context.Context, jobID uint64, cb rtb.Callback) (rtb.CallbackOutcome, error) {
	out, err := p.recordCallback(ctx, jobID, cb)
	if errors.Is(err, errCallbackRaced) {
		// The job changed between this callback's read and its write (its
		// submission's ticket was written meanwhile): look again, once,
		// from the job as it is now. Should it race again, the error asks
		// the service to call back later.
		out, err = p.recordCallback(ctx, jobID, cb)
	}
	return out, err
}

// errCallbackRaced: a callback's note found the job no longer as its read
// showed it.
var errCallbackRaced = errors.New("the job changed while its callback was recorded")

func (p *Pipeline) recordCallback(ctx context.Context, jobID uint64, cb rtb.Callback) (rtb.CallbackOutcome, error) {
	// Most callbacks after the first are repeats (the service retries, and
	// may send twice): answer those from one read, without a transaction.
	var seen models.ImageJob
	err := p.o.DB.WithContext(ctx).Select("id", "ticket", "callback_at").Where("id = ?", jobID).Take(&seen).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return rtb.CallbackUnknownJob, nil
	}
	if err != nil {
		return 0, err
	}
	if seen.Ticket != nil && seen.CallbackAt != nil {
		if strings.EqualFold(*seen.Ticket, cb.Ticket) {
			return rtb.CallbackDuplicate, nil
		}
		return rtb.CallbackTicketMismatch, nil
	}
	var out rtb.CallbackOutcome
	woke := false
	err = p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var job models.ImageJob
		if err := tx.Where("id = ?", jobID).Take(&job).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				out = rtb.CallbackUnknownJob
				return nil
			}
			return err
		}
		now := p.now()
		if job.Ticket == nil {
			// The submission's answer was lost (the job is submitting,
			// failed after the merchant was told it was unconfirmed, or
			// was cancelled by an uninstall meanwhile). A callback on this
			// job's own secret URL proves Remove The Background accepted
			// it: adopt the ticket; GET Status with the shop's credentials
			// will confirm it before anything is written. A cancelled job
			// keeps the ticket for a reinstall unless the shop is back.
			adoptable := []string{models.JobSubmitting, models.JobFailed, models.JobCancelled}
			if job.SubmitStartedAt == nil || !slices.Contains(adoptable, job.State) {
				out = rtb.CallbackTicketMismatch
				return nil
			}
			// A job sent again after its result was rejected may still
			// hear from its earlier, settled submission.
			var settled int64
			if err := tx.Model(&models.JobCharge{}).Where("job_id = ? AND LOWER(ticket) = LOWER(?)", job.ID, cb.Ticket).Count(&settled).Error; err != nil {
				return err
			}
			if settled > 0 {
				out = rtb.CallbackTicketMismatch
				return nil
			}
			if job.LeaseOwner != nil {
				// The submitting worker still holds the job (its answer
				// not read yet, or it died and its lease has not expired).
				// The job is the worker's to change, and the service calls
				// back only three times: note the ticket for whoever
				// resolves the submission.
				var err error
				out, err = p.noteCallbackTicket(tx, &job, cb.Ticket, now)
				return err
			}
			fields := map[string]any{
				"state": models.JobAwaitingRTB, "ticket": cb.Ticket, "submitted_at": job.SubmitStartedAt, "callback_at": now,
				"run_at": ms(now), "error": "",
			}
			if job.State == models.JobCancelled {
				var shop models.Shop
				if err := tx.Select("id", "state").Where("id = ?", job.ShopID).Take(&shop).Error; err != nil {
					return err
				}
				if shop.State != models.ShopInstalled {
					fields["state"], fields["run_at"], fields["error"] = models.JobCancelled, nil, job.Error
				}
			}
			ok, err := p.transition(ctx, tx, &job, adoptable, fields, "unconfirmed submission resolved by the callback, ticket "+cb.Ticket)
			if err == nil && ok {
				out, woke = rtb.CallbackRecorded, true
			} else if err == nil {
				out = rtb.CallbackDuplicate
			}
			return err
		}
		if !strings.EqualFold(*job.Ticket, cb.Ticket) {
			out = rtb.CallbackTicketMismatch
			return nil
		}
		fields := map[string]any{"callback_at": now, "updated_at": now}
		q := tx.Model(&models.ImageJob{}).Where("id = ? AND callback_at IS NULL", job.ID)
		res := q.Updates(fields)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			out = rtb.CallbackDuplicate
			return nil
		}
		out = rtb.CallbackRecorded
		if err := p.event(tx, &job, job.State, job.State, "callback received"); err != nil {
			return err
		}
		// Wake the job unless a worker holds it (that worker sees the
		// callback when it finishes).
		if job.State == models.JobAwaitingRTB {
			res := tx.Model(&models.ImageJob{}).Where("id = ? AND state = ? AND lease_owner IS NULL", job.ID, models.JobAwaitingRTB).
				Update("run_at", ms(now))
			woke = res.RowsAffected > 0
			return res.Error
		}
		return nil
	})
	if woke {
		p.Notify()
	}
	return out, err
}

// noteCallbackTicket records the ticket a callback named for a submission
// still in flight, once, without touching what the worker owns.
func (p *Pipeline) noteCallbackTicket(tx *gorm.DB, job *models.ImageJob, ticket string, now time.Time) (rtb.CallbackOutcome, error) {
	if job.CallbackTicket != nil {
		if strings.EqualFold(*job.CallbackTicket, ticket) {
			return rtb.CallbackDuplicate, nil
		}
		return rtb.CallbackTicketMismatch, nil
	}
	// Noted only while the worker that was read still holds the job: one
	// that has let it go since no longer looks for a note.
	res := tx.Model(&models.ImageJob{}).Where("id = ? AND ticket IS NULL AND callback_ticket IS NULL AND lease_owner = ?", job.ID, *job.LeaseOwner).
		Updates(map[string]any{"callback_ticket": ticket, "callback_at": now})
	if res.Error != nil {
		return 0, res.Error
	}
	if res.RowsAffected == 0 {
		// Read holding neither, with that worker on it: the worker wrote
		// the ticket or let the job go, or another callback noted one,
		// since. Answering "duplicate" would lose the first cases' wake-up.
		return 0, errCallbackRaced
	}
	return rtb.CallbackRecorded, p.event(tx, job, job.State, job.State, "callback while the submission was in flight: ticket "+ticket+" noted")
}

// callbackNote reads what callbacks noted on a job while its worker held
// it: the ticket one named (nil if none) and when the first came (nil if
// none came).
func (p *Pipeline) callbackNote(ctx context.Context, jobID uint64) (ticket *string, at *time.Time, err error) {
	var j models.ImageJob
	if err := p.o.DB.WithContext(ctx).Select("id", "callback_ticket", "callback_at").Where("id = ?", jobID).Take(&j).Error; err != nil {
		return nil, nil, fmt.Errorf("read callbacks of job %d: %w", jobID, err)
	}
	return j.CallbackTicket, j.CallbackAt, nil
}
