package shopify

import (
	"context"
	"errors"
	gosync "sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
)

func TestAccessTokenFreshIsNotRefreshed(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		e.clock.Advance(50 * time.Minute) // 10 min left: outside the 5 min margin
		tok, err := e.app.Tokens().AccessToken(context.Background(), testShop)
		if err != nil || tok != e.open(s, s.AccessToken) {
			t.Fatalf("AccessToken = %v", err)
		}
		via, err := e.app.Tokens().Source(testShop).AccessToken(context.Background())
		if err != nil || via != tok {
			t.Fatalf("Source().AccessToken = %v", err)
		}
		if _, r := e.stub.counts(testShop); r != 0 {
			t.Fatalf("refreshes = %d", r)
		}
	})
}

func TestAccessTokenRefreshRotates(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		oldAccess, oldRefresh := e.open(s, s.AccessToken), e.open(s, s.RefreshToken)
		e.clock.Advance(56 * time.Minute) // 4 min left
		tok, err := e.app.Tokens().AccessToken(context.Background(), testShop)
		if err != nil {
			t.Fatal(err)
		}
		after := e.shop(testShop)
		if tok == oldAccess || tok != e.open(after, after.AccessToken) {
			t.Fatal("the refreshed access token was not returned and stored")
		}
		newRefresh := e.open(after, after.RefreshToken)
		if newRefresh == oldRefresh || !e.stub.live(newRefresh) || e.stub.live(oldRefresh) {
			t.Fatal("the rotated refresh token was not stored, or the old one still lives")
		}
		if !after.AccessTokenExpiresAt.Equal(e.clock.Now().Add(time.Hour)) ||
			!after.RefreshTokenExpiresAt.Equal(e.clock.Now().Add(90*24*time.Hour)) {
			t.Fatalf("expiries = %v, %v", after.AccessTokenExpiresAt, after.RefreshTokenExpiresAt)
		}
		if _, r := e.stub.counts(testShop); r != 1 {
			t.Fatalf("refreshes = %d", r)
		}
		// The new token is fresh: no second refresh.
		if tok2, err := e.app.Tokens().AccessToken(context.Background(), testShop); err != nil || tok2 != tok {
			t.Fatalf("second AccessToken: %v", err)
		}
		if _, r := e.stub.counts(testShop); r != 1 {
			t.Fatalf("refreshes = %d after a second call", r)
		}
	})
}

// Two replicas (two pools on one database) ask for the token of one
// expiring shop at once: exactly one refresh reaches Shopify, and both get
// the token it produced.
func TestAccessTokenConcurrentReplicasRefreshOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, url string) {
		e := newEnv(t, db)
		e.install(testShop)
		replicas := []*App{e.app, e.newApp(openAgain(t, url))}
		e.clock.Advance(58 * time.Minute)

		const perReplica = 3
		toks := make([]string, 2*perReplica)
		errs := make([]error, 2*perReplica)
		start := make(chan struct{})
		var wg gosync.WaitGroup
		for i := range toks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				toks[i], errs[i] = replicas[i%2].Tokens().AccessToken(context.Background(), testShop)
			}()
		}
		close(start)
		wg.Wait()
		for i := range toks {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if toks[i] != toks[0] {
				t.Fatalf("caller %d got a different token", i)
			}
		}
		if _, r := e.stub.counts(testShop); r != 1 {
			t.Fatalf("refreshes reaching Shopify = %d, want 1", r)
		}
		s := e.shop(testShop)
		if e.open(s, s.AccessToken) != toks[0] || !e.stub.live(e.open(s, s.RefreshToken)) {
			t.Fatal("the stored tokens are not the refreshed ones")
		}
	})
}

func TestAccessTokenRefreshRefusedNeedsReauth(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		e.stub.set(func(st *tokenStub) { delete(st.refreshes, e.open(s, s.RefreshToken)) }) // revoked at Shopify
		e.clock.Advance(58 * time.Minute)
		_, err := e.app.Tokens().AccessToken(context.Background(), testShop)
		if !errors.Is(err, ErrReauthorize) {
			t.Fatalf("err = %v, want ErrReauthorize", err)
		}
		after := e.shop(testShop)
		if after.AccessToken != "" || after.RefreshToken != "" || after.AccessTokenExpiresAt != nil || after.State != models.ShopInstalled {
			t.Fatalf("shop after a dead refresh token = %+v", after)
		}
		if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); !errors.Is(err, ErrReauthorize) {
			t.Fatalf("second call: %v", err)
		}
		// The merchant opens the app: the session request re-exchanges.
		if resp, body := e.api(e.sessionToken(testShop, nil)); resp.StatusCode != 200 {
			t.Fatalf("re-exchange: %d %s", resp.StatusCode, body)
		}
		if x, _ := e.stub.counts(testShop); x != 2 {
			t.Fatalf("exchanges = %d", x)
		}
		if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAccessTokenRefreshTokenExpired(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install(testShop)
		e.clock.Advance(91 * 24 * time.Hour)
		if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); !errors.Is(err, ErrReauthorize) {
			t.Fatalf("err = %v", err)
		}
		if _, r := e.stub.counts(testShop); r != 0 {
			t.Fatal("an expired refresh token was sent to Shopify")
		}
	})
}

