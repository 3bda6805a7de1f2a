package models_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// seedSecrets stores n shops with tokens and settings keys sealed by s,
// and returns each shop's plaintexts by column.
func seedSecrets(t *testing.T, db *gorm.DB, s *models.Sealer, n int) map[string]map[string]string {
	t.Helper()
	want := map[string]map[string]string{}
	for i := range n {
		domain := fmt.Sprintf("shop-%03d.myshopify.com", i)
		p := map[string]string{
			"access_token":          "shpat_access_" + domain,
			"refresh_token":         "shprt_refresh_" + domain,
			"rtb_contact_api_key":   "contact-key-" + domain,
			"rtb_developer_api_key": "",
		}
		if i%3 == 0 {
			p["rtb_developer_api_key"] = "developer-key-" + domain
		}
		seal := func(v, ad string) string {
			out, err := s.Seal(v, ad)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		shop := models.Shop{Domain: domain, State: models.ShopInstalled,
			AccessToken: seal(p["access_token"], domain), RefreshToken: seal(p["refresh_token"], domain)}
		if err := db.Create(&shop).Error; err != nil {
			t.Fatal(err)
		}
		if i%4 != 3 { // some shops never saved settings
			set := models.Settings{ShopID: shop.ID, RTBContactEmail: "a@example.com",
				RTBContactAPIKey:   seal(p["rtb_contact_api_key"], models.RTBKeyAD(domain, "contact")),
				RTBDeveloperAPIKey: seal(p["rtb_developer_api_key"], models.RTBKeyAD(domain, "developer"))}
			if err := db.Create(&set).Error; err != nil {
				t.Fatal(err)
			}
		} else {
			delete(p, "rtb_contact_api_key")
			delete(p, "rtb_developer_api_key")
		}
		want[domain] = p
	}
	return want
}

// storedSecrets opens every stored secret with s and checks it names key
// (any key when key is "").
func storedSecrets(t *testing.T, db *gorm.DB, s *models.Sealer, key string) map[string]map[string]string {
	t.Helper()
	got := map[string]map[string]string{}
	var shops []models.Shop
	db.Order("id").Find(&shops)
	open := func(domain, col, v, ad string) {
		if v == "" {
			got[domain][col] = ""
			return
		}
		if key != "" && models.KeyID(v) != key {
			t.Errorf("%s %s is sealed with %q, want %q", domain, col, models.KeyID(v), key)
		}
		plain, err := s.Open(v, ad)
		if err != nil {
			t.Errorf("%s %s: %v", domain, col, err)
		}
		got[domain][col] = plain
	}
	for _, sh := range shops {
		got[sh.Domain] = map[string]string{}
		open(sh.Domain, "access_token", sh.AccessToken, sh.Domain)
		open(sh.Domain, "refresh_token", sh.RefreshToken, sh.Domain)
		var set models.Settings
		if db.Where("shop_id = ?", sh.ID).Take(&set).Error == nil {
			open(sh.Domain, "rtb_contact_api_key", set.RTBContactAPIKey, models.RTBKeyAD(sh.Domain, "contact"))
			open(sh.Domain, "rtb_developer_api_key", set.RTBDeveloperAPIKey, models.RTBKeyAD(sh.Domain, "developer"))
		}
	}
	return got
}

func sameSecrets(t *testing.T, got, want map[string]map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored secrets changed:\n got  %v\n want %v", got, want)
	}
}

func TestRotateKeysResealsEverySecretUnderTheFirstKey(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		old, _ := models.NewSealer([]config.Key{key("k1", 1)})
		want := seedSecrets(t, db, old, 25)
		rotated, _ := models.NewSealer([]config.Key{key("k2", 2), key("k1", 1)})

		u, err := models.CountKeys(ctx, db, rotated, 7)
		if err != nil {
			t.Fatal(err)
		}
		// 25 shops × 2 tokens, 19 settings rows with a contact key, 7 of them with a developer key.
		if u.ByKey["k1"] != 76 || u.Stale() != 76 || u.ByKey["k2"] != 0 || u.Unknown != 0 {
			t.Fatalf("before rotation: %+v", u)
		}

		rep, err := models.RotateKeys(ctx, db, rotated, models.RotateOptions{BatchSize: 4})
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := []int{25, 25, 19, 7}
		for i, c := range rep.Columns {
			if c.Resealed != wantCounts[i] || c.Current != 0 {
				t.Errorf("%s: %+v, want %d resealed", c.Label, c, wantCounts[i])
			}
		}
		sameSecrets(t, storedSecrets(t, db, rotated, "k2"), want)

		// Only the new key is needed now, and a second run finds nothing to do.
		only, _ := models.NewSealer([]config.Key{key("k2", 2)})
		sameSecrets(t, storedSecrets(t, db, only, "k2"), want)
		rep, err = models.RotateKeys(ctx, db, rotated, models.RotateOptions{BatchSize: 4})
		if err != nil || rep.Resealed() != 0 || rep.Columns[0].Current != 25 {
			t.Errorf("second run: %+v, %v", rep, err)
		}
		if u, _ := models.CountKeys(ctx, db, rotated, 0); u.Stale() != 0 || u.ByKey["k2"] != 76 {
			t.Errorf("after rotation: %+v", u)
		}
	})
}

