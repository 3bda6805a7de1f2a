package deploy

import (
	"bytes"
	"flag"
	"fmt"
	"image/color"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// -replicas.long runs the replicas test with a bigger catalogue.
var longReplicas = flag.Bool("replicas.long", false, "replicas tests: 60 products instead of 12, and a replica killed after Remove The Background accepted its submission")

// product is a sample product and what its gallery must look like after.
type product struct {
	rec      *shopifytest.ProductRecord
	alts     []string
	variants map[string]int // variant id → index of the media it showed
}

func createProducts(t *testing.T, c *cluster, from, n int) []*product {
	t.Helper()
	var out []*product
	for i := from; i < from+n; i++ {
		np := shopifytest.NewProduct{Title: fmt.Sprintf("Replica product %02d ✓", i+1), ProductType: "Shirts", Vendor: "Acme"}
		images := 1 + i%2
		p := &product{variants: map[string]int{}}
		for k := range images {
			alt := fmt.Sprintf("photo %d of product %d — 写真", k+1, i+1)
			np.Images = append(np.Images, shopifytest.NewImage{
				Filename: fmt.Sprintf("p%02d-%d.jpg", i+1, k+1), Alt: alt,
				Data: shopifytest.SampleJPEG(48+k, 40, color.RGBA{uint8(30 * k), uint8(9 * i), 200, 255}),
			})
			p.alts = append(p.alts, alt)
			if images > 1 {
				np.Variants = append(np.Variants, shopifytest.NewVariant{Title: fmt.Sprintf("Size %d", k+1), ImageIndex: k})
			}
		}
		rec, err := c.store.CreateProduct(c.shop, np)
		if err != nil {
			t.Fatal(err)
		}
		p.rec = rec
		for k, v := range rec.VariantIDs {
			if images > 1 {
				p.variants[v] = k
			}
		}
		out = append(out, p)
	}
	// Webhooks about media still processing would be looked at only later.
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range out {
		for ready := false; !ready && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			ready = true
			for _, m := range c.store.Product(c.shop, p.rec.ID).Media {
				ready = ready && m.Status == "READY"
			}
		}
	}
	return out
}

// sendWebhooks spreads each product's products/create over the live
// replicas and sends a products/update for the same product to another one
// at the same time, as Shopify does when a merchant edits right away.
func sendWebhooks(t *testing.T, c *cluster, ps []*product, offset int) {
	t.Helper()
	var wg sync.WaitGroup
	for i, p := range ps {
		live := c.live()
		a, b := live[(i+offset)%len(live)], live[(i+offset+1)%len(live)]
		wg.Add(2)
		go func() { defer wg.Done(); c.webhook(a, "products/create", p.rec.ID) }()
		go func() { defer wg.Done(); c.webhook(b, "products/update", p.rec.ID) }()
	}
	wg.Wait()
}

