package admin

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
)

// Monitor collects what Shopify says about the app's calls that nobody asked for: deprecations it
// names in X-Shopify-API-Deprecated-Reason, answers served by another version than the pinned one,
// and IP allowlist refusals. One Monitor is shared by every Client of the process (like Budgets),
// so each operation's deprecation is logged once, not once per call, and the counts feed /metrics.
type Monitor struct {
	log *slog.Logger

	mu         sync.Mutex
	deprecated map[string]int64  // operation → answers naming a deprecation
	reasons    map[string]string // operation → the reason last logged
	fellBack   map[string]string // operation → version that answered instead of the pinned one
	forbidden  atomic.Int64
}

// NewMonitor returns a Monitor logging to log (nil → discard).
func NewMonitor(log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{log: log, deprecated: map[string]int64{}, reasons: map[string]string{}, fellBack: map[string]string{}}
}

// Deprecations returns, per operation, how many answers named a deprecation.
func (m *Monitor) Deprecations() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.deprecated)
}

// IPAllowlistRefusals is how many Admin API calls Shopify refused with HTTP 403.
func (m *Monitor) IPAllowlistRefusals() int64 { return m.forbidden.Load() }

func (m *Monitor) noteDeprecated(ctx context.Context, shop, op, reason string) {
	m.mu.Lock()
	m.deprecated[op]++
	first := m.reasons[op] != reason
	m.reasons[op] = reason
	m.mu.Unlock()
	if first {
		// Shopify removes deprecated fields in a later version: someone must change the document.
		m.log.LogAttrs(ctx, slog.LevelWarn, "shopify: the Admin API reports deprecated use; update the document before the version that removes it",
			slog.String("op", op), slog.String("reason", reason), slog.String("shop", shop))
	}
}

func (m *Monitor) noteServedBy(ctx context.Context, op, pinned, served string) {
	m.mu.Lock()
	first := m.fellBack[op] != served
	m.fellBack[op] = served
	m.mu.Unlock()
	if first {
		m.log.LogAttrs(ctx, slog.LevelWarn, "shopify: the pinned Admin API version is no longer served; answers come from another version",
			slog.String("op", op), slog.String("pinned", pinned), slog.String("served", served))
	}
}

func (m *Monitor) noteForbidden(ctx context.Context, shop, op string) {
	if m.forbidden.Add(1) == 1 || m.forbidden.Load()%100 == 0 {
		m.log.LogAttrs(ctx, slog.LevelError, "shopify: Admin API refused the call with HTTP 403; add this server's egress IP addresses (or its network's ASN) to the app's IP allowlist in the Dev Dashboard",
			slog.String("op", op), slog.String("shop", shop), slog.Int64("refusals", m.forbidden.Load()))
	}
}
