package models_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"rtbshopify/config"
	"rtbshopify/models"
)

func key(id string, b byte) config.Key {
	return config.Key{ID: id, Secret: bytes.Repeat([]byte{b}, 32)}
}

func TestSealerRoundTripAndRotation(t *testing.T) {
	old, err := models.NewSealer([]config.Key{key("k1", 1)})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal("shpat_secret", "a.myshopify.com")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "shpat_secret") || !strings.HasPrefix(sealed, "k1:") {
		t.Fatalf("sealed value %q leaks or lacks the key id", sealed)
	}
	rotated, _ := models.NewSealer([]config.Key{key("k2", 2), key("k1", 1)})
	got, err := rotated.Open(sealed, "a.myshopify.com")
	if err != nil || got != "shpat_secret" {
		t.Fatalf("open with rotated keys = %q, %v", got, err)
	}
	if !rotated.NeedsReseal(sealed) {
		t.Error("a value sealed with the old key should need resealing")
	}
	resealed, _ := rotated.Seal(got, "a.myshopify.com")
	if !strings.HasPrefix(resealed, "k2:") {
		t.Errorf("new values must use the first key, got %q", resealed)
	}
	for name, tc := range map[string]struct{ v, ad string }{
		"other shop":  {sealed, "b.myshopify.com"},
		"altered":     {sealed[:len(sealed)-2] + "AA", "a.myshopify.com"},
		"unknown key": {"k9:" + strings.SplitN(sealed, ":", 2)[1], "a.myshopify.com"},
		"garbage":     {"nonsense", "a.myshopify.com"},
	} {
		if _, err := rotated.Open(tc.v, tc.ad); !errors.Is(err, models.ErrUnseal) {
			t.Errorf("%s: err = %v, want ErrUnseal", name, err)
		}
	}
	if v, err := old.Seal("", "x"); v != "" || err != nil {
		t.Errorf("empty secret sealed to %q, %v", v, err)
	}
}
