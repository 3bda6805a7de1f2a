package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"rtbshopify/models"
	"rtbshopify/shopify/shopifytest"
)

// pointsCase is one write path on products of one gallery size.
type pointsCase struct {
	path   string // in-place, new-media, add
	images int    // per product
}

// pointsResult is what one case spent at the fake store.
type pointsResult struct {
	images, requests, throttled int
	points                      float64
	byOperation                 map[string]float64
}

// BenchmarkPointsPerImage writes back fresh products through the whole
// pipeline (webhook, submission, callback, write-back) against the fake
// store and reports the GraphQL points each image cost, as the store
// charged them (actualQueryCost), for each write path and gallery size:
// in place (a JPEG original and an opaque result), new media (a
// transparent result cannot replace a .jpg original in place) and add
// mode, on products of 1, 10 and 30 images with 10 variants, 7 of them
// linked to images. Each case runs on its own store and database, about
// 30 images per case, and ends with an audit of every product's gallery.
// The rate limit is raised so that it does not set the pace (points are
// the same at any rate). The table by operation shows with -v:
//
//	go test ./sync/e2e -run '^$' -bench PointsPerImage -benchtime=1x -v
func BenchmarkPointsPerImage(b *testing.B) {
	var cases []pointsCase
	for _, path := range []string{"in-place", "new-media", "add"} {
		for _, n := range []int{1, 10, 30} {
			cases = append(cases, pointsCase{path, n})
		}
	}
	results := map[pointsCase]pointsResult{}
	for _, pc := range cases {
		b.Run(fmt.Sprintf("%s/%d", pc.path, pc.images), func(b *testing.B) {
			var r pointsResult
			for range b.N {
				r = runPointsCase(b, pc)
			}
			results[pc] = r
			b.ReportMetric(r.points/float64(r.images), "points/image")
			b.ReportMetric(float64(r.requests)/float64(r.images), "requests/image")
			top, topPoints := "", 0.0
			for op, p := range r.byOperation {
				if p > topPoints || (p == topPoints && op < top) {
					top, topPoints = op, p
				}
			}
			record(b, fmt.Sprintf("%s, products of %d images", pc.path, pc.images), "", fmt.Sprintf("%d images; most points in %s", r.images, top),
				fig("points/image", r.points/float64(r.images), ""), fig("requests/image", float64(r.requests)/float64(r.images), ""),
				fig("throttled", float64(r.throttled), "calls"))
		})
	}
	if len(results) == 0 {
		return
	}
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-10s %6s %7s %12s %14s %10s  %s\n", "path", "images", "tested", "points/image", "requests/image", "throttled", "points/image by operation")
	for _, pc := range cases {
		r, ok := results[pc]
		if !ok {
			continue
		}
		ops := slices.SortedFunc(maps.Keys(r.byOperation), func(a, c string) int {
			return int(r.byOperation[c]) - int(r.byOperation[a])
		})
		var parts []string
		for _, op := range ops {
			parts = append(parts, fmt.Sprintf("%s %.1f", op, r.byOperation[op]/float64(r.images)))
		}
		fmt.Fprintf(&t, "%-10s %6d %7d %12.1f %14.1f %10d  %s\n", pc.path, pc.images, r.images,
			r.points/float64(r.images), float64(r.requests)/float64(r.images), r.throttled, strings.Join(parts, ", "))
	}
	b.Logf("GraphQL points per image written back (actualQueryCost as the fake store charges it):%s", t.String())
}

// pointsProduct is a product of n images and 10 variants, 7 of them linked
// to images spread over the gallery (several to the same image when n is
// small), 3 to none.
func pointsProduct(name string, n int) shopifytest.NewProduct {
	np := shopifytest.NewProduct{Title: "Bench " + name}
	for i := range n {
		np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprintf("%s-%d.jpg", name, i), Data: photo("jpeg", sand), Alt: fmt.Sprint("View ", i)})
	}
	for v := range 10 {
		idx := -1
		if v < 7 {
			idx = v * 3 % n
		}
		np.Variants = append(np.Variants, shopifytest.NewVariant{Title: fmt.Sprint("Size ", v), ImageIndex: idx})
	}
	return np
}

