package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/text"
)

// ErrLeaseLost means another worker owns the job now; the caller must stop
// touching it.
var ErrLeaseLost = errors.New("job lease lost")

func ms(t time.Time) int64 { return t.UnixMilli() }

func ptr[T any](v T) *T { return &v }

// lease is a worker's claim on one job. Every write it makes is fenced by
// the claim token, so a worker whose lease expired and was taken over
// cannot change the job any more.
type lease struct {
	p     *Pipeline
	job   *models.ImageJob
	token string
	// along lists the product's other jobs taken along under this token by
	// a write-back of several images at once, for the heartbeat to renew.
	along atomic.Pointer[[]uint64]
	// taken: this lease's job was taken along by another's write-back.
	taken bool
	// pendingJob is a reorder of the product's media that the product
	// lock's last holder started and may not have seen done: its moves
	// apply once it is, and the gallery is read after.
	pendingJob string
}

// update writes fields of the leased job, and a job event when the state
// changes. It fails with ErrLeaseLost when the lease is gone.
func (l *lease) update(ctx context.Context, fields map[string]any, msg string) error {
	return l.updateIf(ctx, "", fields, msg)
}

// updateIf is update when the row also meets cond (SQL, "" for none);
// ErrLeaseLost then also means the row did not meet it.
//
// A write the database chose as a deadlock's victim (or that waited too
// long for a lock) was rolled back whole: it is made again, a few times.
// Left unwritten, it could leave the job where nothing takes it up: one
// marked retrying after a refused submission, say, whose release with its
// next try's time is lost, waits for nobody.
func (l *lease) updateIf(ctx context.Context, cond string, fields map[string]any, msg string) error {
	for try := 1; ; try++ {
		was := *l.job
		err := l.p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			return l.updateTxIf(ctx, tx, cond, fields, msg)
		})
		if err == nil || !models.IsContention(err) || try == contentionTries {
			return err
		}
		*l.job = was // as the rollback left the row
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try*(10+mrand.IntN(20))) * time.Millisecond):
		}
	}
}

// contentionTries bounds the tries of a lease's write that loses a race
// for locks.
const contentionTries = 4

func (l *lease) updateTx(ctx context.Context, tx *gorm.DB, fields map[string]any, msg string) error {
	return l.updateTxIf(ctx, tx, "", fields, msg)
}