func TestReplicasShareOneDatabase(t *testing.T) {
	if os.Getenv(modelstest.MySQLEnv) == "" {
		t.Skip("needs " + modelstest.MySQLEnv + ": several processes share one MySQL/MariaDB database (SQLite is one process's file)")
	}
	if testing.Short() {
		t.Skip("starts real processes")
	}
	products := 12
	if *longReplicas {
		products = 60
	}
	// A short reconcile period puts a dozen periods inside the run, several
	// of them after the kill.
	const reconcileEvery = 5 * time.Second
	if !configVars()["RECONCILE_INTERVAL"] || !configVars()["RTB_POLL_INTERVAL"] {
		t.Fatal("config reads no RECONCILE_INTERVAL or RTB_POLL_INTERVAL")
	}
	c := newCluster(t, modelstest.NewURL(t, "mysql"), clusterOptions{
		rtbNew: 300 * time.Millisecond, rtbProduction: 700 * time.Millisecond, rtbQuality: 300 * time.Millisecond,
		extraEnv: map[string]string{"RECONCILE_INTERVAL": reconcileEvery.String(), "RTB_POLL_INTERVAL": "5s"},
	})
	began := time.Now()
	c.start(3)
	c.install()

	half := products / 2
	// Let the cron start before the kill, so its periods span it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n int64
		c.db.Model(&models.CronRun{}).Where("name = ? AND finished_at IS NOT NULL", "reconcile").Count(&n)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconcile period finished within 30 s of the start")
		}
	}
	// Kill a replica mid-run, in the middle of a write-back: once an image
	// is written back and every replica has answered a callback, the next
	// Admin API mutation any replica sends is held, never reaching the
	// store, and the replica that sent it is killed while it waits for the
	// answer, its job leased and its product locked.
	before := createProducts(t, c, 0, half)
	sendWebhooks(t, c, before, 0)
	// Armed once: the held mutation disarms it at once, so the loop must
	// not look at holdNext to know it armed (it would hold a second one).
	for deadline, armed := time.Now().Add(60*time.Second), false; !armed; time.Sleep(10 * time.Millisecond) {
		for _, j := range c.jobs() {
			if j.State == models.JobDone && c.eachAnswered() {
				c.holdNext.Store(true)
				armed = true
				break
			}
		}
		if !armed && time.Now().After(deadline) {
			t.Fatalf("no image written back, or a replica without a callback, within 60 s: %s; %s", states(c.jobs()), c.spread())
		}
	}
	var held heldCall
	select {
	case held = <-c.held:
	case <-time.After(90 * time.Second):
		t.Fatalf("no write-back mutation within 90 s of the first image written back: %s", states(c.jobs()))
	}
	victim, heldOp := held.node, held.op
	c.kill(victim)
	killedAt := time.Now()
	victim.releaseHeld()
	jobs := c.jobs()
	leased := 0
	for _, j := range jobs {
		if j.LeaseOwner != nil {
			leased++
		}
	}
	atKill := fmt.Sprintf("%s, %d leased; its %s held", states(jobs), leased, heldOp)
	t.Logf("SIGKILL replica %d at %.1fs; jobs then: %s", victim.n, killedAt.Sub(began).Seconds(), atKill)

	// The rest of the catalogue arrives after the kill, on the survivors.
	after := createProducts(t, c, half, products-half)
	sendWebhooks(t, c, after, 0)
	all := append(before, after...)
	images := 0
	for _, p := range all {
		images += len(p.rec.MediaIDs)
	}

	// Settle: every job done. A job the dead replica was submitting has an
	// unknown outcome and is never resubmitted by itself; when Remove The
	// Background never received it, the merchant's Retry is what sends it.
	retried := 0
	var settled time.Time
	for deadline := time.Now().Add(200 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		jobs := c.jobs()
		done := 0
		for _, j := range jobs {
			switch {
			case j.State == models.JobDone:
				done++
			case j.State == models.JobSubmitting && j.LeaseOwner == nil && j.Ticket == nil && !c.submitted(j):
				c.api(http.MethodPost, fmt.Sprintf("/api/jobs/%d/retry", j.ID), nil, nil)
				retried++
			case j.State == models.JobFailed:
				t.Fatalf("job %d failed: %s", j.ID, j.Error)
			}
		}
		if len(jobs) == images && done == images {
			settled = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled 200 s after the kill: %d images, jobs %s\n%s", images, states(jobs), describeJobs(jobs))
		}
	}

	// The survivors go on running the cron: wait for a few reconcile
	// periods after the kill (settling usually took longer already).
	for deadline := killedAt.Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n int64
		c.db.Model(&models.CronRun{}).Where("name = ? AND finished_at IS NOT NULL AND started_at > ?", "reconcile", killedAt).Count(&n)
		if n >= 3 {
			break
		}
	}
	jobs = c.jobs()
	checkSubmittedOnce(t, c, jobs)
	checkGalleries(t, c, all, jobs)
	c.mu.Lock()
	nodes := append([]*node(nil), c.nodes...)
	c.mu.Unlock()
	for _, nd := range nodes {
		if nd.webhooks.Load() == 0 || nd.callbacks.Load() == 0 {
			t.Errorf("replica %d answered %d webhooks and %d callbacks; every replica must answer both (%s)", nd.n, nd.webhooks.Load(), nd.callbacks.Load(), c.spread())
		}
	}
	// SIGTERM the survivors first: their ordered shutdown ends the cron,
	// so every run of theirs either finished or was cancelled by it.
	c.stopAll()
	periods := checkCronPeriods(t, c.db, killedAt, map[string]time.Duration{
		"reconcile": reconcileEvery,
		// sync's schedule: every minute.
		"rescue_leases": time.Minute,
	})

	took := settled.Sub(killedAt)
	report := fmt.Sprintf("replicas: 3 serve processes on one MariaDB database, replica %d killed with SIGKILL at %.1fs (jobs then: %s)\n"+
		"  jobs: %d (%d products), all done; %s\n"+
		"  submissions to Remove The Background: %d, one per job (%d resubmitted by an explicit Retry after the kill)\n"+
		"  galleries: %d products exactly as expected (same order, alt text and variant links, processed bytes)\n"+
		"  cron periods: %s\n"+
		"  spread: %s\n"+
		"  settled %.1fs after the kill (%.1fs in all)",
		victim.n, killedAt.Sub(began).Seconds(), atKill, len(jobs), len(all), states(jobs), len(c.rtb.Jobs()), retried, len(all), periods, c.spread(),
		took.Seconds(), settled.Sub(began).Seconds())
	t.Log(report)
	fmt.Println(report)
}

