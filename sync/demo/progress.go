package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"rtbshopify/models"
)

// The three stages an image goes through, as the merchant would describe
// them. A job's stage only moves forward on screen: a write-back that is
// retried still counts as processed by Remove The Background.
var stageNames = [3]string{"submitted to RTB", "processed by RTB", "written back"}

// stageOf is how far a job has come: 0 nothing yet, 1 submitted, 2 the
// processed image is ready, 3 written back.
func stageOf(j job) int {
	switch j.State {
	case models.JobDone:
		return 3
	case models.JobWritingBack:
		return 2
	case models.JobAwaitingRTB:
		return 1
	}
	if j.Ticket != "" {
		return 1
	}
	return 0
}

// finalStates are the states a job cannot leave by itself: the demo
// cannot succeed once a job is in one of them.
var finalStates = map[string]bool{
	models.JobFailed: true, models.JobCancelled: true, models.JobSkipped: true,
	models.JobOverBudget: true, models.JobReverted: true,
}

// isTerminal reports whether w is a terminal, where a line can be redrawn
// in place; a pipe or file gets one plain line per change instead.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress draws one line per stage. The current stage's line is redrawn
// with \r on a terminal; when every image has passed the stage, the line
// is finished with the time it took and the next stage's begins.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	total int
	stage int // the stage whose line is being drawn
	shown int // its count last drawn; -1 before the first
	open  bool
}

func newProgress(w io.Writer, total int, start time.Time) *progress {
	return &progress{w: w, tty: isTerminal(w), start: start, total: total, shown: -1}
}

const barWidth = 24

func (p *progress) line(stage, n int) string {
	label := fmt.Sprintf("  %-18s %3d/%d", stageNames[stage], n, p.total)
	if !p.tty {
		return label
	}
	// Equal widths, so a redraw covers the previous line exactly.
	label += strings.Repeat(" ", len(fmt.Sprint(p.total))-len(fmt.Sprint(n)))
	fill := barWidth * n / max(p.total, 1)
	return label + " [" + strings.Repeat("#", fill) + strings.Repeat(".", barWidth-fill) + "]"
}

// update draws counts[stage] (images that reached at least that stage).
func (p *progress) update(counts [3]int, now time.Time) {
	for p.stage < len(stageNames) {
		n := counts[p.stage]
		if n >= p.total {
			p.emit(fmt.Sprintf("%s %5.1fs\n", p.line(p.stage, p.total), now.Sub(p.start).Seconds()))
			p.stage, p.shown, p.open = p.stage+1, -1, false
			continue
		}
		if n != p.shown {
			if p.tty {
				p.emit(p.line(p.stage, n))
				p.open = true
			} else {
				p.emit(p.line(p.stage, n) + "\n")
			}
			p.shown = n
		}
		return
	}
}

func (p *progress) emit(s string) {
	if p.tty {
		s = "\r" + s
	}
	io.WriteString(p.w, s)
}

// abandon ends a line left open by an interrupted wait.
func (p *progress) abandon() {
	if p.open {
		io.WriteString(p.w, "\n")
		p.open = false
	}
}

// endedError says jobs ended without their image written back; Run lists
// them.
type endedError struct{ n int }

func (e *endedError) Error() string {
	return fmt.Sprintf("%d image(s) will not be written back", e.n)
}

// waitDone polls the jobs until every one of total images is written back,
// a job ends without being written back, the server stops or ctx ends.
func waitDone(ctx context.Context, st *stack, total int, pr *progress) ([]job, error) {
	reached := map[string]int{}
	var last []job
	failures := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		jobs, err := st.app.jobs(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			pr.abandon()
			return last, ctx.Err()
		case err != nil:
			// One failed poll is not the pipeline's failure; several are.
			if failures++; failures >= 5 {
				pr.abandon()
				return last, fmt.Errorf("read the jobs: %w", err)
			}
		default:
			failures, last = 0, jobs
			var counts [3]int
			var ended []job
			for _, j := range jobs {
				reached[j.ID] = max(reached[j.ID], stageOf(j))
				for s := 1; s <= reached[j.ID]; s++ {
					counts[s-1]++
				}
				if finalStates[j.State] {
					ended = append(ended, j)
				}
			}
			pr.update(counts, time.Now())
			if len(ended) > 0 {
				pr.abandon()
				return jobs, &endedError{n: len(ended)}
			}
			if counts[2] >= total {
				return jobs, nil
			}
		}
		select {
		case <-ctx.Done():
			pr.abandon()
			return last, ctx.Err()
		case err := <-st.served:
			pr.abandon()
			if err == nil {
				err = errors.New("it stopped")
			}
			return last, fmt.Errorf("the app's server stopped during the demo: %w", err)
		case <-tick.C:
		}
	}
}

// describeImages lists the images not written back, one per line, with
// their job's state and error.
func describeImages(imgs []*demoImage) string {
	var b strings.Builder
	for _, im := range imgs {
		if im.job.State == models.JobDone {
			continue
		}
		state := im.job.State
		if state == "" {
			state = "no job yet"
		}
		fmt.Fprintf(&b, "  %02d %s (image %d/%d): %s", im.n, im.product, im.index+1, im.of, state)
		if im.job.Error != "" {
			fmt.Fprintf(&b, ": %s", im.job.Error)
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// printTable prints one row per sample image, in catalogue order.
func printTable(w io.Writer, imgs []*demoImage) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tproduct\timage\tstate\tseconds")
	for _, im := range imgs {
		secs := "-"
		if im.job.ID != "" {
			secs = fmt.Sprintf("%.0f", im.job.seconds())
		}
		state := im.job.State
		if state == "" {
			state = "no job"
		}
		fmt.Fprintf(tw, "  %02d\t%s\t%d/%d\t%s\t%s\n", im.n, im.product, im.index+1, im.of, state, secs)
	}
	tw.Flush()
}
