package config

import (
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var goodKey = "k1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func valid() map[string]string {
	return map[string]string{
		"APP_URL":            "https://app.example.com",
		"SHOPIFY_API_KEY":    "key",
		"SHOPIFY_API_SECRET": "shpss_topsecret",
		"ENCRYPTION_KEYS":    goodKey,
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(valid()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ForServe); err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":8080" || c.DatabaseURL != "sqlite:rtbshopify.db" || c.ShopifyAPIVersion != "2026-10" ||
		c.Workers != 4 || c.ShopConcurrency != 2 || c.LogFormat != "json" || c.AllowPrivateDownloads ||
		strings.Join(c.ShopifyScopes, ",") != "read_products,write_products,write_files" ||
		c.RTBBaseURL != "http://api.removethebackground.com/REST.svc" ||
		c.RTBFilesBaseURL != "http://api.removethebackground.com/" {
		t.Fatalf("defaults wrong: %+v", c)
	}
	if len(c.EncryptionKeys) != 1 || c.EncryptionKeys[0].ID != "k1" || len(c.EncryptionKeys[0].Secret) != 32 {
		t.Fatalf("keys: %+v", c.EncryptionKeys)
	}
	if c.ReconcileInterval != 15*time.Minute || c.RTBPollInterval != 30*time.Minute {
		t.Fatalf("intervals: reconcile %s, poll %s; want 15m and 30m", c.ReconcileInterval, c.RTBPollInterval)
	}
}

// TestIntervalsAreSettable: tests and operators shorten the reconciliation
// and the polling of Remove The Background.
func TestIntervalsAreSettable(t *testing.T) {
	m := valid()
	m["RECONCILE_INTERVAL"], m["RTB_POLL_INTERVAL"] = "5s", "2s"
	c, err := Load(env(m))
	if err == nil {
		err = c.Validate(ForServe)
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.ReconcileInterval != 5*time.Second || c.RTBPollInterval != 2*time.Second {
		t.Fatalf("intervals: reconcile %s, poll %s; want 5s and 2s", c.ReconcileInterval, c.RTBPollInterval)
	}
	var out strings.Builder
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", c)
	if !strings.Contains(out.String(), "RECONCILE_INTERVAL=5s") || !strings.Contains(out.String(), "RTB_POLL_INTERVAL=2s") {
		t.Errorf("the logged configuration does not show the intervals: %s", out.String())
	}
}

func TestEveryFailureNamesItsVariable(t *testing.T) {
	short := "k1:" + base64.StdEncoding.EncodeToString([]byte("short"))
	cases := []struct {
		name, variable, value string
	}{
		{"missing app url", "APP_URL", ""},
		{"plain http app url", "APP_URL", "http://app.example.com"},
		{"relative app url", "APP_URL", "/x"},
		{"missing api key", "SHOPIFY_API_KEY", ""},
		{"missing secret", "SHOPIFY_API_SECRET", ""},
		{"missing keys", "ENCRYPTION_KEYS", ""},
		{"short key", "ENCRYPTION_KEYS", short},
		{"bad base64", "ENCRYPTION_KEYS", "k1:!!!"},
		{"no key id", "ENCRYPTION_KEYS", ":" + strings.TrimPrefix(goodKey, "k1:")},
		{"duplicate key id", "ENCRYPTION_KEYS", goodKey + "," + goodKey},
		{"workers not a number", "WORKERS", "many"},
		{"workers zero", "WORKERS", "0"},
		{"shop concurrency not a number", "SHOP_CONCURRENCY", "few"},
		{"shop concurrency zero", "SHOP_CONCURRENCY", "0"},
		{"bad bool", "ALLOW_PRIVATE_DOWNLOADS", "maybe"},
		{"bad level", "LOG_LEVEL", "loud"},
		{"bad format", "LOG_FORMAT", "xml"},
		{"bad database", "DATABASE_URL", "postgres://x"},
		{"mysql without db", "DATABASE_URL", "mysql://root@127.0.0.1:3306/"},
		{"bad version", "SHOPIFY_API_VERSION", "2026-02"},
		{"bad rtb url", "RTB_BASE_URL", "ftp://x"},
		{"bad admin base", "SHOPIFY_ADMIN_BASE_URL", "not a url"},
		{"reconcile not a duration", "RECONCILE_INTERVAL", "often"},
		{"reconcile without unit", "RECONCILE_INTERVAL", "15"},
		{"reconcile too often", "RECONCILE_INTERVAL", "100ms"},
		{"reconcile negative", "RECONCILE_INTERVAL", "-5m"},
		{"poll not a duration", "RTB_POLL_INTERVAL", "half an hour"},
		{"poll too often", "RTB_POLL_INTERVAL", "0s"},
		{"poll over a day", "RTB_POLL_INTERVAL", "25h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			m[tc.variable] = tc.value
			c, err := Load(env(m))
			if err == nil {
				err = c.Validate(ForServe)
			}
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.variable, tc.value)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.variable+": ") {
				t.Fatalf("error %q should be one line naming %s", err, tc.variable)
			}
		})
	}
}

func TestLocalhostHTTPAccepted(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:3000"} {
		m := valid()
		m["APP_URL"] = u
		c, _ := Load(env(m))
		if err := c.Validate(ForServe); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
}

func TestMigrateNeedsOnlyTheDatabase(t *testing.T) {
	c, err := Load(env(map[string]string{"DATABASE_URL": "mysql://root@127.0.0.1:3306/rtb"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(ForMigrate); err != nil {
		t.Fatalf("migrate should not need app secrets: %v", err)
	}
}

func TestSecretsRedacted(t *testing.T) {
	m := valid()
	m["SHOPIFY_API_SECRET_PREVIOUS"] = "shpss_oldsecret"
	m["DATABASE_URL"] = "mysql://app:dbpassword@db:3306/rtb"
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	keyB64 := strings.TrimPrefix(goodKey, "k1:")
	for _, out := range []string{c.String(), c.LogValue().String()} {
		for _, secret := range []string{"shpss_topsecret", "shpss_oldsecret", "dbpassword", keyB64} {
			if strings.Contains(out, secret) {
				t.Errorf("printed config leaks %q: %s", secret, out)
			}
		}
		if !strings.Contains(out, "k1:[redacted]") {
			t.Errorf("printed config should still name the key id: %s", out)
		}
	}
}

func TestRotationKeepsOrder(t *testing.T) {
	k2 := "k2:" + base64.StdEncoding.EncodeToString([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"))
	keys, err := ParseKeys(k2 + ", " + goodKey)
	if err != nil {
		t.Fatal(err)
	}
	if keys[0].ID != "k2" || keys[1].ID != "k1" {
		t.Fatalf("the first key must be the active one: %+v", keys)
	}
}
