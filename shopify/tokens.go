package shopify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"rtbshopify/config"
	"rtbshopify/models"
	"rtbshopify/shopify/admin"
)

// RefreshMargin is how long before expiry an access token whose lifetime
// is unknown is refreshed: enough that a GraphQL call started with it does
// not outlive it.
const RefreshMargin = 5 * time.Minute

// refreshFraction sets the margin of a token whose lifetime is known: a
// twelfth of it, five minutes of Shopify's usual hour, so a token that
// lives only minutes is not refreshed on every call.
const refreshFraction = 12

// refreshTimeout bounds one refresh call to Shopify.
const refreshTimeout = 30 * time.Second

// refreshLease is how long a replica holds a shop's refresh: longer than
// the call it covers, so a live refresher is never overtaken, and short,
// so one that died lets the next caller refresh soon.
const refreshLease = refreshTimeout + 10*time.Second

// refreshPoll is how often a caller waiting on another's refresh looks
// for its result.
const refreshPoll = 50 * time.Millisecond

var (
	// ErrReauthorize means the shop's tokens are gone or dead (refresh
	// token expired or refused): the app cannot call Shopify for it until a
	// merchant opens the app again, which re-exchanges a session token.
	ErrReauthorize = errors.New("shopify: the shop must open the app again to re-authorize it")
	// ErrNotInstalled means the shop is unknown or has uninstalled the app.
	ErrNotInstalled = errors.New("shopify: the app is not installed on this shop")
)

// Tokens hands out each shop's offline access token and refreshes it
// before it expires. Shopify rotates the refresh token on every refresh
// and kills the old one, so a refresh must happen once per shop at a time
// across every replica: the caller that takes the shop's refresh lease (a
// conditional UPDATE of two columns) calls Shopify outside any transaction
// and writes the new tokens in one statement; the others wait for that
// write. No transaction spans the call.
type Tokens struct {
	cfg    config.Config
	db     *gorm.DB
	sealer *models.Sealer
	hc     *http.Client
	now    func() time.Time
	log    *slog.Logger
	flight singleflight.Group // collapses this process's concurrent refreshes of one shop
}

// NewTokens builds a Tokens; nil hc, now or log pick defaults.
func NewTokens(cfg config.Config, db *gorm.DB, sealer *models.Sealer, hc *http.Client, now func() time.Time, log *slog.Logger) *Tokens {
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tokens{cfg: cfg, db: db, sealer: sealer, hc: hc, now: now, log: log}
}

// AccessToken returns a usable access token for the shop, refreshing it
// first when it expires within its margin (a fraction of its lifetime). Errors wrap ErrNotInstalled
// or ErrReauthorize when no token can be had without the merchant.
//
// Do not call it while holding a transaction: a refresh opens its own
// (and on SQLite the pool has one connection).
func (t *Tokens) AccessToken(ctx context.Context, shopDomain string) (string, error) {
	var s models.Shop
	err := t.db.WithContext(ctx).Where("domain = ?", shopDomain).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("access token for %s: %w", shopDomain, ErrNotInstalled)
	}
	if err != nil {
		return "", fmt.Errorf("access token for %s: load shop: %w", shopDomain, err)
	}
	if s.State != models.ShopInstalled {
		return "", fmt.Errorf("access token for %s: %w", shopDomain, ErrNotInstalled)
	}
	if s.AccessToken == "" {
		return "", fmt.Errorf("access token for %s: %w", shopDomain, ErrReauthorize)
	}
	if t.fresh(&s, 0) {
		return t.open(&s, s.AccessToken)
	}
	tok, _, err := t.refresh(ctx, shopDomain, 0)
	return tok, err
}

// Source adapts AccessToken for the Admin GraphQL client of one shop.
func (t *Tokens) Source(shopDomain string) admin.TokenSource {
	return tokenSource{t: t, shop: shopDomain}
}

type tokenSource struct {
	t    *Tokens
	shop string
}

func (s tokenSource) AccessToken(ctx context.Context) (string, error) {
	return s.t.AccessToken(ctx, s.shop)
}

