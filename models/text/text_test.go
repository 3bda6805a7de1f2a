package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"short", 5, "short"},
		{"shorter", 5, "shor…"},
		{"防水ジャケット", 7, "防水ジャケット"},
		{"防水ジャケット", 4, "防水ジ…"},
		{"👕🧢👕", 2, "👕…"},
		{"قميص قطني", 5, "قميص…"},
		{"e\u0301e\u0301", 4, "e\u0301e\u0301"},
		{"ab\xffcd", 10, "ab\uFFFDcd"},
		{"abc", 0, ""},
		{"abc", 1, "…"},
	}
	for _, c := range cases {
		got := Truncate(c.in, c.n)
		if got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(c.n, 0) {
			t.Errorf("Truncate(%q, %d) = %q: not valid or over %d characters", c.in, c.n, got, c.n)
		}
	}
	long := strings.Repeat("界", 1000)
	if got := Truncate(long, 500); utf8.RuneCountInString(got) != 500 || !strings.HasSuffix(got, Ellipsis) {
		t.Errorf("1000 CJK characters cut to 500: got %d characters", utf8.RuneCountInString(got))
	}
}