func TestRotateKeysNeverOverwritesAConcurrentWrite(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		old, _ := models.NewSealer([]config.Key{key("k1", 1)})
		want := seedSecrets(t, db, old, 6)
		rotated, _ := models.NewSealer([]config.Key{key("k2", 2), key("k1", 1)})

		// Between rotate-keys' read and its write, a replica still on the
		// old key refreshes shop 2's tokens and another saves shop 4's
		// settings; both writes must survive (and then be resealed).
		raced := map[string]bool{}
		o := models.WithBeforeWrite(models.RotateOptions{BatchSize: 2}, func(table string, id uint64) {
			var sh models.Shop
			db.Take(&sh, id)
			if table == "shops" && sh.Domain == "shop-002.myshopify.com" && !raced[table] {
				raced[table] = true
				a, _ := old.Seal("shpat_refreshed", sh.Domain)
				r, _ := old.Seal("shprt_refreshed", sh.Domain)
				db.Model(&models.Shop{}).Where("id = ?", id).Updates(map[string]any{"access_token": a, "refresh_token": r})
				want[sh.Domain]["access_token"], want[sh.Domain]["refresh_token"] = "shpat_refreshed", "shprt_refreshed"
			}
			if table == "shop_settings" && sh.Domain == "shop-004.myshopify.com" && !raced[table] {
				raced[table] = true
				c, _ := rotated.Seal("contact-key-new", models.RTBKeyAD(sh.Domain, "contact"))
				db.Model(&models.Settings{}).Where("shop_id = ?", id).Update("rtb_contact_api_key", c)
				want[sh.Domain]["rtb_contact_api_key"] = "contact-key-new"
			}
		})
		rep, err := models.RotateKeys(ctx, db, rotated, o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Raced != 2 || !raced["shops"] || !raced["shop_settings"] {
			t.Errorf("raced %d rows (%v), want 2", rep.Raced, raced)
		}
		sameSecrets(t, storedSecrets(t, db, rotated, "k2"), want)
	})
}

func TestRotateKeysReportsSecretsNoKeyOpens(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		k0, _ := models.NewSealer([]config.Key{key("k0", 9)})
		seedSecrets(t, db, k0, 1)
		old, _ := models.NewSealer([]config.Key{key("k1", 1)})
		// A second shop under k1.
		a, _ := old.Seal("tok", "other.myshopify.com")
		db.Create(&models.Shop{Domain: "other.myshopify.com", State: models.ShopInstalled, AccessToken: a})

		// k0 was dropped from ENCRYPTION_KEYS before its values were resealed.
		rotated, _ := models.NewSealer([]config.Key{key("k2", 2), key("k1", 1)})
		u, _ := models.CountKeys(ctx, db, rotated, 0)
		if u.Unknown != 4 || u.ByKey["k1"] != 1 {
			t.Errorf("usage %+v: want 4 values under the unknown k0", u)
		}
		rep, err := models.RotateKeys(ctx, db, rotated, models.RotateOptions{})
		if !errors.Is(err, models.ErrUnreadableSecrets) || len(rep.Unreadable) != 4 {
			t.Fatalf("err %v, unreadable %v", err, rep.Unreadable)
		}
		for _, u := range rep.Unreadable {
			if !strings.Contains(u, "shop-000.myshopify.com") || !strings.Contains(u, `"k0"`) {
				t.Errorf("unreadable entry %q does not name the shop and key", u)
			}
		}
		// What could be opened was resealed all the same.
		if rep.Columns[0].Resealed != 1 {
			t.Errorf("report %+v", rep.Columns)
		}
	})
}

func TestRotateKeysResumesAfterAnInterruptedRun(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		old, _ := models.NewSealer([]config.Key{key("k1", 1)})
		want := seedSecrets(t, db, old, 10)
		rotated, _ := models.NewSealer([]config.Key{key("k2", 2), key("k1", 1)})

		// The operator stops the first run after a few rows.
		ctx, cancel := context.WithCancel(context.Background())
		writes := 0
		o := models.WithBeforeWrite(models.RotateOptions{BatchSize: 3}, func(string, uint64) {
			if writes++; writes == 4 {
				cancel()
			}
		})
		if _, err := models.RotateKeys(ctx, db, rotated, o); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		u, _ := models.CountKeys(context.Background(), db, rotated, 0)
		if u.ByKey["k2"] == 0 || u.Stale() == 0 {
			t.Fatalf("after the interruption: %+v, want some values under each key", u)
		}
		// Every value still opens: each row was rewritten whole or not at all.
		sameSecrets(t, storedSecrets(t, db, rotated, ""), want)

		rep, err := models.RotateKeys(context.Background(), db, rotated, models.RotateOptions{BatchSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resealed() != u.Stale() {
			t.Errorf("second run resealed %d, %d were left", rep.Resealed(), u.Stale())
		}
		sameSecrets(t, storedSecrets(t, db, rotated, "k2"), want)
	})
}
