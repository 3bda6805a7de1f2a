package deploy

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// waitDone waits until n jobs exist and all are done.
func waitDone(t *testing.T, c *cluster, n int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		jobs := c.jobs()
		done := 0
		for _, j := range jobs {
			if j.State == models.JobDone {
				done++
			}
			if j.State == models.JobFailed {
				t.Fatalf("job %d failed: %s", j.ID, j.Error)
			}
		}
		if len(jobs) == n && done == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs not done within %v: %s\n%s", within, states(jobs), describeJobs(jobs))
		}
	}
}

func imagesOf(ps []*product) int {
	n := 0
	for _, p := range ps {
		n += len(p.rec.MediaIDs)
	}
	return n
}

// TestRotateKeysWhileAReplicaServes follows the runbook: the replica is
// restarted with the new key first, rotate-keys runs while it processes
// images and refreshes the shop's token on every Admin API call, --check
// passes, and the replica restarted with the new key alone still works.
func TestRotateKeysWhileAReplicaServes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	for _, dialect := range modelstest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			c := newCluster(t, modelstest.NewURL(t, dialect), clusterOptions{
				rtbNew: 100 * time.Millisecond, rtbProduction: 200 * time.Millisecond, rtbQuality: 100 * time.Millisecond,
			})
			oldKey := c.keys
			first := c.start(1)[0]
			c.install()
			ps := createProducts(t, c, 0, 2)
			sendWebhooks(t, c, ps, 0)
			waitDone(t, c, imagesOf(ps), 60*time.Second)

			// Step 1: every replica runs with the new key first, the old after it.
			c.keys = newKey("k2") + "," + oldKey
			c.stop(first)
			c.start(1)
			if out, err := c.run("rotate-keys", "--check"); err == nil || !strings.Contains(out, "sealed under k1: 3") {
				t.Fatalf("--check before rotation: %v\n%s", err, out)
			}

			// Step 2: rotate while the replica works. The shop's access token
			// is made to look nearly expired over and over, so the replica
			// refreshes it (rotating the refresh token, which Shopify then
			// refuses in its old form) throughout the rotation.
			refreshesBefore := c.store.Refreshes(c.shop)
			ctx, stopChurn := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					// An hour-long token with a minute left: inside its refresh margin.
					c.db.Model(&models.Shop{}).Where("domain = ?", c.shop).Updates(map[string]any{
						"access_token_expires_at": time.Now().Add(time.Minute), "access_token_issued_at": time.Now().Add(-59 * time.Minute)})
					time.Sleep(20 * time.Millisecond)
				}
			}()
			more := createProducts(t, c, 2, 6)
			go sendWebhooks(t, c, more, 0)
			var outs []string
			for range 5 {
				out, err := c.run("rotate-keys", "--batch", "1")
				if err != nil {
					t.Fatalf("rotate-keys while serving: %v\n%s", err, out)
				}
				outs = append(outs, out)
				time.Sleep(100 * time.Millisecond)
			}
			waitDone(t, c, imagesOf(ps)+imagesOf(more), 60*time.Second)
			stopChurn()
			wg.Wait()
			// The first run reseals all three secrets, unless a refresh
			// rewrote the tokens (under k2) between its read and its write:
			// then it reads the row again and counts them as already current.
			if !strings.Contains(outs[0], "; 0 still under another key") || !strings.Contains(outs[0], "Remove The Background contact API keys          1 resealed") {
				t.Errorf("first rotate-keys: %s", outs[0])
			}
			for _, out := range outs[1:] {
				if !strings.Contains(out, "resealed 0 secrets; 0 still under another key") {
					t.Errorf("a later rotate-keys found work: %s", out)
				}
			}
			if n := c.store.Refreshes(c.shop) - refreshesBefore; n < 2 {
				t.Errorf("only %d token refreshes during the rotation; the race was not exercised", n)
			}
			t.Logf("rotate-keys while serving: %d token refreshes meanwhile; first run:\n%s", c.store.Refreshes(c.shop)-refreshesBefore, outs[0])
			out, err := c.run("rotate-keys", "--check")
			if err != nil || !strings.Contains(out, "sealed under k2 (the first key): 3") || strings.Contains(out, "k1") {
				t.Fatalf("--check after rotation: %v\n%s", err, out)
			}

			// Step 3: the old key is gone; the replica still opens every
			// secret: it refreshes the token and processes new images.
			c.keys = strings.Split(c.keys, ",")[0]
			for _, nd := range c.live() {
				c.stop(nd)
			}
			c.start(1)
			c.db.Model(&models.Shop{}).Where("domain = ?", c.shop).Update("access_token_expires_at", time.Now().Add(time.Minute))
			last := createProducts(t, c, 8, 2)
			sendWebhooks(t, c, last, 0)
			waitDone(t, c, imagesOf(ps)+imagesOf(more)+imagesOf(last), 60*time.Second)
			var s models.Shop
			c.db.Where("domain = ?", c.shop).Take(&s)
			if models.KeyID(s.AccessToken) != "k2" || models.KeyID(s.RefreshToken) != "k2" {
				t.Errorf("tokens sealed with %s/%s after rotation", models.KeyID(s.AccessToken), models.KeyID(s.RefreshToken))
			}
		})
	}
}

// TestClientSecretRotation follows the runbook's client-secret rotation
// with the real binary: with the new secret and SHOPIFY_API_SECRET_PREVIOUS
// set, webhooks Shopify still signs with the old secret are accepted and
// others refused; once PREVIOUS is unset, the old secret is refused too.
func TestClientSecretRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t, modelstest.NewURL(t, "sqlite"), clusterOptions{})
	old, fresh := c.secret, randHex(16)
	signedWith := func(secret string) *shopifytest.Store {
		s := shopifytest.New(shopifytest.Options{APIKey: c.apiKey, APISecret: secret, WebhookRetries: 1})
		t.Cleanup(s.Close)
		s.AddShop(c.shop)
		return s
	}
	status := func(nd *node, s *shopifytest.Store) int {
		resp, err := s.SendWebhook(context.Background(), nd.url+"/webhooks", c.shop, "customers/data_request",
			map[string]any{"shop_domain": c.shop, "customer": map[string]any{"id": 1}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}

	c.extra = map[string]string{"SHOPIFY_API_SECRET": fresh, "SHOPIFY_API_SECRET_PREVIOUS": old}
	nd := c.start(1)[0]
	for name, tc := range map[string]struct {
		secret string
		want   int
	}{"new secret": {fresh, 200}, "previous secret": {old, 200}, "another secret": {randHex(16), 401}} {
		if got := status(nd, signedWith(tc.secret)); got != tc.want {
			t.Errorf("during rotation, a webhook signed with the %s: %d, want %d", name, got, tc.want)
		}
	}

	c.stop(nd)
	c.extra = map[string]string{"SHOPIFY_API_SECRET": fresh}
	nd = c.start(1)[0]
	if got := status(nd, signedWith(old)); got != 401 {
		t.Errorf("after rotation, a webhook signed with the old secret: %d, want 401", got)
	}
	if got := status(nd, signedWith(fresh)); got != 200 {
		t.Errorf("after rotation, a webhook signed with the new secret: %d, want 200", got)
	}
}
