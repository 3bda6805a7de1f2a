package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Move puts a media at a new 0-based position; the others shift.
type Move struct {
	ID          string
	NewPosition int
}

// VariantMedia links one variant to one media.
type VariantMedia struct {
	VariantID, MediaID string
}

// StartReorderMedia asks Shopify to move media and returns the id of its
// asynchronous reorder job, or "" when there is nothing to wait for (no
// moves, or the job was done at once). Until the job is done the gallery
// reads as before the moves.
func (c *Client) StartReorderMedia(ctx context.Context, productID string, moves []Move) (string, error) {
	if len(moves) == 0 {
		return "", nil
	}
	in := make([]map[string]any, len(moves))
	for i, m := range moves {
		// MoveInput.newPosition is an UnsignedInt64, which Shopify takes as a string.
		in[i] = map[string]any{"id": m.ID, "newPosition": strconv.Itoa(m.NewPosition)}
	}
	var out struct {
		ProductReorderMedia struct {
			Job *struct {
				ID   string `json:"id"`
				Done bool   `json:"done"`
			} `json:"job"`
			MediaUserErrors []gqlUserError `json:"mediaUserErrors"`
		} `json:"productReorderMedia"`
	}
	if err := c.do(ctx, "ProductReorderMedia", docProductReorderMedia, map[string]any{"id": productID, "moves": in}, &out); err != nil {
		return "", fmt.Errorf("reorder media of %s: %w", productID, err)
	}
	r := out.ProductReorderMedia
	if err := userErrorsToError(r.MediaUserErrors); err != nil {
		return "", fmt.Errorf("reorder media of %s: %w", productID, err)
	}
	if r.Job == nil || r.Job.Done {
		return "", nil
	}
	return r.Job.ID, nil
}

// WaitJob waits until Shopify's asynchronous job jobID is done. A job
// Shopify does not know is ErrNotFound.
func (c *Client) WaitJob(ctx context.Context, jobID string) error {
	// The mutation answered a moment ago that the job is not done.
	return c.poll(ctx, 0, c.opts.PollInterval, func() (bool, error) {
		var out struct {
			Job *struct {
				Done bool `json:"done"`
			} `json:"job"`
		}
		if err := c.do(ctx, "Job", docJob, map[string]any{"id": jobID}, &out); err != nil {
			return false, fmt.Errorf("poll job %s: %w", jobID, err)
		}
		if out.Job == nil {
			return false, fmt.Errorf("poll job %s: %w", jobID, ErrNotFound)
		}
		return out.Job.Done, nil
	})
}

// ErrWaitTimeout is returned when Shopify's asynchronous work (a media's processing, a reorder
// job) is not finished by the wait's deadline. The work may still finish later: look again
// after a while rather than wait on.
var ErrWaitTimeout = errors.New("shopify: not finished before the wait deadline")

// poll calls check, first after first (at once when it is not positive) and then with a growing
// interval (PollInterval ×1.5, at most 5 s), until it reports done, fails, ctx ends, or within
// (MaxWait when not positive) has passed, which yields ErrWaitTimeout: no wait is unbounded, so
// a media stuck in processing cannot pin a worker.
func (c *Client) poll(ctx context.Context, within, first time.Duration, check func() (bool, error)) error {
	if within <= 0 || within > c.opts.MaxWait {
		within = c.opts.MaxWait
	}
	deadline := time.Now().Add(within)
	interval := c.opts.PollInterval
	if first > 0 {
		// The work was just asked for: a look now would only cost points.
		if err := sleepCtx(ctx, min(first, within)); err != nil {
			return err
		}
	}
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w (waited %s)", ErrWaitTimeout, within)
		}
		if err := sleepCtx(ctx, min(interval, left)); err != nil {
			return err
		}
		interval = min(interval*3/2, 5*time.Second)
	}
}

func variantMediaInput(links []VariantMedia) []map[string]any {
	// A variant holds at most one media, so each link is its own input pair; Shopify refuses a
	// variant named twice in one call, which surfaces as a UserError.
	in := make([]map[string]any, len(links))
	for i, l := range links {
		in[i] = map[string]any{"variantId": l.VariantID, "mediaIds": []string{l.MediaID}}
	}
	return in
}

type variantMediaPayload struct {
	UserErrors []gqlUserError `json:"userErrors"`
}

// AppendVariantMedia links media to variants (productVariantAppendMedia).
func (c *Client) AppendVariantMedia(ctx context.Context, productID string, links []VariantMedia) error {
	if len(links) == 0 {
		return nil
	}
	var out struct {
		P variantMediaPayload `json:"productVariantAppendMedia"`
	}
	vars := map[string]any{"productId": productID, "variantMedia": variantMediaInput(links)}
	if err := c.do(ctx, "ProductVariantAppendMedia", docVariantAppendMedia, vars, &out); err != nil {
		return fmt.Errorf("link variant media of %s: %w", productID, err)
	}
	if err := userErrorsToError(out.P.UserErrors); err != nil {
		return fmt.Errorf("link variant media of %s: %w", productID, err)
	}
	return nil
}

