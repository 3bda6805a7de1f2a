// Command rtbshopify is the Remove The Background app for Shopify: an HTTP
// server, pipeline workers and cron in one process (serve), schema
// migrations (migrate), a self-contained demo (demo), and the key commands
// (keygen, rotate-keys).
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/joho/godotenv"
	"gorm.io/gorm"

	imgsync "rtbshopify/sync"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify"
	"rtbshopify/shopify/ui"
	"rtbshopify/sync/demo"
	"rtbshopify/sync/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	getenv, err := withDotEnv(dotEnvFile, os.Getenv)
	if err == nil {
		err = run(ctx, os.Args[1:], getenv, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtbshopify:", err)
		os.Exit(1)
	}
}

const usage = `usage: rtbshopify [serve|migrate|demo|version|keygen|rotate-keys [--check]]

  serve        run the app: HTTP server, pipeline workers and cron (default)
  migrate      apply pending database migrations and exit
  demo         run the whole pipeline locally against in-process fakes
  version      print the version
  keygen       print a fresh ENCRYPTION_KEYS entry (k<date>:<base64 of 32 random bytes>)
  rotate-keys  re-seal every stored secret under the first key of ENCRYPTION_KEYS;
               --check only reports what is still sealed with another key (exit 1 if any)
`

// run is the whole program; tests call it with their own arguments,
// environment and a cancellable context.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, getenv, stderr, nil, nil)
	case "migrate":
		return migrate(ctx, getenv, stdout, stderr)
	case "demo":
		return runDemo(ctx, args, getenv, stdout, stderr)
	case "rotate-keys":
		return rotateKeys(ctx, args, getenv, stdout, stderr)
	case "keygen":
		return keygen(stdout, time.Now())
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "rtbshopify", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// loadConfig loads and validates the configuration; its error is one line
// per bad variable, each naming the variable.
func loadConfig(getenv func(string) string, p config.Purpose) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err == nil {
		err = cfg.Validate(p)
	}
	if err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func migrate(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv, config.ForMigrate)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	db, err := models.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer models.Close(db)
	applied, err := models.Migrate(ctx, db)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema is up to date (version %d)\n", models.LatestVersion())
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v; schema is at version %d\n", applied, models.LatestVersion())
	return nil
}

// openDatabase opens DATABASE_URL. SQLite is one process's own file, so
// serve migrates it; MySQL is shared by replicas, so serve only checks and
// an operator runs `migrate` once per deploy.
func openDatabase(ctx context.Context, cfg config.Config, log *slog.Logger) (*gorm.DB, error) {
	db, err := models.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return nil, err
	}
	if models.DialectOf(db) == models.SQLite {
		if _, err := models.Migrate(ctx, db); err != nil {
			models.Close(db)
			return nil, err
		}
	}
	if err := models.CheckSchema(ctx, db); err != nil {
		models.Close(db)
		return nil, err
	}
	return db, nil
}

// clockSync is how often the pipeline reads the database's clock, which
// every replica then follows for leases, locks and due times.
const clockSync = 10 * time.Second

// shutdownBudget is how long serve's ordered shutdown may take after
// SIGTERM; deployments give the process longer than this before SIGKILL.
const shutdownBudget = 10 * time.Second

