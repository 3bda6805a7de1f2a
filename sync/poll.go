package sync

import (
	"time"

	"rtbshopify/models"
)

// nextPoll is when to ask GET Status about a job that is not delivered
// yet. The job waits as long again as it has waited since it was last
// heard of (its submission, or a callback that came before the delivery),
// at least PollInterval and at most MaxPollInterval: a dropped callback is
// noticed after PollInterval, and an image the editors take two days over
// costs a few dozen asks, not hundreds.
func (p *Pipeline) nextPoll(j *models.ImageJob) int64 {
	s := p.o.Schedule
	now := p.now()
	last := j.SubmittedAt
	if j.CallbackAt != nil && (last == nil || j.CallbackAt.After(*last)) {
		last = j.CallbackAt
	}
	wait := s.PollInterval
	if last != nil {
		wait = max(wait, now.Sub(*last))
	}
	return ms(now.Add(min(wait, s.MaxPollInterval)))
}

// firstPoll is when a job just submitted is asked about if its callback
// has not come by then.
func (p *Pipeline) firstPoll(submitted time.Time) int64 {
	return ms(submitted.Add(p.o.Schedule.PollInterval))
}
