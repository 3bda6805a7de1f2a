package config

import (
	"fmt"
	"testing"
)

func TestVariablesListsWhatLoadReads(t *testing.T) {
	vars := Variables()
	has := map[string]bool{}
	for _, v := range vars {
		if has[v] {
			t.Errorf("%s listed twice", v)
		}
		has[v] = true
	}
	for _, want := range []string{"LISTEN_ADDR", "APP_URL", "DATABASE_URL", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET",
		"SHOPIFY_API_SECRET_PREVIOUS", "ENCRYPTION_KEYS", "WORKERS", "LOG_LEVEL", "LOG_FORMAT"} {
		if !has[want] {
			t.Errorf("Variables() lacks %s: %v", want, vars)
		}
	}
	// Every listed name really changes what Load returns (its value or its
	// error): a name Load asked for but ignored would not.
	outcome := func(getenv func(string) string) string {
		c, err := Load(getenv)
		return fmt.Sprintf("%#v %v", c, err)
	}
	base := outcome(func(string) string { return "" })
	for _, v := range vars {
		got := outcome(func(name string) string {
			if name == v {
				return "x-unusual-value"
			}
			return ""
		})
		if got == base {
			t.Errorf("setting %s changes nothing Load returns", v)
		}
	}
}