// serve runs the app until ctx ends, then shuts down in order: stop taking
// HTTP requests, stop cron, let workers finish or release their jobs, close
// the database. ready, when not nil, receives the listening address;
// devTokens, when not nil, serves development session tokens so the admin
// page opens in a plain browser (the demo only).
func serve(ctx context.Context, getenv func(string) string, logw io.Writer, ready chan<- string, devTokens func(shop string) string) error {
	cfg, err := loadConfig(getenv, config.ForServe)
	if err != nil {
		return err
	}
	log := newLogger(cfg, logw)
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer models.Close(db)

	app, err := buildApp(cfg, db, log, devTokens)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	addr := ln.Addr().String()
	log.Info("listening", "addr", addr, "version", version, "config", cfg)
	httpErr := make(chan error, 1)
	go func() { httpErr <- app.http.Listener(ln) }()
	app.start(ctx)
	if ready != nil {
		ready <- addr
	}

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		if err != nil {
			app.stop(context.Background())
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	if err := app.http.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	app.stop(sctx)
	log.Info("stopped")
	return nil
}

// application is everything serve runs, built before it listens.
type application struct {
	http     *fiber.App
	pipeline *imgsync.Pipeline
}

func (a *application) start(ctx context.Context) { a.pipeline.Start(ctx) }

// stop runs after HTTP intake stopped: cron first, then the workers, which
// finish their current step or leave it to their lease.
func (a *application) stop(ctx context.Context) {
	a.pipeline.StopCron(ctx)
	a.pipeline.Stop(ctx)
}

// buildApp is the composition root: everything built from the
// configuration, then connected by web.Build. devTokens, when not nil,
// serves development session tokens (the demo only).
func buildApp(cfg config.Config, db *gorm.DB, log *slog.Logger, devTokens func(shop string) string) (*application, error) {
	sealer, err := models.NewSealer(cfg.EncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	signer, err := rtb.NewTokenSigner(callbackKeys(cfg.EncryptionKeys))
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	rtbClient, err := rtb.NewClient(cfg.RTBBaseURL, cfg.RTBFilesBaseURL, nil)
	if err != nil {
		return nil, fmt.Errorf("RTB_BASE_URL: %w", err)
	}
	app, err := web.Build(web.Parts{
		DB: db, Log: log, Sealer: sealer, Signer: signer, RTB: rtbClient,
		Fetcher: rtb.NewDownloader(cfg.AllowPrivateDownloads),
		Shopify: func(enq shopify.Enqueuer) *shopify.App { return shopify.New(cfg, db, sealer, enq, log) },
		Pipeline: imgsync.Options{AppURL: cfg.AppURL, Workers: cfg.Workers, MaxPerShop: cfg.ShopConcurrency, ClockSync: clockSync, Schedule: imgsync.Schedule{
			Reconcile:    "@every " + cfg.ReconcileInterval.String(),
			PollInterval: cfg.RTBPollInterval,
		}},
		Pages: func(srv *fiber.App, shop *shopify.App) {
			ui.Register(srv, ui.Options{
				APIKey: cfg.ShopifyAPIKey, Secrets: []string{cfg.ShopifyAPISecret, cfg.ShopifyAPISecretPrevious},
				Sessions: shop.Sessions(), Log: log, DevTokens: devTokens, Shim: devTokens != nil,
			})
		},
	})
	if err != nil {
		return nil, err
	}
	return &application{http: app.HTTP, pipeline: app.Pipeline}, nil
}

// callbackKeys derives the callback-token keys from ENCRYPTION_KEYS, one per
// key id, so rotating the encryption keys rotates them too.
func callbackKeys(keys []config.Key) []rtb.TokenKey {
	out := make([]rtb.TokenKey, len(keys))
	for i, k := range keys {
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte("rtbshopify callback token key"))
		out[i] = rtb.TokenKey{ID: k.ID, Secret: m.Sum(nil)}
	}
	return out
}

// runDemo hands the demo the real serve, so it runs the app exactly as
// production does, only against in-process fakes.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return demo.Run(ctx, demo.Options{Args: args, Stdout: stdout, Stderr: stderr, Getenv: getenv, Serve: serve})
}

