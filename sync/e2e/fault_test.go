package e2e_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/color"
	"net/http"
	"net/url"
	"os"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
	imgsync "rtbshopify/sync"
)

// The fault suite runs the whole app while its dependencies misbehave, then
// audits what it left behind. The short run is part of every test run;
// -fault.long (or FAULT_LONG=1) runs a catalogue ten times larger with
// several seeds:
//
//	FAULT_LONG=1 TEST_MYSQL_DSN=mysql://root@127.0.0.1:3306/ go test ./sync/e2e -run TestFault -v -timeout 30m
//
// FAULT_SEED picks the first seed, to repeat a failing run.
var faultLong = flag.Bool("fault.long", os.Getenv("FAULT_LONG") != "", "fault suite: 40 products of 4 images and 3 seeds instead of 6 products of 3 images and 1 seed")

type faultScale struct {
	products, images, seeds int
	limit                   time.Duration // for the jobs of one run to settle
}

func faultSize() faultScale {
	if *faultLong {
		return faultScale{products: 40, images: 4, seeds: 3, limit: 10 * time.Minute}
	}
	return faultScale{products: 6, images: 3, seeds: 1, limit: 90 * time.Second}
}

func faultSeed() uint64 {
	var s uint64 = 13
	if v := os.Getenv("FAULT_SEED"); v != "" {
		fmt.Sscan(v, &s)
	}
	return s
}

// How long the app waits for its dependencies in these runs: a hung call
// is one the client gives up on after clientTimeout.
const (
	clientTimeout = time.Second
	hang          = 3 * clientTimeout
)

// faultClock is the pipeline's clock: real time plus an offset that
// jumps.
type faultClock struct {
	mu  gosync.Mutex
	off time.Duration
}

func (c *faultClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *faultClock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// faultRun is one app on one database with its fakes, and what was done
// to it.
type faultRun struct {
	*harness
	clock    *faultClock
	kind     string
	before   map[string]shopifytest.ProductSnapshot
	products []string
	price    string
	faults   func() (string, int) // what was injected, for the summary line, and how many faults
}

// newFaultRun builds the app as main.go does, with the clients' timeouts,
// retry waits and the Remove The Background poll interval shortened so a
// run takes seconds, and the pipeline on a clock the test moves.
//
// An odd seed's Remove The Background delivers transparent images: the
// catalogue's JPEG originals then take the new-media path, where a
// product's images are written back together, and its PNG originals are
// still replaced in place. An even seed's images are opaque: all in place.
func newFaultRun(t *testing.T, db *gorm.DB, kind string, seed uint64) *faultRun {
	t.Helper()
	clock := &faultClock{}
	tmpl := rtbtest.DefaultTemplates()[0]
	if seed%2 == 1 {
		for _, tm := range rtbtest.DefaultTemplates() {
			if tm.ID == transparentTemplate() {
				tmpl = tm
			}
		}
	}
	h := newHarness(t, db, harnessOptions{noStart: true, template: tmpl.ID,
		store: func(o *shopifytest.Options) {
			o.WebhookRetryInterval, o.RetryAfter = 50*time.Millisecond, 50*time.Millisecond
			o.RestoreRate = 2000 // the rate limit does not set the pace here (THROTTLED is injected)
		},
		rtbHTTP: &http.Client{Timeout: clientTimeout},
		tune: func(o *imgsync.Options) {
			o.Workers, o.MaxPerShop, o.Now = 4, 4, clock.Now
			o.Lease, o.MediaWait = 6*time.Second, 3*time.Second
			// A dropped callback is noticed after PollInterval (RTB_POLL_INTERVAL).
			o.Schedule.PollInterval, o.Schedule.MaxPollInterval = 300*time.Millisecond, 2*time.Second
		},
		admin: func(o *admin.Options) {
			o.HTTPClient = &http.Client{Timeout: clientTimeout}
			o.BaseDelay = 20 * time.Millisecond
		},
	})
	return &faultRun{harness: h, clock: clock, kind: kind, before: map[string]shopifytest.ProductSnapshot{}, price: tmpl.Price,
		faults: func() (string, int) { return "", 0 }}
}

// seedCatalogue creates the products, each with its images in JPEG and PNG
// and a variant on each of its first two images, and waits until Shopify
// processed them.
func (r *faultRun) seedCatalogue(n, images int) {
	t := r.t
	colours := []color.RGBA{sand, sky, {200, 220, 180, 255}, {230, 200, 210, 255}}
	for p := range n {
		np := shopifytest.NewProduct{Title: fmt.Sprintf("Fault mug %d ☕", p)}
		for i := range images {
			format, ext := "jpeg", ".jpg"
			if (p+i)%2 == 1 {
				format, ext = "png", ".png"
			}
			np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprintf("mug-%d-%d%s", p, i, ext),
				Data: photo(format, colours[(p+i)%len(colours)]), Alt: fmt.Sprintf("Mug %d, view %d", p, i)})
		}
		np.Variants = []shopifytest.NewVariant{{Title: "Red", ImageIndex: 0}, {Title: "Blue", ImageIndex: min(1, images-1)}, {Title: "Plain", ImageIndex: -1}}
		rec := r.createProduct(np)
		r.products = append(r.products, rec.ID)
	}
	for _, id := range r.products {
		r.before[id] = waitReady(t.(*testing.T), r.harness, id)
	}
}