func runPointsCase(b *testing.B, pc pointsCase) pointsResult {
	b.StopTimer()
	ho := harnessOptions{noStart: true, restoreRate: 10000}
	switch pc.path {
	case "new-media":
		ho.template = transparentTemplate()
	case "add":
		ho.writeMode = "add"
	}
	db := benchDB(b)
	h := newHarness(b, db.DB, ho)
	products := max(1, 30/pc.images)
	var ids []string
	for i := range products {
		rec, err := h.store.CreateProduct(shopDomain, pointsProduct(fmt.Sprint("p", i), pc.images))
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	before := map[string]shopifytest.ProductSnapshot{}
	for _, id := range ids {
		before[id] = readyProduct(b, h, id)
	}
	h.store.ResetRequests()
	h.start()
	b.StartTimer()
	for _, id := range ids {
		resp, err := h.store.SendWebhook(context.Background(), h.url+"/webhooks", shopDomain, "products/create", h.store.ProductWebhookPayload(shopDomain, id))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	total := products * pc.images
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var done, other int64
		db.DB.Model(&models.ImageJob{}).Where("state = ?", models.JobDone).Count(&done)
		db.DB.Model(&models.ImageJob{}).Where("state NOT IN ?", []string{models.JobDone, models.JobSkipped}).Count(&other)
		if int(done) == total && other == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s/%d: %d of %d written back; jobs %s", pc.path, pc.images, done, total, describe(h.jobs()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	r := pointsResult{images: total, byOperation: map[string]float64{}}
	for _, q := range h.store.Requests() {
		if q.Operation == "" {
			continue // token exchange
		}
		r.requests++
		if q.Throttled {
			r.throttled++
			continue
		}
		r.points += q.ActualCost
		r.byOperation[q.Operation] += q.ActualCost
	}
	for _, id := range ids {
		auditGallery(b, h, pc.path, before[id], h.store.Product(shopDomain, id))
	}
	return r
}

// readyProduct waits until the store has processed a product's media.
func readyProduct(b *testing.B, h *harness, id string) shopifytest.ProductSnapshot {
	b.Helper()
	return waitReadyIn(b, h, shopDomain, id)
}

// auditGallery checks a written-back product: each original's processed
// image where the path puts it, nothing lost or twice, alt texts kept and
// every variant on its image (or its image's processed copy).
func auditGallery(b *testing.B, h *harness, path string, before, after shopifytest.ProductSnapshot) {
	b.Helper()
	result := map[string]string{} // original → processed media
	var want []string
	for _, m := range before.Media {
		res := h.jobFor(m.ID).ResultMediaID
		result[m.ID] = res
		switch path {
		case "in-place":
			if res != m.ID {
				b.Fatalf("%s: %s was not replaced in place (result %q)", before.ID, m.ID, res)
			}
			want = append(want, m.ID)
		case "new-media":
			if res == "" || res == m.ID {
				b.Fatalf("%s: %s has no new media (result %q)", before.ID, m.ID, res)
			}
			want = append(want, res)
		case "add":
			want = append(want, m.ID, res)
		}
	}
	var got []string
	alts := map[string]string{}
	for _, m := range after.Media {
		got = append(got, m.ID)
		alts[m.ID] = m.Alt
	}
	if !slices.Equal(got, want) {
		b.Fatalf("%s (%s): gallery %v, want %v", before.ID, path, got, want)
	}
	for _, m := range before.Media {
		if alts[result[m.ID]] != m.Alt {
			b.Fatalf("%s: processed image of %s has alt %q, want %q", before.ID, m.ID, alts[result[m.ID]], m.Alt)
		}
	}
	for i, v := range after.Variants {
		var wantLinks []string
		for _, id := range before.Variants[i].MediaIDs {
			if path == "new-media" {
				id = result[id]
			}
			wantLinks = append(wantLinks, id)
		}
		if !slices.Equal(v.MediaIDs, wantLinks) {
			b.Fatalf("%s: variant %s links %v, want %v", before.ID, v.Title, v.MediaIDs, wantLinks)
		}
	}
}
