package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

func keyEntry(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

func TestRotateKeysCommand(t *testing.T) {
	modelstestEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := models.Open(ctx, dbURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer models.Close(db)
		keys, _ := config.ParseKeys(keyEntry("k1", 1))
		old, _ := models.NewSealer(keys)
		for _, d := range []string{"a.myshopify.com", "b.myshopify.com"} {
			a, _ := old.Seal("shpat_"+d, d)
			r, _ := old.Seal("shprt_"+d, d)
			if err := db.Create(&models.Shop{Domain: d, State: models.ShopInstalled, AccessToken: a, RefreshToken: r}).Error; err != nil {
				t.Fatal(err)
			}
		}
		env := map[string]string{"DATABASE_URL": dbURL, "ENCRYPTION_KEYS": keyEntry("k2", 2) + "," + keyEntry("k1", 1)}
		cmd := func(args ...string) (string, error) {
			var out bytes.Buffer
			err := run(ctx, args, getenv(env), &out, io.Discard)
			return out.String(), err
		}

		out, err := cmd("rotate-keys", "--check")
		if err == nil || !strings.Contains(err.Error(), "4 stored secrets are still sealed with another key") || !strings.Contains(out, "sealed under k1: 4") {
			t.Fatalf("--check before rotation: %q, %v", out, err)
		}
		out, err = cmd("rotate-keys", "--batch", "1")
		if err != nil {
			t.Fatalf("rotate-keys: %v\n%s", err, out)
		}
		for _, want := range []string{"re-sealing stored secrets under k2", "Shopify access tokens", "2 resealed", "resealed 4 secrets; 0 still under another key"} {
			if !strings.Contains(out, want) {
				t.Errorf("rotate-keys printed %q, want %q", out, want)
			}
		}
		if out, err = cmd("rotate-keys", "--check"); err != nil || !strings.Contains(out, "sealed under k2 (the first key): 4") {
			t.Errorf("--check after rotation: %q, %v", out, err)
		}
		for _, s := range []string{"shpat_", "shprt_"} {
			if strings.Contains(out, s) {
				t.Errorf("rotate-keys printed a secret: %q", out)
			}
		}
		// Dropping k1 before rotation would have made its values unreadable:
		// --check says so and names the fix.
		a, _ := old.Seal("shpat_c", "c.myshopify.com")
		db.Create(&models.Shop{Domain: "c.myshopify.com", State: models.ShopInstalled, AccessToken: a})
		env["ENCRYPTION_KEYS"] = keyEntry("k2", 2)
		if out, err = cmd("rotate-keys", "--check"); err == nil || !strings.Contains(err.Error(), "put the key back into ENCRYPTION_KEYS") {
			t.Errorf("--check with a missing key: %q, %v", out, err)
		}
		if _, err = cmd("rotate-keys"); err == nil || !strings.Contains(err.Error(), "1 stored secrets that no key of ENCRYPTION_KEYS opens") {
			t.Errorf("rotate-keys with a missing key: %v", err)
		}
		delete(env, "ENCRYPTION_KEYS")
		if _, err = cmd("rotate-keys"); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEYS") {
			t.Errorf("rotate-keys without keys: %v", err)
		}
	})
}

// modelstestEach runs fn on a fresh migrated SQLite database and, with
// TEST_MYSQL_DSN, a fresh MariaDB one.
func modelstestEach(t *testing.T, fn func(t *testing.T, dbURL string)) {
	for _, name := range modelstest.Dialects() {
		t.Run(name, func(t *testing.T) {
			fn(t, modelstest.Open(t, name).URL)
		})
	}
}