// announce sends each product's webhook.
func (r *faultRun) announce() {
	for _, id := range r.products {
		r.webhook("products/create", id)
	}
}

// faultSettled reports whether a job is finished or legitimately waiting:
// done; failed with a message for the merchant; or submitting with no
// worker, nothing scheduled and a message saying the submission's outcome
// is unknown (Remove The Background did not confirm it, or the worker was
// lost while submitting): it is never resubmitted by itself, its callback
// or the merchant's Retry resolves it.
func faultSettled(j models.ImageJob) bool {
	switch j.State {
	case models.JobDone:
		return true
	case models.JobFailed:
		return j.Error != ""
	case models.JobSubmitting:
		return j.LeaseOwner == nil && j.RunAt == nil && strings.Contains(j.Error, "Retry")
	}
	return false
}

// settle drives the run until every job is settled: it does what the cron
// does (wake polls of jobs without a callback, rescue expired leases) and,
// when no worker holds a job and none is due, moves the pipeline's clock to
// the next one due, so backoffs of minutes pass in milliseconds. The jobs
// must appear and settle within limit.
func (r *faultRun) settle(want int, limit time.Duration) ([]models.ImageJob, time.Duration) {
	t := r.t
	start := time.Now()
	ctx := context.Background()
	for {
		jobs := r.jobs()
		done := len(jobs) == want
		for _, j := range jobs {
			done = done && faultSettled(j)
		}
		if done {
			// Late callbacks and duplicates still arriving must change nothing.
			time.Sleep(300 * time.Millisecond)
			return r.jobs(), time.Since(start)
		}
		if time.Since(start) > limit {
			t.Errorf("%s: not settled after %s: %s", r.kind, limit, describe(jobs))
			return jobs, time.Since(start)
		}
		r.app.Pipeline.WakeStalePolls(ctx)
		r.app.Pipeline.RescueLeases(ctx)
		var leased int64
		var next *int64
		if r.db.Model(&models.ImageJob{}).Where("lease_owner IS NOT NULL").Count(&leased).Error == nil && leased == 0 &&
			r.db.Model(&models.ImageJob{}).Select("MIN(run_at)").Where("run_at IS NOT NULL").Scan(&next).Error == nil && next != nil {
			if wait := time.UnixMilli(*next).Sub(r.clock.Now()); wait > 50*time.Millisecond {
				r.clock.Jump(wait)
				r.app.Pipeline.Notify()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// audit fails the test on any harm the run did: a job neither finished nor
// legitimately waiting, a product whose gallery is not exactly what its
// jobs say (lost, duplicated or reordered media, alt text or variant links
// changed), an image billed twice for one job or a finished one never
// billed, and a spend that is not what Remove The Background billed plus
// the unconfirmed submissions it may have billed.
func (r *faultRun) audit(jobs []models.ImageJob, took time.Duration, injected string) {
	t := r.t
	t.Helper()
	byMedia := map[string]models.ImageJob{}
	byToken := map[string]models.ImageJob{}
	states := map[string]int{}
	retried := 0
	for _, j := range jobs {
		var evs []models.JobEvent
		r.db.Where("job_id = ? AND message LIKE ?", j.ID, "attempt % failed%").Find(&evs)
		retried += len(evs)
		for _, e := range evs {
			// The Admin API client tries a call that hung again itself.
			if strings.Contains(e.Message, "shopify graphql") && strings.Contains(e.Message, "Client.Timeout") {
				t.Errorf("%s: job %d failed a step on one Shopify call that hung: %s", r.kind, j.ID, e.Message)
			}
		}
		if _, dup := byMedia[j.MediaID]; dup {
			t.Errorf("%s: two jobs for media %s", r.kind, j.MediaID)
		}
		byMedia[j.MediaID] = j
		byToken[r.app.Signer.Token(j.ID)] = j
		states[j.State]++
		if r.kind == "database" && j.State != models.JobDone {
			// A lost connection is retried, and a submission whose mark's
			// commit answered an error was not sent: queued again.
			t.Errorf("%s: job %d did not finish although only database connections failed: %s", r.kind, j.ID, describe([]models.ImageJob{j}))
		}
		if r.kind == "shopify" && j.State != models.JobDone {
			// Every injected failure passes (a call sent again after a lost
			// answer finds its work done): none may end a job.
			var last models.JobEvent
			r.db.Where("job_id = ?", j.ID).Order("id DESC").First(&last)
			t.Errorf("%s: job %d did not finish although Shopify's failures were all passing ones: %s; last event %q", r.kind, j.ID, describe([]models.ImageJob{j}), last.Message)
		}
		if !faultSettled(j) {
			if j.State == models.JobAwaitingRTB && j.RunAt != nil {
				continue // waiting for Remove The Background, its poll scheduled
			}
			t.Errorf("%s: job %d is neither finished nor waiting: %s", r.kind, j.ID, describe([]models.ImageJob{j}))
		}
	}

	// Billing: what the fake accepted, per job.
	billed := map[uint64]int{}
	for _, info := range r.rtb.Jobs() {
		u, err := url.Parse(info.CallbackURL)
		if err != nil {
			t.Errorf("%s: submission %s has callback URL %q", r.kind, info.Ticket, info.CallbackURL)
			continue
		}
		j, ok := byToken[strings.TrimPrefix(u.Path, "/rtb/callback/")]
		if !ok {
			t.Errorf("%s: submission %s names no job (%s)", r.kind, info.Ticket, info.CallbackURL)
			continue
		}
		billed[j.ID]++
	}
	submitted := 0
	for _, n := range r.rtb.Submissions() {
		submitted += n
	}
	price, _ := faultCents(r.price)
	var want int64
	for _, j := range jobs {
		switch n := billed[j.ID]; {
		case n > 1:
			t.Errorf("%s: job %d was billed %d times", r.kind, j.ID, n)
		case n == 0 && j.State == models.JobDone:
			t.Errorf("%s: job %d is done but Remove The Background never billed it", r.kind, j.ID)
		}
		want += int64(billed[j.ID]) * price
		if billed[j.ID] == 0 && j.State == models.JobSubmitting && j.SubmitMonth != nil {
			want += price // unconfirmed: counted, as it may have been billed
		}
	}
	if got := r.spend(); got != want {
		t.Errorf("%s: the app counts %d cents spent, want %d (%d billed submissions at %s)", r.kind, got, want, submitted, r.price)
	}

	// The catalogue.
	for _, id := range r.products {
		r.auditProduct(r.before[id], r.store.Product(shopDomain, id), byMedia)
	}
	t.Logf("fault %-9s %-6s jobs=%d %v (%d steps retried) faults: %s; submissions=%d; settled in %s",
		r.kind, models.DialectOf(r.db), len(jobs), states, retried, injected, submitted, took.Round(time.Millisecond))
}

// auditProduct checks one gallery against its state before the run: each
// image is its finished job's result or else still the original, in the
// same place, with the same alt text, and each variant shows the image at
// the place its image was.
func (r *faultRun) auditProduct(before, after shopifytest.ProductSnapshot, byMedia map[string]models.ImageJob) {
	t := r.t
	t.Helper()
	if len(after.Media) != len(before.Media) {
		t.Errorf("%s: product %s has %d media, had %d: %s", r.kind, before.ID, len(after.Media), len(before.Media), faultGallery(after))
		return
	}
	now := map[string]string{} // original id → the id at its place now
	for i, orig := range before.Media {
		got := after.Media[i]
		j := byMedia[orig.ID]
		now[orig.ID] = got.ID
		switch {
		case got.Status != "READY":
			t.Errorf("%s: product %s media %d is %s", r.kind, before.ID, i, got.Status)
		case j.State == models.JobDone && got.ID != j.ResultMediaID:
			t.Errorf("%s: product %s place %d holds %s, but job %d finished with %s", r.kind, before.ID, i, got.ID, j.ID, j.ResultMediaID)
		case j.State == models.JobDone && bytes.Equal(got.Data, orig.Data):
			t.Errorf("%s: product %s place %d still shows the original, but job %d is done", r.kind, before.ID, i, j.ID)
		case j.State != models.JobDone && got.ID != orig.ID:
			t.Errorf("%s: product %s place %d holds %s instead of the original %s (job %d %s)", r.kind, before.ID, i, got.ID, orig.ID, j.ID, j.State)
		}
		if got.Alt != orig.Alt {
			t.Errorf("%s: product %s place %d alt %q, want %q", r.kind, before.ID, i, got.Alt, orig.Alt)
		}
	}
	for i, v := range before.Variants {
		var want []string
		for _, m := range v.MediaIDs {
			want = append(want, now[m])
		}
		if !equal(after.Variants[i].MediaIDs, want) {
			t.Errorf("%s: product %s variant %s links %v, want %v", r.kind, before.ID, v.Title, after.Variants[i].MediaIDs, want)
		}
	}
}

func faultGallery(s shopifytest.ProductSnapshot) string {
	ids := make([]string, len(s.Media))
	for i, m := range s.Media {
		ids[i] = m.ID
	}
	return strings.Join(ids, " ")
}

// spend is what the app counts as spent, in cents, over every month (the
// clock may have crossed one): the price of each paid or unconfirmed
// submission and the kept charges of resubmitted ones.
func (r *faultRun) spend() int64 {
	var prices, kept []string
	r.db.Model(&models.ImageJob{}).Where("submit_month IS NOT NULL").Pluck("price", &prices)
	r.db.Model(&models.JobCharge{}).Pluck("price", &kept)
	var total int64
	for _, p := range append(prices, kept...) {
		c, err := faultCents(p)
		if err != nil {
			r.t.Errorf("price %q: %v", p, err)
		}
		total += c
	}
	return total
}

func faultCents(s string) (int64, error) {
	var whole, frac int64
	_, err := fmt.Sscanf(s, "%d.%02d", &whole, &frac)
	return whole*100 + frac, err
}

// TestFaults runs the catalogue through each kind of fault on each
// database and audits the result.
func TestFaults(t *testing.T) {
	size := faultSize()
	kinds := []struct {
		name   string
		inject func(t *testing.T, r *faultRun, seed uint64) (stop func())
	}{
		{"shopify", injectShopify},
		{"rtb", injectRTB},
		{"database", injectDatabase},
		{"clock", injectClock},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				if k.name == "database" && models.DialectOf(db) != models.MySQL {
					t.Skip("connections are killed on MariaDB; SQLite is a file in the process")
				}
				for s := range size.seeds {
					seed := faultSeed() + uint64(s)
					if s > 0 {
						// Each seed gets its own database: a fresh one per run.
						db = modelstest.Open(t, string(models.DialectOf(db))).DB
					}
					r := newFaultRun(t, db, k.name, seed)
					r.seedCatalogue(size.products, size.images)
					r.start()
					stop := k.inject(t, r, seed)
					r.announce()
					jobs, took := r.settle(size.products*size.images, size.limit)
					injected, n := r.faults()
					stop()
					if n == 0 {
						t.Errorf("%s: no fault was injected: the run proves nothing", k.name)
					}
					r.audit(jobs, took, injected)
					if t.Failed() {
						t.Logf("seed %d failed; repeat it with FAULT_SEED=%d", seed, seed)
						return
					}
				}
			})
		})
	}
}

