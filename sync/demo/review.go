package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"rtbshopify/models"
)

// rejectReason is what the demo merchant says about the image it turns down.
const rejectReason = "Demo: the merchant keeps this original"

// reviewAll plays the merchant of a shop in review mode: it waits until
// every image is held for review (nothing on the products has changed),
// rejects the last one with a reason and approves all the others at once.
// It returns how many it rejected.
func reviewAll(ctx context.Context, st *stack, w io.Writer, total int) (int, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		jobs, err := st.app.jobs(ctx)
		if err != nil && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		held := 0
		var last job
		for _, j := range jobs {
			if finalStates[j.State] {
				return 0, &endedError{n: 1}
			}
			if j.State == models.JobAwaitingReview {
				held++
				last = j
			}
		}
		if err == nil && held == total {
			fmt.Fprintf(w, "  review      %d images held in Files for review; the products are unchanged\n", held)
			var j job
			if err := st.app.call(ctx, http.MethodPost, "/api/jobs/"+last.ID+"/reject", map[string]any{"reason": rejectReason}, &j); err != nil {
				return 0, fmt.Errorf("reject %s: %w", last.ID, err)
			}
			fmt.Fprintf(w, "  review      rejected %q: %s (its product stays as it was)\n", last.ProductTitle, rejectReason)
			var n struct{ Count int }
			if err := st.app.call(ctx, http.MethodPost, "/api/jobs/approve", map[string]any{"all": true}, &n); err != nil {
				return 0, fmt.Errorf("approve all: %w", err)
			}
			fmt.Fprintf(w, "  review      approved the other %d at once; they are written back now\n\n", n.Count)
			return 1, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}
