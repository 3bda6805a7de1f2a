package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/text"
)

// Schedule sets how often each cron job runs (cron specs, e.g. "@every 5m").
type Schedule struct {
	PollRTB       string // GET Status for jobs waiting without a callback
	RescueLeases  string // resolve jobs whose worker died
	Reconcile     string // catch products whose webhooks were missed
	RefreshTokens string // refresh access tokens about to expire
	Daily         string // fail overdue jobs, purge old deliveries
	// PollInterval is how long a job waits for its callback before GET
	// Status is asked (after its submission, or after a callback that found
	// it not delivered yet); each later ask waits as long as the job has
	// already waited, so the intervals double up to MaxPollInterval.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// Overdue is how long past its requested delivery a job is failed.
	Overdue time.Duration
	// Disabled turns the scheduler off (tests drive the jobs directly).
	Disabled bool
}

func (s Schedule) withDefaults() Schedule {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.PollRTB, "@every 5m")
	def(&s.RescueLeases, "@every 1m")
	def(&s.Reconcile, "@every 15m")
	def(&s.RefreshTokens, "@every 15m")
	def(&s.Daily, "0 3 * * *")
	if s.PollInterval == 0 {
		s.PollInterval = 30 * time.Minute
	}
	if s.MaxPollInterval == 0 {
		s.MaxPollInterval = 3 * time.Hour
	}
	s.MaxPollInterval = max(s.MaxPollInterval, s.PollInterval)
	if s.Overdue == 0 {
		s.Overdue = 24 * time.Hour
	}
	return s
}

type cronRunner struct{ c *cron.Cron }

func (r *cronRunner) stop(ctx context.Context) {
	select {
	case <-r.c.Stop().Done():
	case <-ctx.Done():
	}
}

// CronJob is one named periodic task.
type CronJob struct {
	Name string
	Spec string
	Run  func(ctx context.Context) error
}

// CronJobs lists the pipeline's periodic tasks.
func (p *Pipeline) CronJobs() []CronJob {
	s := p.o.Schedule
	return []CronJob{
		{"poll_rtb", s.PollRTB, p.WakeStalePolls},
		{"rescue_leases", s.RescueLeases, p.RescueLeases},
		{"reconcile", s.Reconcile, func(ctx context.Context) error { _, err := p.Reconcile(ctx); return err }},
		{"refresh_tokens", s.RefreshTokens, func(ctx context.Context) error {
			if p.o.Tokens == nil {
				return nil
			}
			_, err := p.o.Tokens.RefreshExpiring(ctx, 30*time.Minute)
			return err
		}},
		{"daily", s.Daily, p.Daily},
	}
}

func (p *Pipeline) startCron(ctx context.Context) *cronRunner {
	if p.o.Schedule.Disabled {
		return nil
	}
	cl := cronLogger{p.log}
	c := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	for _, job := range p.CronJobs() {
		spec := job.Spec
		sched, err := cron.ParseStandard(spec)
		if err != nil {
			p.log.Error("bad cron spec; job not scheduled", "job", job.Name, "spec", spec, "err", err)
			continue
		}
		c.Schedule(sched, cron.FuncJob(func() {
			if _, err := p.RunOnce(ctx, job, sched); err != nil {
				p.log.Error("cron job failed", "job", job.Name, "err", err)
			}
		}))
	}
	c.Start()
	return &cronRunner{c: c}
}

// RunOnce runs a cron job for the current period unless another replica
// already did: the unique (name, period) row is the claim.
func (p *Pipeline) RunOnce(ctx context.Context, job CronJob, sched cron.Schedule) (bool, error) {
	period := periodOf(sched, p.now())
	run := models.CronRun{Name: job.Name, Period: period, Owner: p.nodeID, StartedAt: p.now()}
	if err := p.o.DB.WithContext(ctx).Create(&run).Error; err != nil {
		if models.IsDuplicate(err) {
			return false, nil
		}
		return false, fmt.Errorf("claim cron %s %s: %w", job.Name, period, err)
	}
	err := job.Run(ctx)
	fields := map[string]any{"finished_at": p.now()}
	if err != nil {
		fields["error"] = text.Truncate(err.Error(), 2000)
	}
	p.o.DB.WithContext(context.WithoutCancel(ctx)).Model(&models.CronRun{}).Where("id = ?", run.ID).Updates(fields)
	return true, err
}

// periodOf names the schedule period containing t: the time of the run
// that was due at or before t, found by stepping from a start well before.
func periodOf(sched cron.Schedule, t time.Time) string {
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		return t.Truncate(every.Delay).UTC().Format(time.RFC3339)
	}
	prev := t.Add(-49 * time.Hour)
	for next := sched.Next(prev); !next.After(t); next = sched.Next(next) {
		prev = next
	}
	return prev.UTC().Format(time.RFC3339)
}

type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}

// WakeStalePolls makes due the jobs awaiting Remove The Background that have
// no time to be asked at (a job normally carries its next poll in run_at;
// this catches any that lost it), once they waited PollInterval.
func (p *Pipeline) WakeStalePolls(ctx context.Context) error {
	cut := p.now().Add(-p.o.Schedule.PollInterval)
	res := p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("state = ? AND run_at IS NULL AND lease_owner IS NULL AND updated_at < ?", models.JobAwaitingRTB, cut).
		Updates(map[string]any{"run_at": ms(p.now())})
	if res.RowsAffected > 0 {
		p.log.Info("polling jobs that got no callback", "jobs", res.RowsAffected)
		p.Notify()
	}
	return res.Error
}