// injectShopify makes one in ten Admin API calls fail: HTTP 500, 429,
// THROTTLED, or a hang past the client's timeout before or after Shopify
// did the work.
func injectShopify(t *testing.T, r *faultRun, seed uint64) func() {
	r.store.SetRandomFaults(shopifytest.RandomFaults{Seed: seed, Rate: 0.1, Hang: hang})
	r.faults = func() (string, int) {
		n := 0
		for _, c := range r.store.InjectedFaults() {
			n += c
		}
		return fmt.Sprint(r.store.InjectedFaults()), n
	}
	return func() { r.store.SetRandomFaults(shopifytest.RandomFaults{}) }
}

// injectRTB makes one in ten submissions and status asks fail (HTTP 500 or
// 503, an error code, a hang past the client's timeout), sends every
// callback twice and drops the first callbacks outright, so those jobs are
// only found delivered by polling.
func injectRTB(t *testing.T, r *faultRun, seed uint64) func() {
	r.rtb.SetRandomFaults(rtbtest.RandomFaults{Seed: seed, Rate: 0.1, Faults: []rtbtest.Fault{
		{HTTPStatus: 500}, {HTTPStatus: 503}, {ErrorCode: rtbtest.CodeInvalidRequest, Message: "Temporarily refused"}, {Delay: hang},
	}})
	// Enough to drop all three attempts of most jobs' callbacks.
	drops := len(r.products) * 3 * 5 / 2
	r.rtb.SetCallbackFaults(rtbtest.CallbackFaults{Drop: drops, Duplicate: true})
	r.faults = func() (string, int) {
		dropped, dups, polled := 0, 0, 0
		for _, c := range r.rtb.Callbacks() {
			if c.Duplicate {
				dups++
			} else if c.StatusCode == 0 {
				dropped++
			}
		}
		for _, j := range r.jobs() {
			if j.State == models.JobDone && j.CallbackAt == nil {
				polled++
			}
		}
		if polled == 0 {
			t.Errorf("rtb: no job was found delivered by polling alone")
		}
		return fmt.Sprintf("%d failed calls, %d callbacks dropped, %d duplicated, %d jobs found delivered by polling alone",
			r.rtb.RandomFaultCount(), dropped, dups, polled), r.rtb.RandomFaultCount() + dropped + dups
	}
	return func() { r.rtb.SetRandomFaults(rtbtest.RandomFaults{}) }
}

