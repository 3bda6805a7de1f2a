package sync

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/admin"
)

// applyMoves applies moves as Shopify does: each in turn takes the media
// out and puts it at its 0-based position in the gallery as it is then.
func applyMoves(gallery []string, moves []admin.Move) []string {
	out := slices.Clone(gallery)
	for _, m := range moves {
		out = slices.DeleteFunc(out, func(id string) bool { return id == m.ID })
		out = slices.Insert(out, min(m.NewPosition, len(out)), m.ID)
	}
	return out
}

func TestTogetherMovesPutEachProcessedImageNextToItsOriginal(t *testing.T) {
	cases := []struct {
		name    string
		gallery string // after the attach: processed images (lower case) last
		next    map[string]string
		after   bool
		want    string
		moves   int
	}{
		{"add, every image", "A B C a b c", map[string]string{"A": "a", "B": "b", "C": "c"}, true, "A a B b C c", 2},
		{"add, the last image only", "A B C c", map[string]string{"C": "c"}, true, "A B C c", 0},
		{"add, some images", "A B C D b d", map[string]string{"B": "b", "D": "d"}, true, "A B b C D d", 1},
		{"replace, every image", "A B C a b c", map[string]string{"A": "a", "B": "b", "C": "c"}, false, "a A b B c C", 3},
		{"replace, the first and last", "A B C a c", map[string]string{"A": "a", "C": "c"}, false, "a A B c C", 2},
		{"replace, the last image only", "A B C c", map[string]string{"C": "c"}, false, "A B C c", 0},
		{"replace, attached in another order", "A B C c a", map[string]string{"A": "a", "C": "c"}, false, "a A B C c", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &admin.Product{}
			for _, id := range strings.Fields(tc.gallery) {
				p.Media = append(p.Media, admin.Media{ID: id})
			}
			moves := togetherMoves(p, tc.next, tc.after)
			got := applyMoves(strings.Fields(tc.gallery), moves)
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("moves %v give %v, want %s", moves, got, tc.want)
			}
			if len(moves) != tc.moves {
				t.Errorf("%d moves %v, want %d", len(moves), moves, tc.moves)
			}
			for _, m := range moves {
				if strings.ToUpper(m.ID) == m.ID {
					t.Errorf("an original moved: %v (the merchant's media keep their order)", moves)
				}
			}
		})
	}
}

// A write-back takes along only its product's other images that wait for
// their first write-back and no worker holds; they take no more of the
// shop's concurrency than its worker, and its lease's renewal renews
// theirs too.
func TestTakeAlongLeasesTheProductsFreshImagesAndRenewsThem(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		clock := &testClock{t: time.Now()}
		p.o.Now = clock.Now
		shop := addShop(t, p, "a.myshopify.com", readySettings())
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/1", image("gid://shopify/MediaImage/1", 1), image("gid://shopify/MediaImage/2", 2),
			image("gid://shopify/MediaImage/3", 3), image("gid://shopify/MediaImage/4", 4)))
		enqueue(t, p, shop, webhookOf("gid://shopify/Product/2", image("gid://shopify/MediaImage/5", 1)))
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		// Every image is back; image 3 already went through a write-back
		// attempt, image 4 is held by another worker.
		must(db.Model(&models.ImageJob{}).Where("1 = 1").Updates(map[string]any{"state": models.JobWritingBack, "final_image_url": "https://rtb.example/x.png", "run_at": ms(clock.Now())}).Error)
		must(db.Model(&models.ImageJob{}).Where("media_id = ?", "gid://shopify/MediaImage/3").Update("attempts", 1).Error)
		must(db.Model(&models.ImageJob{}).Where("media_id = ?", "gid://shopify/MediaImage/4").Updates(map[string]any{"lease_owner": "other", "lease_until": ms(clock.Now().Add(time.Minute))}).Error)
		var lead models.ImageJob
		must(db.Where("media_id = ?", "gid://shopify/MediaImage/1").First(&lead).Error)
		must(db.Model(&lead).Updates(map[string]any{"lease_owner": "lead", "lease_until": ms(clock.Now().Add(p.o.Lease))}).Error)
		l := &lease{p: p, job: &lead, token: "lead"}

		along, err := p.takeAlong(context.Background(), l)
		must(err)
		if len(along) != 1 || along[0].job.MediaID != "gid://shopify/MediaImage/2" || along[0].token != "lead" || !along[0].taken {
			t.Fatalf("taken along: %+v, want only image 2 under the lead's token", along)
		}
		// In the shop's concurrency, the lead and what it took along are one
		// worker; the other worker is the second.
		counts := map[uint64]int{shop.ID: 0}
		must(p.leasesPerShop(db, clock.Now(), counts))
		if counts[shop.ID] != 2 {
			t.Fatalf("the shop holds %d places, want 2", counts[shop.ID])
		}
		if again, err := p.takeAlong(context.Background(), along[0]); err != nil || again != nil {
			t.Fatalf("a job taken along took %v along (err %v)", again, err)
		}
		clock.Advance(p.o.Lease / 2)
		must(p.renew(context.Background(), l))
		var got models.ImageJob
		must(db.Where("media_id = ?", "gid://shopify/MediaImage/2").First(&got).Error)
		if want := ms(clock.Now().Add(p.o.Lease)); got.LeaseUntil == nil || *got.LeaseUntil != want || *got.LeaseOwner != "lead" {
			t.Fatalf("the job taken along: lease %v until %v, want the lead's until %d", got.LeaseOwner, got.LeaseUntil, want)
		}
	})
}