// DetachVariantMedia unlinks media from variants (productVariantDetachMedia).
func (c *Client) DetachVariantMedia(ctx context.Context, productID string, links []VariantMedia) error {
	if len(links) == 0 {
		return nil
	}
	var out struct {
		P variantMediaPayload `json:"productVariantDetachMedia"`
	}
	vars := map[string]any{"productId": productID, "variantMedia": variantMediaInput(links)}
	if err := c.do(ctx, "ProductVariantDetachMedia", docVariantDetachMedia, vars, &out); err != nil {
		return fmt.Errorf("unlink variant media of %s: %w", productID, err)
	}
	if err := userErrorsToError(out.P.UserErrors); err != nil {
		return fmt.Errorf("unlink variant media of %s: %w", productID, err)
	}
	return nil
}

// WaitMediaReady polls the media until each is READY or FAILED and returns id → status. A media
// that does not exist makes it fail with ErrNotFound. It waits at most within (the client's
// MaxWait when not positive), then fails with ErrWaitTimeout; when ctx ends first, or on
// timeout, the statuses seen so far are returned with the error.
func (c *Client) WaitMediaReady(ctx context.Context, within time.Duration, ids ...string) (map[string]string, error) {
	st, err := c.waitMedia(ctx, within, time.Time{}, false, ids)
	return statusesOf(st), err
}

// WaitNewMediaReady is WaitMediaReady for media given bytes (created, or replaced) at since:
// Shopify never has them READY at once, so it first looks a poll interval after since, or about
// as long after it as the shop's new media have lately taken, when that is longer (every look
// costs points). The time they took is remembered in the shop's Budget.
func (c *Client) WaitNewMediaReady(ctx context.Context, within time.Duration, since time.Time, ids ...string) (map[string]string, error) {
	st, err := c.waitMedia(ctx, within, since, false, ids)
	return statusesOf(st), err
}

// MediaState is a media's processing status and, once it is READY, its image's URL.
type MediaState struct{ Status, URL string }

// WaitNewImagesReady is WaitNewMediaReady that also returns each image's URL, read by the look
// that finds it READY: a point more on that look only, where a read afterwards would cost two.
func (c *Client) WaitNewImagesReady(ctx context.Context, within time.Duration, since time.Time, ids ...string) (map[string]MediaState, error) {
	return c.waitMedia(ctx, within, since, true, ids)
}

func statusesOf(st map[string]MediaState) map[string]string {
	out := make(map[string]string, len(st))
	for id, s := range st {
		out[id] = s.Status
	}
	return out
}

func (c *Client) waitMedia(ctx context.Context, within time.Duration, since time.Time, urls bool, ids []string) (map[string]MediaState, error) {
	states := make(map[string]MediaState, len(ids))
	pending := append([]string(nil), ids...)
	var first time.Duration
	if !since.IsZero() {
		first = time.Until(since.Add(c.budget.firstLook(c.opts.PollInterval, 10*time.Second)))
	}
	op, doc := "MediaStatus", docMediaStatus
	if urls {
		op, doc = "MediaReady", docMediaReady
	}
	looks := 0
	err := c.poll(ctx, within, first, func() (bool, error) {
		looks++
		lookAt := time.Now() // before any wait for the cost budget
		var out struct {
			Nodes []*struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Image  *struct {
					URL string `json:"url"`
				} `json:"image"`
			} `json:"nodes"`
		}
		if err := c.do(ctx, op, doc, map[string]any{"ids": pending}, &out); err != nil {
			return false, err
		}
		var still []string
		for i, id := range pending {
			if i >= len(out.Nodes) || out.Nodes[i] == nil {
				return false, fmt.Errorf("media %s: %w", id, ErrNotFound)
			}
			n := out.Nodes[i]
			st := MediaState{Status: n.Status}
			if n.Image != nil {
				st.URL = n.Image.URL
			}
			states[id] = st
			if st.Status != "READY" && st.Status != "FAILED" {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) == 0 && !since.IsZero() {
			// They were done by the time this look was due (whatever it then
			// waited for the cost budget). Done at the first look, they may
			// have been done well before: the estimate is nudged down, so it
			// follows a shop whose media get quicker.
			took := lookAt.Sub(since)
			if looks == 1 {
				took = took * 49 / 50
			}
			c.budget.processed(took)
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = errors.Join(ctxErr, err)
		}
		return states, fmt.Errorf("wait for media: %w", err)
	}
	return states, nil
}
