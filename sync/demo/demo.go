// Package demo is `rtbshopify demo`: the whole product on one machine with
// no set-up. It starts the fake Shopify store and the fake Remove The
// Background service in-process, runs the real server (handed in by main)
// against them on a temporary SQLite database, installs a demo shop and
// saves its settings through the real API, creates sample products with
// generated photos, sends their signed products/create webhooks, and shows
// the pipeline carry every image to its written-back result.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"rtbshopify/shopify/shopifytest"
)

// ServeFunc is main's serve: it runs the app from an environment until ctx
// ends and sends the listening address on ready.
// devTokens, which the demo sets, lets the admin page get session tokens
// outside the Shopify admin.
type ServeFunc func(ctx context.Context, getenv func(string) string, logw io.Writer, ready chan<- string, devTokens func(shop string) string) error

// Options are what main hands the demo.
type Options struct {
	Args           []string // after "demo"
	Stdout, Stderr io.Writer
	Getenv         func(string) string // only LISTEN_ADDR is read
	Serve          ServeFunc
	// Timeout bounds the run from start to the last image written back;
	// zero means 60 s.
	Timeout time.Duration
}

const (
	defaultProducts = 6
	maxProducts     = 50
	defaultOut      = "demo-output"
	defaultTimeout  = 60 * time.Second
)

