package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"rtbshopify/models"
	"rtbshopify/shopify/shopifytest"
)

// assertGallery checks a product after write-back in replace mode against
// the gallery the merchant left.
func assertGallery(t *testing.T, h *harness, edited, after shopifytest.ProductSnapshot) {
	t.Helper()
	assertCatalogueGallery(t, h, "replace", edited, after)
}

// assertCatalogueGallery checks a product after write-back against the
// gallery the merchant left: in replace mode each image replaced by its
// processed copy in the same place, in add mode each original untouched
// with its processed copy right after it; the merchant's order, alt texts
// and variant links (moved to the processed copy in replace mode, left on
// the original in add mode), none lost, none twice. In add mode an image
// finds no room only in a gallery holding Shopify's maximum.
func assertCatalogueGallery(t *testing.T, h *harness, mode string, edited, after shopifytest.ProductSnapshot) {
	t.Helper()
	type slot struct {
		orig      shopifytest.MediaSnapshot
		processed bool
	}
	var want []slot
	counterpart := map[string]string{} // original id → the id the variants link
	full := false
	for _, orig := range edited.Media {
		j := h.jobFor(orig.ID)
		counterpart[orig.ID] = orig.ID
		switch {
		case j.State == models.JobDone && mode == "add":
			want = append(want, slot{orig, false}, slot{orig, true})
		case j.State == models.JobDone:
			want = append(want, slot{orig, true})
			counterpart[orig.ID] = j.ResultMediaID
		case mode == "add" && j.State == models.JobFailed && strings.Contains(j.Error, "maximum"):
			want = append(want, slot{orig, false})
			full = true
		default:
			t.Errorf("%q image %s (%s): job %s %q", edited.Title, orig.ID, orig.Filename, j.State, j.Error)
			return
		}
	}
	if full && len(after.Media) != 250 {
		t.Errorf("%q: an image found no room in a gallery of %d media", edited.Title, len(after.Media))
	}
	if len(after.Media) != len(want) {
		t.Errorf("%q: %d media, want %d", edited.Title, len(after.Media), len(want))
		return
	}
	seen := map[string]bool{}
	for i, w := range want {
		m, orig := after.Media[i], w.orig
		if seen[m.ID] {
			t.Errorf("%q: %s twice", edited.Title, m.ID)
		}
		seen[m.ID] = true
		if m.Alt != orig.Alt || m.Status != "READY" {
			t.Errorf("%q position %d (%s): alt %q %s, want %q READY", edited.Title, i, orig.Filename, m.Alt, m.Status, orig.Alt)
		}
		if !w.processed {
			if m.ID != orig.ID || m.Filename != orig.Filename || !bytes.Equal(m.Data, orig.Data) {
				t.Errorf("%q position %d holds %s %q, want the original %s %q untouched", edited.Title, i, m.ID, m.Filename, orig.ID, orig.Filename)
			}
			continue
		}
		j := h.jobFor(orig.ID)
		if m.ID != j.ResultMediaID {
			t.Errorf("%q position %d holds %s, want %s (processed %s)", edited.Title, i, m.ID, j.ResultMediaID, orig.Filename)
		}
		if bytes.Equal(m.Data, orig.Data) || !borderIsWhiteOrClear(t, m.Data) {
			t.Errorf("%q position %d (%s) is not the processed image", edited.Title, i, orig.Filename)
		}
		stem := strings.TrimSuffix(orig.Filename, path.Ext(orig.Filename))
		switch {
		case m.ID == orig.ID && m.Filename != orig.Filename:
			t.Errorf("%q position %d renamed %s → %s", edited.Title, i, orig.Filename, m.Filename)
		case m.ID != orig.ID && !strings.HasPrefix(m.Filename, stem+"-"):
			t.Errorf("%q position %d: processed %s named %q, not after it", edited.Title, i, orig.Filename, m.Filename)
		}
	}
	for vi, v := range after.Variants {
		var want []string
		for _, id := range edited.Variants[vi].MediaIDs {
			want = append(want, counterpart[id])
		}
		if !equal(v.MediaIDs, want) {
			t.Errorf("%q variant %s links %v, want %v", edited.Title, v.Title, v.MediaIDs, want)
		}
	}
}