// RescueLeases resolves jobs whose worker died. A job that was being
// worked on comes back by itself when its lease expires (its run_at is the
// lease expiry). A job that died while submitting has an unknown outcome:
// it is never resubmitted by itself; it waits for the callback, and the
// merchant is told they may resubmit.
func (p *Pipeline) RescueLeases(ctx context.Context) error {
	now := ms(p.now())
	var jobs []models.ImageJob
	if err := p.o.DB.WithContext(ctx).Where("state = ? AND lease_owner IS NOT NULL AND lease_until < ?", models.JobSubmitting, now).Find(&jobs).Error; err != nil {
		return err
	}
	for i := range jobs {
		j := &jobs[i]
		fields := map[string]any{"lease_owner": nil, "lease_until": nil, "run_at": nil, "updated_at": p.now(),
			"error": "The worker stopped while submitting, so we cannot tell whether Remove The Background accepted the image. If it did, its delivery completes this job; otherwise Retry resubmits it."}
		to, msg := j.State, "worker lost while submitting: outcome unknown, not resubmitted"
		if j.CallbackTicket != nil {
			// Its callback came while the worker held it: the ticket is
			// known, so the job waits for that delivery.
			to, msg = models.JobAwaitingRTB, "worker lost while submitting: ticket "+*j.CallbackTicket+" adopted from its callback"
			fields["state"], fields["ticket"], fields["submitted_at"], fields["run_at"], fields["error"] = to, *j.CallbackTicket, j.SubmitStartedAt, now, ""
		}
		err := p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			res := tx.Model(&models.ImageJob{}).Where("id = ? AND lease_owner = ? AND state = ? AND ticket IS NULL", j.ID, *j.LeaseOwner, models.JobSubmitting).
				Updates(fields)
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
			return p.event(tx, j, j.State, to, msg)
		})
		if err != nil {
			return err
		}
	}
	// Clear expired leases on jobs nobody is due to take (run_at NULL).
	return p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("lease_owner IS NOT NULL AND lease_until < ? AND run_at IS NULL AND state <> ?", now, models.JobSubmitting).
		Updates(map[string]any{"lease_owner": nil, "lease_until": nil}).Error
}

// Daily fails jobs far past their requested delivery time and purges
// webhook deliveries older than 7 days and old cron runs.
func (p *Pipeline) Daily(ctx context.Context) error {
	cut := p.now().Add(-p.o.Schedule.Overdue)
	var jobs []models.ImageJob
	err := p.o.DB.WithContext(ctx).Where("state IN ? AND due_by < ? AND lease_owner IS NULL",
		[]string{models.JobAwaitingRTB, models.JobSubmitting}, cut).Find(&jobs).Error
	if err != nil {
		return err
	}
	var errs []error
	for i := range jobs {
		j := &jobs[i]
		reason := fmt.Sprintf("Remove The Background has not delivered this image; it was due %s. Contact their support", j.DueBy.Format("2006-01-02 15:04 MST"))
		if j.Ticket != nil {
			reason += " with ticket " + *j.Ticket
		}
		reason += ", or use Retry."
		err := p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			_, err := p.transition(ctx, tx, j, []string{j.State}, map[string]any{"state": models.JobFailed, "error": reason, "run_at": nil}, "overdue")
			return err
		})
		errs = append(errs, err)
	}
	errs = append(errs, p.o.DB.WithContext(ctx).Where("received_at < ?", p.now().Add(-7*24*time.Hour)).Delete(&models.WebhookDelivery{}).Error)
	errs = append(errs, p.o.DB.WithContext(ctx).Where("started_at < ?", p.now().Add(-30*24*time.Hour)).Delete(&models.CronRun{}).Error)
	// Jobs held by the budget try again: the month may have turned.
	errs = append(errs, p.resumeOverBudget(ctx, 0))
	return errors.Join(errs...)
}

// resumeOverBudget re-queues jobs that waited for budget (of one shop, or
// of all shops when shopID is 0); they check the budget again when claimed.
func (p *Pipeline) resumeOverBudget(ctx context.Context, shopID uint64) error {
	q := p.o.DB.WithContext(ctx).Where("state = ?", models.JobOverBudget)
	if shopID != 0 {
		q = q.Where("shop_id = ?", shopID)
	}
	var jobs []models.ImageJob
	if err := q.Find(&jobs).Error; err != nil {
		return err
	}
	for i := range jobs {
		err := p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			_, err := p.transition(ctx, tx, &jobs[i], []string{models.JobOverBudget},
				map[string]any{"state": models.JobQueued, "run_at": ms(p.now()), "error": ""}, "budget check again")
			return err
		})
		if err != nil {
			return err
		}
	}
	if len(jobs) > 0 {
		p.Notify()
	}
	return nil
}

// SettingsChanged lets jobs held by the budget try again after the merchant
// changed the settings (a raised budget, say).
func (p *Pipeline) SettingsChanged(ctx context.Context, shopID uint64) error {
	return p.resumeOverBudget(ctx, shopID)
}
