package shopifytest

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
)

// Shopify does not document the body of an IP allowlist refusal, only its status; clients must
// key on the 403 alone. This text only helps someone reading a recorded answer.
const ipNotAllowedMessage = "[API] This request's source IP address is not in the app's IP allowlist."

// SetIPAllowlist turns enforcement of the app's IP allowlist on (the ranges allowed) or, with no
// ranges, off. With enforcement on, Shopify rejects every Admin API request that uses the app's
// tokens from outside the ranges, and those whose source it cannot confirm, with HTTP 403 (Dev
// Dashboard, "Restrict API access with an IP allowlist"); the token endpoint is not covered.
// The fake sees loopback for local clients: an allowlist without 127.0.0.0/8 refuses them.
func (s *Store) SetIPAllowlist(allowed ...netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowed = slices.Clone(allowed)
}

func (s *Store) ipAllowed(r *http.Request) bool {
	s.mu.Lock()
	allowed := s.allowed
	s.mu.Unlock()
	if len(allowed) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false // a source that cannot be confirmed is refused too
	}
	addr = addr.Unmap()
	for _, p := range allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