// assertHeld checks a product whose images wait for review: unchanged,
// and each processed image in a READY file off the product, with the
// original's alt text.
func assertHeld(t *testing.T, h *harness, before, now shopifytest.ProductSnapshot) {
	t.Helper()
	if !same(before, now) {
		t.Errorf("%q changed while its images were held for review", before.Title)
	}
	for _, m := range before.Media {
		j := h.jobFor(m.ID)
		f := fileByID(now, j.ReviewFileID)
		if j.State != models.JobAwaitingReview || f == nil || f.Status != "READY" || len(f.ProductIDs) != 0 || f.Alt != m.Alt {
			t.Errorf("%q image %s: job %s %q, held file %+v; want awaiting review, in a READY file off the product with alt %q",
				before.Title, m.Filename, j.State, j.Error, f, m.Alt)
		}
	}
}

// assertCatalogueFiles checks a shop's Files after write-back: every file
// READY, and nothing but the originals, the processed images and the kept
// copies of originals replaced in place — no second or orphaned copy, and
// no file held for review left beside an image published in place.
func assertCatalogueFiles(t *testing.T, h *harness, s *catalogueShop) {
	t.Helper()
	if len(s.recs) == 0 {
		return
	}
	want := map[string]string{}
	for _, snap := range s.edited {
		for _, m := range snap.Media {
			want[m.ID] = "original " + m.Filename
			j := h.jobFor(m.ID)
			if j.ReviewFileID != "" && j.ReviewFileID != j.ResultMediaID {
				t.Errorf("%s: job %d keeps its held file %s beside its result %s", s.domain, j.ID, j.ReviewFileID, j.ResultMediaID)
			}
			for _, id := range []string{j.ResultMediaID, j.OriginalFileID} {
				if id != "" && id != m.ID {
					want[id] = "of job " + itoa(j.ID)
				}
			}
		}
	}
	got := map[string]bool{}
	for _, f := range h.store.Product(s.domain, s.recs[0].ID).Files {
		got[f.ID] = true
		if _, ok := want[f.ID]; !ok {
			t.Errorf("%s: Files holds %s %q (%s), which no job made", s.domain, f.ID, f.Filename, f.Status)
		} else if f.Status != "READY" {
			t.Errorf("%s: Files holds %s %q, %s", s.domain, f.ID, f.Filename, f.Status)
		}
	}
	for id, what := range want {
		if !got[id] {
			t.Errorf("%s: %s (%s) is not in Files", s.domain, id, what)
		}
	}
}

// assertRestored checks a product after every job was reverted: its
// gallery exactly as the merchant left it before the app touched it — the
// same media in the same order, with their bytes, file names and alt
// texts, and the same variant links.
func assertRestored(t *testing.T, edited, after shopifytest.ProductSnapshot) {
	t.Helper()
	if len(after.Media) != len(edited.Media) {
		t.Errorf("%q after revert: %d media, want %d", edited.Title, len(after.Media), len(edited.Media))
		return
	}
	for i, o := range edited.Media {
		m := after.Media[i]
		if m.ID != o.ID || m.Filename != o.Filename || m.Alt != o.Alt || m.Status != "READY" || !bytes.Equal(m.Data, o.Data) {
			t.Errorf("%q position %d after revert: %s %q alt %q %s (bytes equal %v), want the original %s %q alt %q",
				edited.Title, i, m.ID, m.Filename, m.Alt, m.Status, bytes.Equal(m.Data, o.Data), o.ID, o.Filename, o.Alt)
		}
	}
	for vi, v := range after.Variants {
		if !equal(v.MediaIDs, edited.Variants[vi].MediaIDs) {
			t.Errorf("%q variant %s after revert links %v, want %v", edited.Title, v.Title, v.MediaIDs, edited.Variants[vi].MediaIDs)
		}
	}
}

// apiAs calls the JSON API as one shop's merchant.
func (h *harness) apiAs(domain, method, path string, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url+path, r)
	req.Header.Set("Authorization", "Bearer "+h.store.SessionToken(domain, time.Minute))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// webhookAs sends one shop's product webhook.
func (h *harness) webhookAs(domain, topic, productID string) {
	h.t.Helper()
	resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", domain, topic, h.store.ProductWebhookPayload(domain, productID))
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("webhook %s: %d", topic, resp.StatusCode)
	}
}

// waitReadyIn is waitReady for a product of any shop.
func waitReadyIn(t testing.TB, h *harness, domain, productID string) shopifytest.ProductSnapshot {
	t.Helper()
	for range 500 {
		snap := h.store.Product(domain, productID)
		ready := true
		for _, m := range snap.Media {
			ready = ready && m.Status == "READY"
		}
		if ready {
			return snap
		}
		sleep()
	}
	t.Fatal("product media never became READY")
	return shopifytest.ProductSnapshot{}
}