// submitted reports whether Remove The Background ever received the job.
func (c *cluster) submitted(j models.ImageJob) bool {
	for _, r := range c.rtb.Jobs() {
		if strings.Contains(r.CallbackURL, "/rtb/callback/") && r.ImageURL == j.OriginalURL {
			return true
		}
	}
	return false
}

func describeJobs(jobs []models.ImageJob) string {
	var b strings.Builder
	for _, j := range jobs {
		if j.State != models.JobDone {
			fmt.Fprintf(&b, "  job %d %s step=%q lease=%v error=%q\n", j.ID, j.State, j.Step, j.LeaseOwner != nil, j.Error)
		}
	}
	return b.String()
}

// checkSubmittedOnce: every job's image went to Remove The Background
// exactly once, and every submission belongs to a job.
func checkSubmittedOnce(t *testing.T, c *cluster, jobs []models.ImageJob) {
	t.Helper()
	byTicket := map[string]bool{}
	for _, j := range jobs {
		if j.Ticket == nil {
			t.Errorf("job %d is done without a ticket", j.ID)
			continue
		}
		byTicket[*j.Ticket] = true
	}
	perImage := map[string]int{}
	for _, r := range c.rtb.Jobs() {
		perImage[r.ImageURL]++
		if !byTicket[r.Ticket] {
			t.Errorf("ticket %s was submitted but belongs to no job", r.Ticket)
		}
	}
	for _, j := range jobs {
		if n := perImage[j.OriginalURL]; n != 1 {
			t.Errorf("job %d's image was submitted %d times", j.ID, n)
		}
	}
	if len(c.rtb.Jobs()) != len(jobs) {
		t.Errorf("%d submissions for %d jobs", len(c.rtb.Jobs()), len(jobs))
	}
}

// checkGalleries: each product shows, in the original order, the processed
// image in place of each original with its alt text, and each variant still
// shows the image at the position it showed before; nothing else.
func checkGalleries(t *testing.T, c *cluster, ps []*product, jobs []models.ImageJob) {
	t.Helper()
	byMedia := map[string]models.ImageJob{}
	for _, j := range jobs {
		byMedia[j.MediaID] = j
	}
	files, _ := url.Parse(c.rtb.URL() + "/")
	for _, p := range ps {
		snap := c.store.Product(c.shop, p.rec.ID)
		if len(snap.Media) != len(p.rec.MediaIDs) {
			t.Errorf("%s has %d media, want %d", p.rec.ID, len(snap.Media), len(p.rec.MediaIDs))
			continue
		}
		for k, orig := range p.rec.MediaIDs {
			j, ok := byMedia[orig]
			if !ok {
				t.Errorf("%s image %d has no job", p.rec.ID, k+1)
				continue
			}
			m := snap.Media[k]
			if m.Alt != p.alts[k] || m.Status != "READY" {
				t.Errorf("%s position %d: alt %q status %s, want alt %q READY", p.rec.ID, k+1, m.Alt, m.Status, p.alts[k])
			}
			ref, _ := url.Parse(j.FinalImageURL)
			want := fetch(t, files.ResolveReference(ref).String())
			if !bytes.Equal(m.Data, want) {
				t.Errorf("%s position %d does not hold the processed image of job %d", p.rec.ID, k+1, j.ID)
			}
		}
		for _, v := range snap.Variants {
			k, linked := p.variants[v.ID]
			if !linked {
				continue
			}
			if len(v.MediaIDs) != 1 || v.MediaIDs[0] != snap.Media[k].ID {
				t.Errorf("%s variant %s shows %v, want the image at position %d (%s)", p.rec.ID, v.Title, v.MediaIDs, k+1, snap.Media[k].ID)
			}
		}
	}
}

func fetch(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := testClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return b
}