// RefreshExpiring refreshes every installed shop's access token that
// expires within the given window, for the cron. Shops whose refresh token
// is dead are marked for re-authorization and logged, not returned as
// errors; other failures are joined.
func (t *Tokens) RefreshExpiring(ctx context.Context, within time.Duration) (int, error) {
	var domains []string
	err := t.db.WithContext(ctx).Model(&models.Shop{}).
		Where("state = ? AND access_token <> '' AND access_token_expires_at IS NOT NULL AND access_token_expires_at < ?",
			models.ShopInstalled, t.now().UTC().Add(within)).
		Order("access_token_expires_at").Pluck("domain", &domains).Error
	if err != nil {
		return 0, fmt.Errorf("list shops with expiring tokens: %w", err)
	}
	refreshed := 0
	var errs []error
	for _, d := range domains {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		_, did, err := t.refresh(ctx, d, within)
		switch {
		case errors.Is(err, ErrReauthorize), errors.Is(err, ErrNotInstalled):
			t.log.InfoContext(ctx, "shop needs re-authorization", "shop", d)
		case err != nil:
			errs = append(errs, err)
		case did:
			refreshed++
		}
	}
	return refreshed, errors.Join(errs...)
}

// fresh reports whether the stored access token outlives now plus the
// larger of within and its own margin. A token without expiry (a legacy
// non-expiring offline token) is fresh.
func (t *Tokens) fresh(s *models.Shop, within time.Duration) bool {
	return s.AccessTokenExpiresAt == nil || s.AccessTokenExpiresAt.After(t.now().Add(max(within, refreshMarginOf(s))))
}

// refreshMarginOf is how long before its expiry a shop's access token is
// refreshed: a fraction of its lifetime when it is known.
func refreshMarginOf(s *models.Shop) time.Duration {
	if s.AccessTokenExpiresAt == nil || s.AccessTokenIssuedAt == nil || !s.AccessTokenExpiresAt.After(*s.AccessTokenIssuedAt) {
		return RefreshMargin
	}
	return s.AccessTokenExpiresAt.Sub(*s.AccessTokenIssuedAt) / refreshFraction
}

func (t *Tokens) open(s *models.Shop, sealed string) (string, error) {
	v, err := t.sealer.Open(sealed, s.Domain)
	if err != nil {
		return "", fmt.Errorf("open stored token of %s: %w", s.Domain, err)
	}
	return v, nil
}

type refreshResult struct {
	token     string
	refreshed bool
}

// refresh returns a token valid beyond within (and its own margin),
// refreshing it when no other goroutine or replica has already done so.
// The bool says whether this call refreshed.
func (t *Tokens) refresh(ctx context.Context, shop string, within time.Duration) (string, bool, error) {
	v, err, _ := t.flight.Do(shop, func() (any, error) {
		// A caller that goes away must not abort a refresh half-way: Shopify
		// may already have rotated the refresh token we are about to save.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshLease)
		defer cancel()
		return t.refreshLeased(rctx, shop, within)
	})
	if err != nil {
		return "", false, err
	}
	r := v.(refreshResult)
	return r.token, r.refreshed, nil
}

func (t *Tokens) loadShop(ctx context.Context, domain string) (*models.Shop, error) {
	var s models.Shop
	err := t.db.WithContext(ctx).Where("domain = ?", domain).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotInstalled
	}
	if err != nil {
		return nil, fmt.Errorf("load shop: %w", err)
	}
	if s.State != models.ShopInstalled {
		return nil, ErrNotInstalled
	}
	if s.AccessToken == "" {
		return nil, ErrReauthorize
	}
	return &s, nil
}

