// Package text holds the one rule for shortening strings the app stores,
// logs or puts in errors. Shopify's strings are UTF-8 in any script, and
// MySQL's utf8mb4 VARCHAR(n) limits characters while it refuses invalid
// UTF-8 (Error 1366), so strings are cut on character boundaries, never
// inside one. It imports only the standard library, so every package may
// use it.
package text

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis marks a string that was cut.
const Ellipsis = "…"

// Truncate returns s if it has at most n characters (runes); otherwise its
// first n-1 characters followed by Ellipsis, n characters in all. Invalid
// UTF-8 in s is replaced with U+FFFD, so the result is always storable.
func Truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s // at most n bytes is at most n characters
	}
	count := 0
	for i := range s {
		if count == n-1 {
			if utf8.RuneCountInString(s[i:]) <= 1 {
				return s
			}
			return s[:i] + Ellipsis
		}
		count++
	}
	return s
}