// injectDatabase kills every connection the app holds to its MariaDB
// database, three times while the jobs run (the shared server stays up).
func injectDatabase(t *testing.T, r *faultRun, seed uint64) func() {
	var name string
	if err := r.db.Raw("SELECT DATABASE()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	adminDB := modelstest.Open(t, "mysql").DB // another database on the same server: its connections are not the app's
	stop := make(chan struct{})
	done := make(chan struct{})
	kills, rounds := 0, 0
	go func() {
		defer close(done)
		for _, after := range []time.Duration{150, 300, 300} {
			select {
			case <-stop:
				return
			case <-time.After(after * time.Millisecond):
			}
			var ids []int64
			adminDB.Raw("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", name).Scan(&ids)
			for _, id := range ids {
				if adminDB.Exec(fmt.Sprintf("KILL %d", id)).Error == nil {
					kills++
				}
			}
			rounds++
		}
	}()
	r.faults = func() (string, int) { return fmt.Sprintf("%d connections killed in %d rounds", kills, rounds), kills }
	return func() { close(stop); <-done }
}

// injectClock moves the pipeline's clock while the jobs run: forwards by
// hours (every lease and product lock looks expired) and backwards by
// minutes.
func injectClock(t *testing.T, r *faultRun, seed uint64) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	var jumps []string
	var mu gosync.Mutex
	go func() {
		defer close(done)
		steps := []time.Duration{2 * time.Hour, -7 * time.Minute, 3 * time.Hour, -3 * time.Minute, time.Hour, -5 * time.Minute}
		for i := int(seed % 2); len(jumps) < len(steps); i++ {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			d := steps[i%len(steps)]
			r.clock.Jump(d)
			mu.Lock()
			jumps = append(jumps, d.String())
			mu.Unlock()
		}
	}()
	r.faults = func() (string, int) {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d jumps (%s)", len(jumps), strings.Join(jumps, " ")), len(jumps)
	}
	return func() { close(stop); <-done }
}