// leaseRefresh takes the shop's refresh lease unless another live one
// holds it.
func (t *Tokens) leaseRefresh(ctx context.Context, s *models.Shop, owner string) (bool, error) {
	now := t.now().UnixMilli()
	res := t.db.WithContext(ctx).Model(&models.Shop{}).
		Where("id = ? AND (refresh_until IS NULL OR refresh_until < ?)", s.ID, now).
		Updates(map[string]any{"refresh_owner": owner, "refresh_until": now + refreshLease.Milliseconds()})
	if res.Error != nil {
		return false, fmt.Errorf("take refresh lease: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// endRefresh writes fields (empty: none) and ends the lease, if this
// caller still holds it.
func (t *Tokens) endRefresh(ctx context.Context, s *models.Shop, owner string, fields map[string]any) error {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["refresh_owner"], fields["refresh_until"] = nil, nil
	err := t.db.WithContext(ctx).Model(&models.Shop{}).Where("id = ? AND refresh_owner = ?", s.ID, owner).Updates(fields).Error
	if err != nil {
		return fmt.Errorf("end refresh lease: %w", err)
	}
	return nil
}

func (t *Tokens) refreshLeased(ctx context.Context, shop string, within time.Duration) (refreshResult, error) {
	owner := randomOwner()
	waitUntil := time.Now().Add(refreshTimeout)
	var s *models.Shop
	for {
		var err error
		if s, err = t.loadShop(ctx, shop); err != nil {
			return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, err)
		}
		if t.fresh(s, within) { // refreshed by another caller meanwhile
			tok, err := t.open(s, s.AccessToken)
			return refreshResult{token: tok}, err
		}
		got, err := t.leaseRefresh(ctx, s, owner)
		if err != nil {
			return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, err)
		}
		if got {
			break
		}
		// Another replica is refreshing: wait for its write.
		if time.Now().After(waitUntil) {
			return t.fallback(ctx, s, fmt.Errorf("refresh token of %s: another replica's refresh did not finish", shop))
		}
		select {
		case <-ctx.Done():
			return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, ctx.Err())
		case <-time.After(refreshPoll):
		}
	}
	// The lease is ours: read the row again, since the previous holder may
	// have written new tokens just before we took it.
	s, err := t.loadShop(ctx, shop)
	if err != nil {
		return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, err)
	}
	if t.fresh(s, within) {
		tok, err := t.open(s, s.AccessToken)
		return refreshResult{token: tok}, errors.Join(err, t.endRefresh(ctx, s, owner, nil))
	}
	refresh, err := t.sealer.Open(s.RefreshToken, s.Domain)
	if err != nil || refresh == "" || (s.RefreshTokenExpiresAt != nil && !s.RefreshTokenExpiresAt.After(t.now())) {
		if err := t.endRefresh(ctx, s, owner, clearedTokens(t.now())); err != nil {
			return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, err)
		}
		return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, ErrReauthorize)
	}
	cctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	tr, err := t.post(cctx, shop, map[string]string{
		"client_id":     t.cfg.ShopifyAPIKey,
		"client_secret": t.cfg.ShopifyAPISecret,
		"grant_type":    "refresh_token",
		"refresh_token": refresh,
	})
	cancel()
	var oe *OAuthError
	if errors.As(err, &oe) && (oe.Status == http.StatusBadRequest || oe.Status == http.StatusUnauthorized) {
		t.log.WarnContext(ctx, "shopify refused the refresh token", "shop", shop, "status", oe.Status, "code", oe.Code)
		if err := t.endRefresh(ctx, s, owner, clearedTokens(t.now())); err != nil {
			return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, err)
		}
		return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, ErrReauthorize)
	}
	if err != nil {
		return t.fallback(ctx, s, errors.Join(fmt.Errorf("refresh token of %s: %w", shop, err), t.endRefresh(ctx, s, owner, nil)))
	}
	fields, err := t.tokenFields(s.Domain, tr, t.now().UTC())
	if err != nil {
		return refreshResult{}, errors.Join(err, t.endRefresh(ctx, s, owner, nil))
	}
	fields["refresh_owner"], fields["refresh_until"] = nil, nil
	// Written while the lease is ours (rotate-keys may have re-sealed the
	// row meanwhile; that changes no token). If it lapsed, only over the
	// refresh token this refresh used: when another replica rotated the
	// tokens meanwhile, theirs stay.
	res := t.db.WithContext(ctx).Model(&models.Shop{}).Where("id = ? AND refresh_owner = ?", s.ID, owner).Updates(fields)
	if res.Error == nil && res.RowsAffected == 0 {
		res = t.db.WithContext(ctx).Model(&models.Shop{}).Where("id = ? AND refresh_token = ?", s.ID, s.RefreshToken).Updates(fields)
	}
	if res.Error != nil {
		return refreshResult{}, fmt.Errorf("save tokens of %s: %w", shop, res.Error)
	}
	if res.RowsAffected == 0 {
		t.log.WarnContext(ctx, "tokens were rotated by another replica during this refresh; keeping theirs", "shop", shop)
		if s, err = t.loadShop(ctx, shop); err != nil {
			return refreshResult{}, fmt.Errorf("refresh token of %s: %w", shop, err)
		}
		tok, err := t.open(s, s.AccessToken)
		return refreshResult{token: tok}, err
	}
	t.log.InfoContext(ctx, "refreshed shopify access token", "shop", shop)
	return refreshResult{token: tr.AccessToken, refreshed: true}, nil
}