func TestAccessTokenShopifyDownUsesCurrentToken(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		e.clock.Advance(58 * time.Minute)
		e.stub.set(func(st *tokenStub) { st.fail = 1 })
		tok, err := e.app.Tokens().AccessToken(context.Background(), testShop)
		if err != nil || tok != e.open(s, s.AccessToken) {
			t.Fatalf("with 2 min left and Shopify down: %v", err)
		}
		if after := e.shop(testShop); after.RefreshToken != s.RefreshToken {
			t.Fatal("tokens changed after a failed refresh")
		}
		// Expired and Shopify still down: an error, but not a reauthorization.
		e.clock.Advance(3 * time.Minute)
		e.stub.set(func(st *tokenStub) { st.fail = 1 })
		_, err = e.app.Tokens().AccessToken(context.Background(), testShop)
		var oe *OAuthError
		if err == nil || errors.Is(err, ErrReauthorize) || !errors.As(err, &oe) || oe.Status != 503 {
			t.Fatalf("err = %v", err)
		}
		// Back up: the refresh succeeds.
		if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAccessTokenNotInstalled(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		if _, err := e.app.Tokens().AccessToken(context.Background(), "nobody.myshopify.com"); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("unknown shop: %v", err)
		}
		s := e.install(testShop)
		db.Model(&models.Shop{}).Where("id = ?", s.ID).Update("state", models.ShopUninstalled)
		if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("uninstalled shop: %v", err)
		}
	})
}

func TestRefreshExpiring(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.install("early.myshopify.com")
		e.clock.Advance(30 * time.Minute)
		e.install("late.myshopify.com")
		e.install("gone.myshopify.com")
		db.Model(&models.Shop{}).Where("domain = ?", "gone.myshopify.com").Update("state", models.ShopUninstalled)
		e.clock.Advance(25 * time.Minute) // early: 5 min left; late: 35 min left
		n, err := e.app.Tokens().RefreshExpiring(context.Background(), 10*time.Minute)
		if err != nil || n != 1 {
			t.Fatalf("RefreshExpiring = %d, %v", n, err)
		}
		if _, r := e.stub.counts("early.myshopify.com"); r != 1 {
			t.Fatal("the expiring shop was not refreshed")
		}
		if _, r := e.stub.counts("late.myshopify.com"); r != 0 {
			t.Fatal("a shop with time left was refreshed")
		}
		if _, r := e.stub.counts("gone.myshopify.com"); r != 0 {
			t.Fatal("an uninstalled shop was refreshed")
		}
		// Nothing left to do.
		if n, err := e.app.Tokens().RefreshExpiring(context.Background(), 10*time.Minute); err != nil || n != 0 {
			t.Fatalf("second run = %d, %v", n, err)
		}
	})
}

// A token that lives two minutes is refreshed near its end, not on every
// call: the margin is a fraction of its lifetime.
func TestShortLivedTokenIsRefreshedNearItsEndOnly(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		e.stub.set(func(st *tokenStub) { st.expiresIn = 120 })
		e.install(testShop)
		for range 3 {
			if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(30 * time.Second)
		}
		if _, r := e.stub.counts(testShop); r != 0 {
			t.Fatalf("a 2-minute token was refreshed %d times within its first 90 s", r)
		}
		e.clock.Advance(21 * time.Second) // 9 s left, under a twelfth of its life
		if _, err := e.app.Tokens().AccessToken(context.Background(), testShop); err != nil {
			t.Fatal(err)
		}
		if _, r := e.stub.counts(testShop); r != 1 {
			t.Fatalf("refreshes near the end = %d, want 1", r)
		}
	})
}

// While Shopify takes its time answering a refresh, the database is not
// held: the shop's row can be written (MySQL) and the single SQLite
// connection is free.
func TestRefreshHoldsNoTransactionAcrossTheCall(t *testing.T) {
	eachDB(t, func(t *testing.T, db *gorm.DB, _ string) {
		e := newEnv(t, db)
		s := e.install(testShop)
		hold, held := make(chan struct{}), make(chan struct{})
		e.stub.set(func(st *tokenStub) { st.hold, st.held = hold, held })
		e.clock.Advance(58 * time.Minute)
		done := make(chan error, 1)
		go func() {
			_, err := e.app.Tokens().AccessToken(context.Background(), testShop)
			done <- err
		}()
		select {
		case <-held:
		case <-time.After(5 * time.Second):
			t.Fatal("the refresh never reached Shopify")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := db.WithContext(ctx).Model(&models.Shop{}).Where("id = ?", s.ID).Update("scopes", "read_products,write_products,write_files").Error; err != nil {
			t.Fatalf("writing the shop's row during the refresh call: %v", err)
		}
		close(hold)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if after := e.shop(testShop); after.RefreshOwner != nil || after.RefreshUntil != nil || after.RefreshToken == s.RefreshToken {
			t.Fatalf("after the refresh: lease %v/%v, refresh token rotated %v", after.RefreshOwner, after.RefreshUntil, after.RefreshToken != s.RefreshToken)
		}
	})
}
