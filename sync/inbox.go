package sync

import (
	"context"
	"time"
)

// Inbox is the webhook receiver's inbox of recorded deliveries: FanOut
// acts on up to limit due deliveries and returns how many it handled.
type Inbox interface {
	FanOut(ctx context.Context, limit int) (int, error)
}

// inboxBatch is how many deliveries one FanOut call lists.
const inboxBatch = 256

// SetInbox sets the inbox the pipeline fans deliveries out of (it is built
// after the pipeline, which it needs as its enqueuer).
func (p *Pipeline) SetInbox(in Inbox) { p.o.Inbox = in }

// NotifyInbox wakes the fan-out: deliveries were just committed.
func (p *Pipeline) NotifyInbox() {
	select {
	case p.inboxWake <- struct{}{}:
	default:
	}
}

// inboxLoops is how many fan-out loops run in this process: one, which
// fans several deliveries out at once where the database allows it.
func (p *Pipeline) inboxLoops() int {
	if p.o.Inbox == nil {
		return 0
	}
	return 1
}

// inboxLoop fans deliveries out as soon as they are committed here, and
// looks every Idle for ones recorded by other replicas or left pending by
// a crash.
func (p *Pipeline) inboxLoop(ctx context.Context) {
	for ctx.Err() == nil && !p.draining.Load() {
		n, err := p.o.Inbox.FanOut(ctx, inboxBatch)
		if err != nil && ctx.Err() == nil {
			p.log.Error("webhook fan-out", "err", err)
		}
		if n > 0 {
			continue // there may be more
		}
		t := time.NewTimer(p.o.Idle)
		select {
		case <-ctx.Done():
		case <-p.inboxWake:
		case <-t.C:
		}
		t.Stop()
	}
}