// rotateKeys re-seals every stored secret under the first key of
// ENCRYPTION_KEYS (rotate-keys), or with --check only counts what is still
// sealed with another key and fails if anything is.
func rotateKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rotate-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "only report how many secrets are still sealed with another key; exit 1 if any")
	batch := fs.Int("batch", 100, "rows read per batch")
	pause := fs.Duration("pause", 0, "pause between batches (e.g. 100ms) to spare a busy database")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("rotate-keys: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(getenv, config.ForMigrate)
	if err != nil {
		return err
	}
	if len(cfg.EncryptionKeys) == 0 {
		return fmt.Errorf("invalid configuration: %w", &config.FieldError{Var: "ENCRYPTION_KEYS",
			Msg: "is required: the new key first, then every key still in use"})
	}
	sealer, err := models.NewSealer(cfg.EncryptionKeys)
	if err != nil {
		return fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	log := newLogger(cfg, stderr)
	db, err := models.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer models.Close(db)
	if err := models.CheckSchema(ctx, db); err != nil {
		return err
	}

	if *check {
		u, err := models.CountKeys(ctx, db, sealer, 0)
		if err != nil {
			return err
		}
		printUsage(stdout, u)
		return usageError(u)
	}

	fmt.Fprintf(stdout, "re-sealing stored secrets under %s\n", sealer.ActiveKey())
	rep, rerr := models.RotateKeys(ctx, db, sealer, models.RotateOptions{BatchSize: *batch, Pause: *pause, Log: log})
	for _, c := range rep.Columns {
		fmt.Fprintf(stdout, "  %-42s %6d resealed %6d already under %s\n", c.Label, c.Resealed, c.Current, sealer.ActiveKey())
	}
	fmt.Fprintf(stdout, "  %-42s %6d\n", "rows changed by the app meanwhile (re-read)", rep.Raced)
	for _, u := range rep.Unreadable {
		fmt.Fprintf(stdout, "  cannot open %s\n", u)
	}
	if rerr != nil {
		return fmt.Errorf("rotate-keys: %w", rerr)
	}
	// A replica still sealing with an old first key may have written after
	// its row was passed: say so rather than report success.
	u, err := models.CountKeys(ctx, db, sealer, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "resealed %d secrets; %d still under another key\n", rep.Resealed(), u.Stale())
	return usageError(u)
}

func printUsage(w io.Writer, u models.KeyUsage) {
	if len(u.ByKey) == 0 {
		fmt.Fprintln(w, "no stored secrets")
	}
	for _, id := range u.Keys() {
		note := ""
		if id == u.Active {
			note = " (the first key)"
		}
		fmt.Fprintf(w, "  sealed under %s%s: %d\n", id, note, u.ByKey[id])
	}
}

var errStale = errors.New("stored secrets are still sealed with another key than the first of ENCRYPTION_KEYS; run rotate-keys (and make sure every replica runs with the new ENCRYPTION_KEYS)")

func usageError(u models.KeyUsage) error {
	if u.Unknown > 0 {
		return fmt.Errorf("%d %w: put the key back into ENCRYPTION_KEYS", u.Unknown, models.ErrUnreadableSecrets)
	}
	if n := u.Stale(); n > 0 {
		return fmt.Errorf("%d %w", n, errStale)
	}
	return nil
}

// dotEnvFile is read from the working directory, if present, so a developer keeps
// ENCRYPTION_KEYS and DATABASE_URL out of the shell (and out of git: .gitignore lists it).
const dotEnvFile = ".env"

// withDotEnv returns getenv extended with the variables of the .env file at path: a variable the
// environment sets (non-empty) wins, the file fills in the rest. A missing file changes nothing;
// one that cannot be parsed is an error, so a typo is not silently ignored.
func withDotEnv(path string, getenv func(string) string) (func(string) string, error) {
	vals, err := godotenv.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return vals[name]
	}, nil
}

// keygen prints a fresh ENCRYPTION_KEYS entry: the id names the day it was made, so keys sort by
// age when several are listed during a rotation.
func keygen(stdout io.Writer, now time.Time) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err := fmt.Fprintf(stdout, "k%s:%s\n", now.UTC().Format("20060102"), base64.StdEncoding.EncodeToString(secret))
	return err
}