type flags struct {
	products    int
	keep        bool
	databaseURL string
	out         string
	review      bool
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("rtbshopify demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.products, "products", defaultProducts, fmt.Sprintf("number of sample products, 1 to %d", maxProducts))
	fs.BoolVar(&f.keep, "keep", false, "keep serving after the run (and keep the temporary database) until Ctrl-C")
	fs.StringVar(&f.databaseURL, "database-url", "", "run on this database instead of a temporary SQLite file, e.g. mysql://user:pass@127.0.0.1:3306/rtbdemo (migrated first)")
	fs.BoolVar(&f.review, "review", false, "hold processed images for review, then reject one and approve the rest as a merchant would")
	fs.StringVar(&f.out, "out", defaultOut, "directory for the before/after images, the contact sheet and the server log")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return f, fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	if f.products < 1 || f.products > maxProducts {
		return f, fmt.Errorf("demo: --products must be from 1 to %d, not %d", maxProducts, f.products)
	}
	return f, nil
}

// demoImage is one sample image followed from creation to write-back.
type demoImage struct {
	n                  int // 1-based, names the output files
	product, productID string
	mediaID            string
	index, of          int // position in the product's gallery
	before, after      []byte
	job                job
}

// Run runs the demo; it returns nil once every sample image is written back.
func Run(ctx context.Context, o Options) error {
	if o.Serve == nil {
		return errors.New("demo: no server to run")
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	f, err := parseFlags(o.Args, o.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	started := time.Now()
	deadline := started.Add(o.Timeout)

	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("demo: create --out %s: %w", f.out, err)
	}
	logPath := filepath.Join(f.out, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer logFile.Close()

	w := o.Stdout
	fmt.Fprintln(w, "rtbshopify demo: the whole pipeline on this machine, against in-process fakes of Shopify and Remove The Background")
	st, err := start(ctx, o, f, logFile)
	if err != nil {
		return fmt.Errorf("demo: %w (server log: %s)", err, logPath)
	}
	defer func() { st.stop(f.keep) }()
	db := "temporary SQLite " + st.dbURL
	if st.tempDir == "" {
		db = "database from --database-url"
	}
	fmt.Fprintf(w, "  app         %s  (%s; log in %s)\n", st.appURL, db, logPath)
	fmt.Fprintf(w, "  fake store  %s  at %s\n", st.shop, st.store.URL())
	fmt.Fprintf(w, "  fake RTB    %s  (each image ~%.1fs at RTB)\n", st.rtb.BaseURL(), (rtbNewFor + rtbProductionFor + rtbQualityFor).Seconds())

	if err := install(ctx, st, f.review); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	publish := ""
	if f.review {
		publish = ", publish after review"
	}
	fmt.Fprintf(w, "  installed   through token exchange; settings saved: template %q, write mode replace%s\n", templateName, publish)

	imgs, err := createCatalogue(ctx, st, f.products)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(w, "  catalogue   %d products, %d photos; signed products/create webhooks sent\n\n", f.products, len(imgs))

	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	rejected := 0
	if f.review {
		if rejected, err = reviewAll(wctx, st, w, len(imgs)); err != nil {
			return fmt.Errorf("demo: review: %w", err)
		}
	}
	jobs, err := waitDone(wctx, st, len(imgs)-rejected, newProgress(w, len(imgs)-rejected, time.Now()))
	attachJobs(imgs, jobs)
	if err != nil {
		fmt.Fprintln(w)
		printTable(w, imgs)
		switch {
		case ctx.Err() != nil:
			return errors.New("demo: interrupted")
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("demo: not every image was written back within %s:\n%s", o.Timeout, describeImages(imgs))
		}
		if errors.As(err, new(*endedError)) {
			return fmt.Errorf("demo: %w:\n%s", err, describeImages(imgs))
		}
		return fmt.Errorf("demo: %w", err)
	}
	collectAfter(st, imgs)
	fmt.Fprintln(w)
	printTable(w, imgs)
	sheet, err := writeOutputs(f.out, imgs)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if rejected > 0 {
		fmt.Fprintf(w, "\n%d images approved and written back, %d rejected, in %.1fs.\n", len(imgs)-rejected, rejected, time.Since(started).Seconds())
	} else {
		fmt.Fprintf(w, "\nAll %d images written back in %.1fs.\n", len(imgs), time.Since(started).Seconds())
	}
	fmt.Fprintf(w, "Before/after images are in %s; side by side in %s\n", f.out, sheet)
	if f.keep {
		keepServing(ctx, w, st)
	}
	return nil
}

// The demo merchant's choices, saved through PUT /api/settings.
const (
	templateID   = "2000045"
	templateName = "T-shirts"
)

// install makes the first /api call with a session token, which installs
// the shop through token exchange, then saves the settings as the
// settings page would.
func install(ctx context.Context, st *stack, review bool) error {
	if err := st.app.call(ctx, http.MethodGet, "/api/settings", nil, nil); err != nil {
		return fmt.Errorf("install the demo shop: %w", err)
	}
	settings := map[string]any{
		"enabled":       true,
		"rtb":           map[string]any{"contactEmail": st.rtbEmail, "contactApiKey": st.rtbKey},
		"templateId":    templateID,
		"imageScope":    "all",
		"writeMode":     "replace",
		"deliveryHours": 24,
		"monthlyBudget": "",
		"publish":       "auto",
	}
	if review {
		settings["publish"] = "review"
	}
	if err := st.app.call(ctx, http.MethodPut, "/api/settings", settings, nil); err != nil {
		return fmt.Errorf("save the demo settings: %w", err)
	}
	return nil
}

// sampleAt is the i-th sample product; past the end of the catalogue it
// reuses a shape with another product's background, as a new edition.
func sampleAt(i int) sample {
	s := catalogue[i%len(catalogue)]
	if round := i / len(catalogue); round > 0 {
		s.title = fmt.Sprintf("%s, edition %d", s.title, round+1)
		looks := make([]look, len(s.looks))
		for k, l := range s.looks {
			other := catalogue[(i+round+k)%len(catalogue)].looks[0]
			l.bg = other.bg
			looks[k] = l
		}
		s.looks = looks
	}
	return s
}

// createCatalogue creates the sample products in the fake store, waits for
// Shopify to finish processing their uploads (a webhook about an image
// still processing would be looked at again only much later), records the
// images' bytes as "before" and sends the products/create webhooks.
func createCatalogue(ctx context.Context, st *stack, products int) ([]*demoImage, error) {
	var imgs []*demoImage
	for i := range products {
		s := sampleAt(i)
		np := shopifytest.NewProduct{Title: s.title, ProductType: s.productType, Vendor: s.vendor, Tags: s.tags}
		for k, l := range s.looks {
			data, err := photoJPEG(s, l, uint64(i*10+k))
			if err != nil {
				return nil, err
			}
			np.Images = append(np.Images, shopifytest.NewImage{
				Filename: fmt.Sprintf("demo-%02d-%d.jpg", i+1, k+1), Data: data, Alt: s.title,
			})
			if len(s.looks) > 1 {
				np.Variants = append(np.Variants, shopifytest.NewVariant{Title: l.label, ImageIndex: k})
			}
		}
		rec, err := st.store.CreateProduct(st.shop, np)
		if err != nil {
			return nil, fmt.Errorf("create sample product %q: %w", s.title, err)
		}
		for k, id := range rec.MediaIDs {
			imgs = append(imgs, &demoImage{
				n: len(imgs) + 1, product: s.title, productID: rec.ID, mediaID: id, index: k, of: len(rec.MediaIDs),
			})
		}
	}
	if err := waitMediaReady(ctx, st, imgs); err != nil {
		return nil, err
	}
	sent := map[string]bool{}
	for _, im := range imgs {
		if sent[im.productID] {
			continue
		}
		sent[im.productID] = true
		payload := st.store.ProductWebhookPayload(st.shop, im.productID)
		resp, err := st.store.SendWebhook(ctx, st.appURL+"/webhooks", st.shop, "products/create", payload)
		if err != nil {
			return nil, fmt.Errorf("send products/create for %q: %w", im.product, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("send products/create for %q: the app answered %d", im.product, resp.StatusCode)
		}
	}
	return imgs, nil
}

func waitMediaReady(ctx context.Context, st *stack, imgs []*demoImage) error {
	for {
		pending := 0
		for _, im := range imgs {
			if im.before != nil {
				continue
			}
			for _, m := range st.store.Product(st.shop, im.productID).Media {
				if m.ID == im.mediaID && m.Status == "READY" {
					im.before = m.Data
				}
			}
			if im.before == nil {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the store to process the sample photos: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// attachJobs gives each image its job, matched by the media it was made for.
func attachJobs(imgs []*demoImage, jobs []job) {
	byMedia := map[string]job{}
	for _, j := range jobs {
		byMedia[j.MediaID] = j
	}
	for _, im := range imgs {
		im.job = byMedia[im.mediaID]
	}
}

// collectAfter reads each written-back image from the store: the job's
// result media, which in replace mode sits where the original was.
func collectAfter(st *stack, imgs []*demoImage) {
	for _, im := range imgs {
		p := st.store.Product(st.shop, im.productID)
		want := im.job.ResultMediaID
		if want == "" {
			want = im.mediaID
		}
		for _, m := range p.Media {
			if m.ID == want {
				im.after = m.Data
			}
		}
		if im.after == nil && im.index < len(p.Media) {
			im.after = p.Media[im.index].Data
		}
	}
}

// keepServing leaves the app running for a look around until ctx ends.
func keepServing(ctx context.Context, w io.Writer, st *stack) {
	fmt.Fprintf(w, "\nStill serving until Ctrl-C:\n")
	fmt.Fprintf(w, "  admin page  %s/?shop=%s  (open it in a browser; the JSON API is at /api, /metrics shows the counters)\n", st.appURL, st.shop)
	fmt.Fprintf(w, "  fake store  %s  (shop %s)\n", st.store.URL(), st.shop)
	if st.tempDir != "" {
		fmt.Fprintf(w, "  database    %s  (kept)\n", st.dbURL)
	}
	fmt.Fprintf(w, "  try         curl -H 'Authorization: Bearer %s' %s/api/jobs\n", st.store.SessionToken(st.shop, time.Hour), st.appURL)
	<-ctx.Done()
}