// fallback keeps using the current token while it is valid when a
// refresh could not be done.
func (t *Tokens) fallback(ctx context.Context, s *models.Shop, err error) (refreshResult, error) {
	if s.AccessTokenExpiresAt != nil && s.AccessTokenExpiresAt.After(t.now()) {
		if tok, oerr := t.open(s, s.AccessToken); oerr == nil {
			t.log.WarnContext(ctx, "token refresh failed; using the current token until it expires", "shop", s.Domain, "err", err)
			return refreshResult{token: tok}, nil
		}
	}
	return refreshResult{}, err
}

func randomOwner() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// clearedTokens forgets a shop's tokens so the next session request
// re-exchanges; the shop stays installed.
func clearedTokens(now time.Time) map[string]any {
	return map[string]any{
		"access_token": "", "access_token_expires_at": nil, "access_token_issued_at": nil,
		"refresh_token": "", "refresh_token_expires_at": nil,
		"updated_at": now.UTC(),
	}
}

// saveTokens seals and stores a token answer on the shop row: the access
// token, the rotated refresh token and both expiries in one statement.
// install also marks the shop installed.
func (t *Tokens) saveTokens(tx *gorm.DB, s *models.Shop, tr *tokenResponse, install bool) error {
	now := t.now().UTC()
	fields, err := t.tokenFields(s.Domain, tr, now)
	if err != nil {
		return err
	}
	if install {
		fields["state"] = models.ShopInstalled
		fields["uninstalled_at"] = nil
		if s.State != models.ShopInstalled || s.InstalledAt == nil {
			fields["installed_at"] = now
		}
	}
	if err := tx.Model(&models.Shop{}).Where("id = ?", s.ID).Updates(fields).Error; err != nil {
		return fmt.Errorf("save tokens of %s: %w", s.Domain, err)
	}
	return nil
}

func (t *Tokens) tokenFields(shop string, tr *tokenResponse, now time.Time) (map[string]any, error) {
	access, err := t.sealer.Seal(tr.AccessToken, shop)
	if err != nil {
		return nil, fmt.Errorf("seal access token: %w", err)
	}
	refresh, err := t.sealer.Seal(tr.RefreshToken, shop)
	if err != nil {
		return nil, fmt.Errorf("seal refresh token: %w", err)
	}
	f := map[string]any{
		"access_token": access, "access_token_expires_at": expiry(now, tr.ExpiresIn), "access_token_issued_at": now.Truncate(time.Microsecond),
		"refresh_token": refresh, "refresh_token_expires_at": expiry(now, tr.RefreshTokenExpiresIn),
		"updated_at": now,
	}
	if tr.Scope != "" {
		f["scopes"] = tr.Scope
	}
	return f, nil
}

func expiry(now time.Time, seconds int64) *time.Time {
	if seconds <= 0 {
		return nil
	}
	e := now.Add(time.Duration(seconds) * time.Second).Truncate(time.Microsecond)
	return &e
}

// install stores a token answer for a shop (token exchange or the OAuth
// code grant): creates the row or brings an existing one back to installed.
func (t *Tokens) install(ctx context.Context, shop string, tr *tokenResponse) (*models.Shop, error) {
	var out *models.Shop
	// Two tries: a concurrent first install on another replica can win the
	// insert, and then this one updates the row it created.
	for try := 0; ; try++ {
		err := t.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			s, err := models.LockShop(tx, "domain = ?", shop)
			if errors.Is(err, gorm.ErrRecordNotFound) {
				now := t.now().UTC()
				fields, err := t.tokenFields(shop, tr, now)
				if err != nil {
					return err
				}
				s = &models.Shop{
					Domain: shop, State: models.ShopInstalled, InstalledAt: &now,
					AccessToken: fields["access_token"].(string), AccessTokenExpiresAt: fields["access_token_expires_at"].(*time.Time),
					AccessTokenIssuedAt: &now,
					RefreshToken:        fields["refresh_token"].(string), RefreshTokenExpiresAt: fields["refresh_token_expires_at"].(*time.Time),
					Scopes: tr.Scope, CreatedAt: now, UpdatedAt: now,
				}
				if err := tx.Create(s).Error; err != nil {
					return fmt.Errorf("create shop: %w", err)
				}
				out = s
				return nil
			}
			if err != nil {
				return fmt.Errorf("lock shop: %w", err)
			}
			if err := t.saveTokens(tx, s, tr, true); err != nil {
				return err
			}
			out = &models.Shop{}
			return tx.Where("id = ?", s.ID).Take(out).Error
		})
		if err != nil && models.IsDuplicate(err) && try == 0 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("install %s: %w", shop, err)
		}
		return out, nil
	}
}
