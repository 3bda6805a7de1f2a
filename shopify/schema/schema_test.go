package schema

import (
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Query == nil || s.Mutation == nil || s.Types["MediaImage"] == nil {
		t.Fatalf("schema lacks expected roots or types")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"valid", `query P($id: ID!) { product(id: $id) { id title media(first: 5) { nodes { ... on MediaImage { id image { url } } } } } }`, ""},
		{"unknown field", `query { product(id: "gid://shopify/Product/1") { id imageSrc } }`, "imageSrc"},
		{"bad syntax", `query { product(id: `, "parse"},
		{"missing arg", `query { product { id } }`, "id"},
		{"two errors", `query { shop { nope1 nope2 } }`, "nope2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.doc)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}