// reporter is the part of *testing.T the checks use, so a test can feed
// them wrong data and see them fail.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// checkCronPeriods: each cron period ran exactly once across the replicas.
// For the jobs with a known interval, every period from the first run to
// the last has exactly one run, and it finished; the one exception is a
// period the killed replica was running when it died (it never finishes, and
// no one else may run it). Runs ended in Shopify's throttling (the next
// period catches up) or cancelled by the survivors' final shutdown count as
// finished; any other error fails. And the periods go on after the kill, run
// by the survivors.
//
// Which replica owns a run is a random id the test cannot see, so the
// killed replica is recognised by its runs: it started none after the kill,
// and it is the only owner that may leave a run unfinished.
func checkCronPeriods(t reporter, db *gorm.DB, killedAt time.Time, intervals map[string]time.Duration) string {
	t.Helper()
	var runs []models.CronRun
	if err := db.Order("name, period").Find(&runs).Error; err != nil {
		t.Fatalf("%v", err)
	}
	if len(runs) == 0 {
		t.Fatalf("no cron period fell inside the run")
	}
	aliveAfterKill := map[string]bool{}
	for _, r := range runs {
		if r.StartedAt.After(killedAt) {
			aliveAfterKill[r.Owner] = true
		}
	}
	byName := map[string]map[string][]models.CronRun{}
	owners := map[string]bool{}
	unfinishedBy := map[string]int{}
	throttled, orphaned, cancelled := 0, 0, 0
	for _, r := range runs {
		if byName[r.Name] == nil {
			byName[r.Name] = map[string][]models.CronRun{}
		}
		byName[r.Name][r.Period] = append(byName[r.Name][r.Period], r)
		owners[r.Owner] = true
		switch {
		case r.FinishedAt == nil && !aliveAfterKill[r.Owner] && !r.StartedAt.After(killedAt):
			orphaned++
			unfinishedBy[r.Owner]++
		case r.FinishedAt == nil:
			t.Errorf("cron %s %s (owner %s, a replica alive after the kill) did not finish", r.Name, r.Period, r.Owner)
		case strings.Contains(r.Error, "throttled"):
			throttled++
		case strings.Contains(r.Error, "context canceled"):
			cancelled++
		case r.Error != "":
			t.Errorf("cron %s %s (owner %s): error %q", r.Name, r.Period, r.Owner, r.Error)
		}
	}
	// One replica died; it was running at most one period of each job.
	if len(unfinishedBy) > 1 || orphaned > len(byName) {
		t.Errorf("%d unfinished runs by %d replicas; only the killed one may leave runs unfinished, one per job at most", orphaned, len(unfinishedBy))
	}

	var names []string
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, name := range names {
		periods := byName[name]
		for p, rs := range periods {
			if len(rs) != 1 {
				t.Errorf("cron %s period %s ran %d times", name, p, len(rs))
			}
		}
		every, known := intervals[name]
		span := ""
		if known {
			var times []time.Time
			for p := range periods {
				pt, err := time.Parse(time.RFC3339, p)
				if err != nil {
					t.Fatalf("cron %s period %q: %v", name, p, err)
				}
				if !pt.Equal(pt.Truncate(every)) {
					t.Errorf("cron %s period %s does not start on a multiple of %v", name, p, every)
				}
				times = append(times, pt)
			}
			slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
			first, last := times[0], times[len(times)-1]
			for at := first; !at.After(last); at = at.Add(every) {
				if len(periods[at.UTC().Format(time.RFC3339)]) == 0 {
					t.Errorf("cron %s: no replica ran the period %s (between the first, %s, and the last, %s)",
						name, at.UTC().Format(time.TimeOnly), first.UTC().Format(time.TimeOnly), last.UTC().Format(time.TimeOnly))
				}
			}
			span = fmt.Sprintf(" (every %v, %s to %s, none missing)", every, first.UTC().Format(time.TimeOnly), last.UTC().Format(time.TimeOnly))
		}
		byOwner := map[string]bool{}
		beforeKill, afterKill, afterKillOwners := 0, 0, map[string]bool{}
		for _, rs := range periods {
			for _, r := range rs {
				byOwner[r.Owner] = true
				if !r.StartedAt.After(killedAt) {
					beforeKill++
				}
				if r.StartedAt.After(killedAt) && r.FinishedAt != nil {
					afterKill++
					afterKillOwners[r.Owner] = true
				}
			}
		}
		if name == "reconcile" && afterKill < 2 {
			t.Errorf("cron reconcile ran %d periods after the kill: the survivors must go on running the cron", afterKill)
		}
		parts = append(parts, fmt.Sprintf("%s %d period(s)%s, each once, by %d replica(s): %d before the kill, %d after it by %d survivor(s)",
			name, len(periods), span, len(byOwner), beforeKill, afterKill, len(afterKillOwners)))
	}
	if throttled+orphaned+cancelled > 0 {
		parts = append(parts, fmt.Sprintf("%d ended throttled by Shopify, %d cancelled by the final shutdown, %d left unfinished by the killed replica", throttled, cancelled, orphaned))
	}
	parts = append(parts, fmt.Sprintf("%d replicas ran cron periods", len(owners)))
	return strings.Join(parts, "; ")
}
