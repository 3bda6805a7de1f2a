package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"rtbshopify/models"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/shopifytest"
)

// The fake Remove The Background moves an image through its statuses in
// about 1.3 s instead of minutes, so the whole demo fits in seconds while
// every stage stays visible.
const (
	rtbNewFor        = 400 * time.Millisecond
	rtbProductionFor = 600 * time.Millisecond
	rtbQualityFor    = 300 * time.Millisecond
	rtbTick          = 50 * time.Millisecond
	mediaProcessing  = 100 * time.Millisecond
	shutdownWait     = 15 * time.Second
)

// stack is everything the demo runs: the two fakes and the real server.
type stack struct {
	store    *shopifytest.Store
	rtb      *rtbtest.Server
	app      *appClient
	appURL   string
	shop     string
	rtbEmail string
	rtbKey   string
	tempDir  string // "" when the database is not a temporary SQLite file
	dbURL    string

	cancel context.CancelFunc
	served chan error // serve's result; closed after it is sent
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start prepares the database, starts the fakes and the real server, and
// returns once the server listens. On error everything started is stopped.
func start(ctx context.Context, o Options, f flags, logw io.Writer) (_ *stack, err error) {
	st := &stack{
		shop:     "demo-" + randomHex(2) + ".myshopify.com", // fresh per run, so a reused MySQL database works too
		rtbEmail: "demo@example.com",
		rtbKey:   randomHex(16),
	}
	defer func() {
		if err != nil {
			st.stop(false)
		}
	}()
	if err := st.database(ctx, f, logw); err != nil {
		return nil, err
	}

	apiKey, apiSecret := "demo-"+randomHex(8), randomHex(16)
	st.store = shopifytest.New(shopifytest.Options{APIKey: apiKey, APISecret: apiSecret, MediaProcessingDelay: mediaProcessing})
	st.store.AddShop(st.shop)
	st.rtb = rtbtest.New(rtbtest.Options{
		Accounts: map[string]string{st.rtbEmail: st.rtbKey},
		NewFor:   rtbNewFor, ProductionFor: rtbProductionFor, QualityCheckFor: rtbQualityFor,
		TickInterval: rtbTick, CallbackRetry: []time.Duration{300 * time.Millisecond, time.Second},
		Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})

	listen, appURL, err := listenAddr(o.Getenv("LISTEN_ADDR"))
	if err != nil {
		return nil, err
	}
	st.appURL = appURL
	key := make([]byte, 32)
	rand.Read(key)
	env := map[string]string{
		"LISTEN_ADDR":             listen,
		"APP_URL":                 appURL,
		"DATABASE_URL":            st.dbURL,
		"SHOPIFY_API_KEY":         apiKey,
		"SHOPIFY_API_SECRET":      apiSecret,
		"SHOPIFY_ADMIN_BASE_URL":  st.store.URL(),
		"RTB_BASE_URL":            st.rtb.BaseURL(),
		"RTB_FILES_BASE_URL":      st.rtb.URL() + "/",
		"ALLOW_PRIVATE_DOWNLOADS": "true",
		"ENCRYPTION_KEYS":         "demo:" + base64.StdEncoding.EncodeToString(key),
		"WORKERS":                 "4",
		"LOG_FORMAT":              "text",
		"LOG_LEVEL":               "warn",
	}
	// The demo's configuration is this map alone: a developer's own
	// environment (a production DATABASE_URL, say) must not leak in.
	getenv := func(k string) string { return env[k] }

	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.cancel = cancel
	st.served = make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		// The admin page, opened in a plain browser, gets its session
		// tokens here: for the demo shop only.
		devTokens := func(shop string) string {
			if shop != st.shop {
				return ""
			}
			return st.store.SessionToken(shop, time.Minute)
		}
		st.served <- o.Serve(sctx, getenv, logw, ready, devTokens)
		close(st.served)
	}()
	select {
	case <-ready:
	case err := <-st.served:
		if err == nil {
			err = errors.New("the server stopped before it listened")
		}
		return nil, fmt.Errorf("start the app: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st.app = &appClient{base: appURL, shop: st.shop, store: st.store, hc: &http.Client{Timeout: 30 * time.Second}}
	return st, nil
}

// database picks DATABASE_URL: a SQLite file in a new temporary directory,
// or --database-url migrated here, because serve refuses an unmigrated
// MySQL database (replicas migrate once per deploy, not at start).
func (st *stack) database(ctx context.Context, f flags, logw io.Writer) error {
	if f.databaseURL == "" {
		dir, err := os.MkdirTemp("", "rtbshopify-demo-")
		if err != nil {
			return fmt.Errorf("create a temporary directory: %w", err)
		}
		st.tempDir = dir
		st.dbURL = "sqlite:" + filepath.Join(dir, "demo.db")
		return nil
	}
	st.dbURL = f.databaseURL
	if strings.HasPrefix(f.databaseURL, "sqlite:") {
		return nil // serve migrates SQLite itself
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := models.Open(ctx, f.databaseURL, log)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	defer models.Close(db)
	if _, err := models.Migrate(ctx, db); err != nil {
		return fmt.Errorf("--database-url: migrate: %w", err)
	}
	return nil
}

// listenAddr turns LISTEN_ADDR (or nothing) into the address to listen on
// and the APP_URL that reaches it. Without LISTEN_ADDR it takes a free
// loopback port: APP_URL has to be known before serve listens.
func listenAddr(raw string) (listen, appURL string, err error) {
	host, port := "127.0.0.1", "0"
	if raw != "" {
		h, p, err := net.SplitHostPort(raw)
		if err != nil {
			return "", "", fmt.Errorf("LISTEN_ADDR %q: %w", raw, err)
		}
		host, port = h, p
	}
	urlHost := host
	switch host {
	case "", "0.0.0.0", "::":
		urlHost = "127.0.0.1" // listening everywhere includes loopback
	case "127.0.0.1", "localhost", "::1":
	default:
		return "", "", fmt.Errorf("LISTEN_ADDR %q: the demo's callbacks come from this machine; use a loopback address or leave the host empty", raw)
	}
	if port == "" || port == "0" {
		ln, err := net.Listen("tcp", net.JoinHostPort(urlHost, "0"))
		if err != nil {
			return "", "", fmt.Errorf("find a free port: %w", err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		ln.Close()
	}
	return net.JoinHostPort(host, port), "http://" + net.JoinHostPort(urlHost, port), nil
}

// stop shuts the server down in its own order first (it still needs the
// fakes to finish in-flight work), then the fakes, then removes the
// temporary database unless it is kept.
func (st *stack) stop(keepFiles bool) {
	if st.cancel != nil {
		st.cancel()
		select {
		case <-st.served:
		case <-time.After(shutdownWait):
		}
	}
	if st.rtb != nil {
		st.rtb.Close()
	}
	if st.store != nil {
		st.store.Close()
	}
	if st.tempDir != "" && !keepFiles {
		os.RemoveAll(st.tempDir)
	}
}