func (l *lease) updateTxIf(ctx context.Context, tx *gorm.DB, cond string, fields map[string]any, msg string) error {
	fields["updated_at"] = l.p.now()
	q := tx.Model(&models.ImageJob{}).Where("id = ? AND lease_owner = ?", l.job.ID, l.token)
	if cond != "" {
		q = q.Where(cond)
	}
	res := q.Updates(fields)
	if res.Error != nil {
		return fmt.Errorf("update job %d: %w", l.job.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrLeaseLost
	}
	from := l.job.State
	applyFields(l.job, fields)
	if to, ok := fields["state"].(string); ok && (to != from || msg != "") {
		return l.p.event(tx, l.job, from, to, msg)
	}
	if msg != "" {
		return l.p.event(tx, l.job, from, from, msg)
	}
	return nil
}

// release ends the lease, leaving the job to run again at runAt (nil: not
// until something wakes it).
func (l *lease) release(ctx context.Context, fields map[string]any, runAt *int64, msg string) error {
	return l.releaseIf(ctx, "", fields, runAt, msg)
}

// releaseIf is release when the row also meets cond (as updateIf); runAt
// may be an SQL expression.
func (l *lease) releaseIf(ctx context.Context, cond string, fields map[string]any, runAt any, msg string) error {
	fields["lease_owner"] = nil
	fields["lease_until"] = nil
	fields["run_at"] = runAt
	return l.updateIf(ctx, cond, fields, msg)
}

// releaseAwaiting ends the lease of a job left waiting for Remove The
// Background, to be asked about again at next, or at once should a
// callback have been noted on it while this worker held it. Such a
// callback did not wake the job (it was this worker's), and a read of
// callback_at before the release would leave a moment in which one is
// noted unseen: the UPDATE reads the row's own callback_at, after any
// callback's write to the row has committed. It is only for a job that
// had no callback noted when this worker took it: a callback is noted
// once, so one noted before says nothing new.
func (l *lease) releaseAwaiting(ctx context.Context, fields map[string]any, next int64, msg string) error {
	return l.releaseIf(ctx, "", fields, gorm.Expr("CASE WHEN callback_at IS NULL THEN ? ELSE ? END", next, ms(l.p.now())), msg)
}

// event appends one line to the job's audit trail.
func (p *Pipeline) event(tx *gorm.DB, job *models.ImageJob, from, to, msg string) error {
	ev := models.JobEvent{JobID: job.ID, ShopID: job.ShopID, FromState: from, ToState: to, Message: text.Truncate(msg, 2000), CreatedAt: p.now()}
	if err := tx.Create(&ev).Error; err != nil {
		return fmt.Errorf("record event of job %d: %w", job.ID, err)
	}
	return nil
}

// transition changes a job's state outside any lease (API actions, cron,
// callbacks, uninstall), only if it is still in one of the expected states
// and no worker holds it: a worker's lease is its promise that nobody else
// changes the job, and its fenced writes would otherwise fail and drop what
// it learnt (a ticket, a media id). A job whose lease expired is free.
// It reports false when it changed nothing.
func (p *Pipeline) transition(ctx context.Context, tx *gorm.DB, job *models.ImageJob, from []string, fields map[string]any, msg string) (bool, error) {
	now := p.now()
	fields["updated_at"] = now
	res := tx.WithContext(ctx).Model(&models.ImageJob{}).
		Where("id = ? AND state IN ? AND (lease_owner IS NULL OR lease_until < ?)", job.ID, from, ms(now)).Updates(fields)
	if res.Error != nil {
		return false, fmt.Errorf("update job %d: %w", job.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	old := job.State
	applyFields(job, fields)
	return true, p.event(tx, job, old, job.State, msg)
}

// applyFields mirrors a column update onto the in-memory job.
func applyFields(j *models.ImageJob, f map[string]any) {
	for k, v := range f {
		switch k {
		case "state":
			j.State = v.(string)
		case "error":
			j.Error = v.(string)
		case "attempts":
			if n, ok := v.(int); ok {
				j.Attempts = n
			}
		case "ticket":
			j.Ticket = asStringPtr(v)
		case "step":
			j.Step = v.(string)
		case "result_media_id":
			j.ResultMediaID = v.(string)
		case "original_file_id":
			j.OriginalFileID = v.(string)
		case "processed_url":
			j.ProcessedURL = v.(string)
		case "final_image_url":
			j.FinalImageURL = v.(string)
		case "original_url":
			j.OriginalURL = v.(string)
		case "original_alt":
			j.OriginalAlt = v.(string)
		case "original_position":
			j.OriginalPosition = v.(int)
		case "original_filename":
			j.OriginalFilename = v.(string)
		case "variant_ids":
			j.VariantIDs = v.(string)
		case "delivered_at":
			j.DeliveredAt = asTimePtr(v)
		case "submitted_at":
			j.SubmittedAt = asTimePtr(v)
		case "submit_started_at":
			j.SubmitStartedAt = asTimePtr(v)
		case "callback_at":
			j.CallbackAt = asTimePtr(v)
		case "due_by":
			j.DueBy = asTimePtr(v)
		case "price":
			j.Price = v.(string)
		case "template_id":
			j.TemplateID = v.(string)
		case "write_mode":
			j.WriteMode = v.(string)
		case "submit_month":
			j.SubmitMonth = asStringPtr(v)
		case "updated_at":
			j.UpdatedAt = v.(time.Time)
		}
	}
}

func asStringPtr(v any) *string {
	switch s := v.(type) {
	case string:
		return &s
	case *string:
		return s
	}
	return nil
}

func asTimePtr(v any) *time.Time {
	switch t := v.(type) {
	case time.Time:
		return &t
	case *time.Time:
		return t
	}
	return nil
}

func variantList(raw string) []string {
	var ids []string
	if raw != "" {
		json.Unmarshal([]byte(raw), &ids)
	}
	return ids
}

func variantJSON(ids []string) string {
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(ids)
	return string(b)
}
