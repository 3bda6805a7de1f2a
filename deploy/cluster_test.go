package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/shopifytest"
)

// buildBinary compiles the app once per test binary run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func appBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rtbshopify-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "rtbshopify")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version=replicas-test", "-o", binPath, ".")
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// cluster is N real `rtbshopify serve` processes on one database, with the
// fake Shopify store and fake Remove The Background in this process, and a
// round-robin proxy at APP_URL standing in for the load balancer.
type cluster struct {
	t       *testing.T
	bin     string
	dir     string
	dbURL   string
	db      *gorm.DB
	store   *shopifytest.Store
	rtb     *rtbtest.Server
	proxy   *httptest.Server
	shop    string
	rtbMail string
	rtbKey  string
	apiKey  string
	secret  string
	keys    string // ENCRYPTION_KEYS
	extra   map[string]string

	mu    sync.Mutex
	nodes []*node
	rr    atomic.Uint64

	// holdNext holds the next Admin API mutation any replica sends.
	holdNext atomic.Bool
	// holdSubmit delivers the next image submission any replica sends to
	// Remove The Background, then holds the answer back from the replica.
	holdSubmit atomic.Bool
	held       chan heldCall
}

// node is one serve process.
type node struct {
	n    int
	cmd  *exec.Cmd
	url  string
	log  string
	dead atomic.Bool
	done chan error
	// webhooks and callbacks count what this replica answered with 2xx.
	webhooks, callbacks atomic.Int64
	// shopify is this replica's own way to the fake store, so the test can
	// stop it in the middle of a write-back.
	shopify *httptest.Server
	// rtb is its way to the fake Remove The Background, so the test can
	// lose the answer to a submission that did arrive.
	rtb     *httptest.Server
	release chan struct{} // closed to let a held request fail
}

// heldCall is an Admin API mutation the test holds: it never reaches the
// store, and its replica waits for an answer that never comes, holding its
// job's lease, until the test kills it.
type heldCall struct {
	node *node
	op   string
}

