package sync

import (
	"context"
	"fmt"
	"time"

	"rtbshopify/models"
)

// AllowlistMessage is what a job refused by Shopify's IP allowlist shows: the merchant learns that
// nothing is lost and whom to ask, the operator what to change. The dashboard finds such jobs by it.
const AllowlistMessage = allowlistRefused + "Nothing is lost; this image waits and continues by itself once " +
	allowlistFix + " If it keeps waiting, contact the app's support."

// AllowlistRequestMessage is the same refusal met by a merchant's own request (an estimate, a
// backfill, a revert): nothing was done, and it can be tried again once the allowlist is fixed.
const AllowlistRequestMessage = allowlistRefused + "Nothing was changed; try again once " +
	allowlistFix + " If it keeps happening, contact the app's support."

const (
	allowlistRefused = "Shopify refused this app's request: the app's server is not on the app's IP allowlist. "
	allowlistFix     = "the app's operator adds the server's outgoing IP addresses (or its network's ASN) to the IP allowlist in Shopify's Dev Dashboard."
)

// allowlistWait is how long a job refused by the IP allowlist waits before it asks Shopify again.
// The refusal lasts until someone changes the allowlist, so backing off per attempt (and failing
// after MaxAttempts) would only turn a configuration problem into lost work.
const allowlistWait = 15 * time.Minute

// waitForAllowlist parks a job Shopify refused with a 403: its attempts are not spent, it keeps
// the state it was in (so it resumes where it stopped) and it comes back every allowlistWait.
func (p *Pipeline) waitForAllowlist(ctx context.Context, l *lease, err error) error {
	next := p.now().Add(allowlistWait)
	state := models.JobRetrying
	if l.job.State == models.JobAwaitingRTB || l.job.State == models.JobWritingBack {
		state = l.job.State
	}
	msg := fmt.Sprintf("refused by Shopify's IP allowlist, next try at %s: %v", next.Format(time.RFC3339), err)
	return l.release(ctx, map[string]any{"state": state, "error": AllowlistMessage}, ptr(ms(next)), msg)
}

// AllowlistBlocked counts the shop's jobs waiting because Shopify's IP allowlist refused them.
func (p *Pipeline) AllowlistBlocked(ctx context.Context, shopID uint64) (int64, error) {
	var n int64
	err := p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("shop_id = ? AND state IN ? AND error = ?", shopID,
			[]string{models.JobRetrying, models.JobAwaitingRTB, models.JobWritingBack}, AllowlistMessage).
		Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count jobs refused by the IP allowlist: %w", err)
	}
	return n, nil
}
