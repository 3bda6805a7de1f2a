package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rtbshopify/config"
)

func TestKeygenPrintsAFreshKeyEntry(t *testing.T) {
	var lines []string
	for range 2 {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"keygen"}, getenv(nil), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(out.String()))
	}
	today := "k" + time.Now().UTC().Format("20060102") + ":"
	for _, l := range lines {
		if !strings.HasPrefix(l, today) {
			t.Fatalf("keygen printed %q, want k<date>:…", l)
		}
		keys, err := config.ParseKeys(l)
		if err != nil || len(keys) != 1 || len(keys[0].Secret) != 32 {
			t.Fatalf("keygen output %q is not an ENCRYPTION_KEYS entry: %v", l, err)
		}
	}
	if lines[0] == lines[1] {
		t.Fatal("two keygen runs printed the same key")
	}
}

func TestDotEnvFillsInWhatTheEnvironmentLeavesUnset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	env := map[string]string{"A": "from-env", "EMPTY": ""}
	// No file: the environment as it is.
	get, err := withDotEnv(path, getenv(env))
	if err != nil || get("A") != "from-env" || get("B") != "" {
		t.Fatalf("without .env: %v A=%q B=%q", err, get("A"), get("B"))
	}
	os.WriteFile(path, []byte("# comment\nA=from-file\nB='quoted value'\nexport C=exported\nEMPTY=filled\n"), 0o600)
	get, err = withDotEnv(path, getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"A": "from-env", "B": "quoted value", "C": "exported", "EMPTY": "filled"} {
		if got := get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	os.WriteFile(path, []byte("A='unterminated\n"), 0o600)
	if _, err := withDotEnv(path, getenv(env)); err == nil {
		t.Fatal("an unparsable .env was accepted")
	}
}

// `shopify app dev` starts the backend with its own variable names only; the developer keeps
// ENCRYPTION_KEYS and DATABASE_URL in .env in the working directory, as main reads it.
func TestServeWithOnlyTheShopifyCLIVariablesAndDotEnv(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	var key bytes.Buffer
	if err := keygen(&key, time.Now()); err != nil {
		t.Fatal(err)
	}
	dotenv := "# made by rtbshopify keygen\nENCRYPTION_KEYS=" + strings.TrimSpace(key.String()) + "\n" +
		"DATABASE_URL=sqlite:" + filepath.Join(dir, "dev.db") + "\n" +
		"SHOPIFY_API_SECRET=stale-secret-from-dotenv\n" // the environment's wins
	if err := os.WriteFile(dotEnvFile, []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := map[string]string{ // what the Shopify CLI sets, and nothing else
		"SHOPIFY_API_KEY":    "cli-client-id",
		"SHOPIFY_API_SECRET": "cli-client-secret",
		"SHOPIFY_APP_URL":    "https://gentle-owl.trycloudflare.com",
		"HOST":               "https://gentle-owl.trycloudflare.com",
		"SCOPES":             "read_products,write_products,write_files",
		"PORT":               port,
		"BACKEND_PORT":       port,
		"FRONTEND_PORT":      port,
	}
	get, err := withDotEnv(dotEnvFile, getenv(cli))
	if err != nil {
		t.Fatal(err)
	}
	_, stop, logs := startAppWith(t, get)
	base := "http://127.0.0.1:" + port

	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz on PORT %s: %d", port, resp.StatusCode)
	}
	out := logs.String()
	for _, want := range []string{`"LISTEN_ADDR":":` + port + `"`, `"APP_URL":"https://gentle-owl.trycloudflare.com"`, `"SHOPIFY_API_KEY":"cli-client-id"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the app's configuration lacks %s; log:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cli-client-secret") || strings.Contains(out, strings.TrimSpace(key.String())[10:]) {
		t.Error("a secret reached the log")
	}
	// Webhooks are verified with the environment's secret, not the stale one in .env.
	for secret, want := range map[string]int{"cli-client-secret": 200, "stale-secret-from-dotenv": 401} {
		if got := postWebhook(t, base, secret); got != want {
			t.Errorf("webhook signed with %s: %d, want %d", secret, got, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func postWebhook(t *testing.T, base, secret string) int {
	t.Helper()
	body := []byte(`{"id": 1, "domain": "dev-shop.myshopify.com"}`)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-Shopify-Topic", "app/uninstalled")
	req.Header.Set("X-Shopify-Shop-Domain", "dev-shop.myshopify.com")
	req.Header.Set("X-Shopify-API-Version", "2026-10")
	req.Header.Set("X-Shopify-Webhook-Id", fmt.Sprint("wh-", secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