type clusterOptions struct {
	rtbNew, rtbProduction, rtbQuality time.Duration
	extraEnv                          map[string]string
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newKey(id string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

// newCluster prepares the database (migrated, as `migrate` does before a
// rollout) and the fakes; start adds processes.
func newCluster(t *testing.T, dbURL string, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{
		t: t, bin: appBinary(t), dir: t.TempDir(), dbURL: dbURL,
		shop: "replicas-" + randHex(3) + ".myshopify.com", rtbMail: "ops@example.com", rtbKey: randHex(16),
		apiKey: "replicas-" + randHex(6), secret: randHex(16), keys: newKey("k1"), extra: o.extraEnv,
		held: make(chan heldCall, 1),
	}
	if out, err := c.run("migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	db, err := models.Open(context.Background(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close(db) })
	c.db = db
	c.store = shopifytest.New(shopifytest.Options{APIKey: c.apiKey, APISecret: c.secret, MediaProcessingDelay: 50 * time.Millisecond})
	c.store.AddShop(c.shop)
	t.Cleanup(c.store.Close)
	c.rtb = rtbtest.New(rtbtest.Options{
		Accounts: map[string]string{c.rtbMail: c.rtbKey},
		NewFor:   o.rtbNew, ProductionFor: o.rtbProduction, QualityCheckFor: o.rtbQuality,
		TickInterval: 50 * time.Millisecond, CallbackRetry: []time.Duration{300 * time.Millisecond, time.Second},
		Logger: slog.New(slog.DiscardHandler),
	})
	t.Cleanup(c.rtb.Close)
	c.proxy = httptest.NewServer(http.HandlerFunc(c.forward))
	t.Cleanup(c.proxy.Close)
	t.Cleanup(c.stopAll)
	return c
}

// env is every serve process's configuration.
func (c *cluster) env(listen string, nd *node) []string {
	m := map[string]string{
		"LISTEN_ADDR":             listen,
		"APP_URL":                 c.proxy.URL,
		"DATABASE_URL":            c.dbURL,
		"SHOPIFY_API_KEY":         c.apiKey,
		"SHOPIFY_API_SECRET":      c.secret,
		"SHOPIFY_ADMIN_BASE_URL":  nd.shopify.URL,
		"RTB_BASE_URL":            nd.rtb.URL + "/REST.svc",
		"RTB_FILES_BASE_URL":      c.rtb.URL() + "/",
		"ALLOW_PRIVATE_DOWNLOADS": "true",
		"ENCRYPTION_KEYS":         c.keys,
		"WORKERS":                 "2",
		"LOG_FORMAT":              "json",
		"LOG_LEVEL":               "info",
	}
	known := configVars()
	for k, v := range c.extra {
		if known[k] { // settings that exist in this version of config
			m[k] = v
		}
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir}
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// run runs a one-shot command (migrate, rotate-keys) with the cluster's
// configuration and returns its standard output.
func (c *cluster) run(args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + c.dbURL, "ENCRYPTION_KEYS=" + c.keys, "LOG_FORMAT=text"}
	cmd.Dir = c.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start launches n more serve processes and waits until each is ready.
func (c *cluster) start(n int) []*node {
	c.t.Helper()
	var started []*node
	for range n {
		addr := freePort(c.t)
		c.mu.Lock()
		nd := &node{n: len(c.nodes) + 1, url: "http://" + addr, done: make(chan error, 1), release: make(chan struct{})}
		nd.shopify = httptest.NewServer(c.toStore(nd))
		nd.rtb = httptest.NewServer(c.toRTB(nd))
		c.t.Cleanup(nd.rtb.Close)
		c.t.Cleanup(nd.shopify.Close)
		c.t.Cleanup(nd.releaseHeld)
		nd.log = filepath.Join(c.dir, fmt.Sprintf("replica-%d-%d.log", nd.n, time.Now().UnixNano()))
		c.nodes = append(c.nodes, nd)
		c.mu.Unlock()
		f, err := os.Create(nd.log)
		if err != nil {
			c.t.Fatal(err)
		}
		nd.cmd = exec.Command(c.bin, "serve")
		nd.cmd.Env = c.env(addr, nd)
		nd.cmd.Dir = c.dir // no .env of the developer's working directory
		nd.cmd.Stdout, nd.cmd.Stderr = f, f
		if err := nd.cmd.Start(); err != nil {
			c.t.Fatal(err)
		}
		go func() { nd.done <- nd.cmd.Wait(); f.Close() }()
		started = append(started, nd)
	}
	for _, nd := range started {
		c.waitReady(nd)
	}
	return started
}

func (c *cluster) waitReady(nd *node) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := testClient.Get(nd.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-nd.done:
			c.t.Fatalf("replica %d exited before it was ready: %v\n%s", nd.n, err, tail(nd.log))
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.t.Fatalf("replica %d not ready within 30 s\n%s", nd.n, tail(nd.log))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// testClient is the test's own way to the replicas and the fakes: a call
// that hangs fails the test with its name instead of stalling it until the
// package's timeout.
var testClient = &http.Client{Timeout: time.Minute}

// kill ends a replica with SIGKILL: no shutdown, leases left behind.
func (c *cluster) kill(nd *node) {
	nd.dead.Store(true)
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.done
}

// stop ends a replica with SIGTERM and wants a clean exit.
func (c *cluster) stop(nd *node) {
	c.t.Helper()
	if nd.dead.Swap(true) {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-nd.done:
		if err != nil {
			c.t.Errorf("replica %d exited with %v on SIGTERM\n%s", nd.n, err, tail(nd.log))
		}
	case <-time.After(20 * time.Second):
		nd.cmd.Process.Kill()
		c.t.Errorf("replica %d did not stop within 20 s of SIGTERM", nd.n)
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	nodes := append([]*node(nil), c.nodes...)
	c.mu.Unlock()
	for _, nd := range nodes {
		c.stop(nd)
	}
}

// spread says how many webhooks and callbacks each replica answered.
func (c *cluster) spread() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, nd := range c.nodes {
		parts = append(parts, fmt.Sprintf("replica %d: %d webhooks, %d callbacks", nd.n, nd.webhooks.Load(), nd.callbacks.Load()))
	}
	return strings.Join(parts, "; ")
}

// eachAnswered reports whether every replica has answered a webhook and a
// callback.
func (c *cluster) eachAnswered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if nd.webhooks.Load() == 0 || nd.callbacks.Load() == 0 {
			return false
		}
	}
	return len(c.nodes) > 0
}

// live lists the replicas still running.
func (c *cluster) live() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node
	for _, nd := range c.nodes {
		if !nd.dead.Load() {
			out = append(out, nd)
		}
	}
	return out
}

// api calls the app's JSON API through the load balancer with a fresh
// session token, as the embedded admin page does.
func (c *cluster) api(method, path string, in, out any) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.proxy.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+c.store.SessionToken(c.shop, time.Minute))
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// install installs the shop (token exchange on the first API call) and
// saves settings that process every image in replace mode.
func (c *cluster) install() {
	c.t.Helper()
	c.api(http.MethodGet, "/api/settings", nil, nil)
	c.api(http.MethodPut, "/api/settings", map[string]any{
		"enabled":       true,
		"rtb":           map[string]any{"contactEmail": c.rtbMail, "contactApiKey": c.rtbKey},
		"templateId":    "2000045",
		"imageScope":    "all",
		"writeMode":     "replace",
		"deliveryHours": 24,
		"monthlyBudget": "",
	}, nil)
}

// webhook sends a signed products/* webhook for a product straight to one
// replica (Shopify's deliveries land on whichever replica the balancer
// picks; here the test picks, to spread them).
func (c *cluster) webhook(nd *node, topic, productID string) {
	c.t.Helper()
	resp, err := c.store.SendWebhook(context.Background(), nd.url+"/webhooks", c.shop, topic, c.store.ProductWebhookPayload(c.shop, productID))
	if err != nil {
		c.t.Errorf("%s to replica %d: %v", topic, nd.n, err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		c.t.Errorf("%s to replica %d: %d", topic, nd.n, resp.StatusCode)
		return
	}
	nd.webhooks.Add(1)
}

func (c *cluster) jobs() []models.ImageJob {
	var jobs []models.ImageJob
	if err := c.db.Order("id").Find(&jobs).Error; err != nil {
		c.t.Fatal(err)
	}
	return jobs
}

// states counts jobs by state, printed in a stable order.
func states(jobs []models.ImageJob) string {
	m := map[string]int{}
	for _, j := range jobs {
		m[j.State]++
	}
	var parts []string
	for s, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
