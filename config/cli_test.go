package config

import (
	"strings"
	"testing"
)

func TestShopifyCLINamesFillInUnsetVariables(t *testing.T) {
	tests := []struct {
		name                    string
		env                     map[string]string
		wantURL, wantAddr, want string // want: scopes joined by ","
		wantErr                 string
	}{
		{"defaults", nil, "", ":8080", DefaultScopes, ""},
		{"only the CLI's names", map[string]string{
			"SHOPIFY_APP_URL": "https://abc-tunnel.trycloudflare.com/", "PORT": "53412", "SCOPES": "read_products,write_products",
		}, "https://abc-tunnel.trycloudflare.com", ":53412", "read_products,write_products", ""},
		{"the app's own names win", map[string]string{
			"APP_URL": "https://app.example.com", "SHOPIFY_APP_URL": "https://tunnel.example.com",
			"LISTEN_ADDR": "127.0.0.1:9000", "PORT": "53412",
			"SHOPIFY_SCOPES": "read_products", "SCOPES": "write_files",
		}, "https://app.example.com", "127.0.0.1:9000", "read_products", ""},
		{"a bad PORT is named", map[string]string{"PORT": "http"}, "", ":8080", DefaultScopes, "PORT"},
		{"a bad PORT is ignored when LISTEN_ADDR is set", map[string]string{"PORT": "http", "LISTEN_ADDR": ":9000"}, "", ":9000", DefaultScopes, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(func(k string) string { return tt.env[k] })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr+":")) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			if c.AppURL != tt.wantURL || c.ListenAddr != tt.wantAddr || strings.Join(c.ShopifyScopes, ",") != tt.want {
				t.Fatalf("APP_URL %q LISTEN_ADDR %q SCOPES %v", c.AppURL, c.ListenAddr, c.ShopifyScopes)
			}
		})
	}
}
