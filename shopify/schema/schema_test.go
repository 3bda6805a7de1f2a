package schema

import (
	"encoding/json"
	"slices"
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
	// 2026-10 introduced @idempotent; its presence shows which schema was embedded.
	if s.Directives["idempotent"] == nil {
		t.Fatalf("schema %s lacks the @idempotent directive", Version)
	}
	if !slices.Contains(Versions(), Version) {
		t.Fatalf("Versions() = %v, want it to hold %s", Versions(), Version)
	}
	if _, err := For("2019-04"); err == nil || !strings.Contains(err.Error(), Version) {
		t.Fatalf("For(2019-04) error = %v, want one listing the embedded versions", err)
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

func TestDeprecated(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"clean", `query P($id: ID!) { product(id: $id) { id media(first: 5) { nodes { id } } } }`, nil},
		{"field", `query P($id: ID!) { product(id: $id) { id bodyHtml featuredImage { url } } }`,
			[]string{"Product.bodyHtml", "Product.featuredImage"}},
		{"argument", `query P($id: ID!) { product(id: $id) { images(first: 1, maxWidth: 10) { nodes { url } } } }`,
			[]string{"Product.images", "Product.images(maxWidth)"}},
		{"enum value", `query { metafieldDefinitions(first: 1, ownerType: MEDIA_IMAGE) { nodes { id } } }`,
			[]string{"MetafieldOwnerType.MEDIA_IMAGE"}},
		{"input field", `mutation { collectionCreate(input: {title: "x", publications: []}) { collection { id } } }`,
			[]string{"CollectionInput.publications", "Mutation.collectionCreate(input)"}},
		{"deprecated mutation", `mutation { productCreateMedia(productId: "gid://shopify/Product/1", media: []) { media { id } } }`,
			[]string{"Mutation.productCreateMedia"}},
		{"in a fragment", `query P($id: ID!) { product(id: $id) { ...F } } fragment F on Product { bodyHtml }`,
			[]string{"Product.bodyHtml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := Deprecated(doc); !slices.Equal(got, tt.want) {
				t.Fatalf("Deprecated = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDeprecatedVariables(t *testing.T) {
	doc, err := Parse(`mutation C($input: CollectionInput!, $owner: MetafieldOwnerType!) {
  collectionCreate(input: $input) { collection { id } }
  metafieldDefinitionCreate(definition: {name: "n", namespace: "a", key: "k", type: "single_line_text_field", ownerType: $owner}) { createdDefinition { id } }
}`)
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]any
	if err := json.Unmarshal([]byte(`{"input": {"title": "x", "publications": [{"publicationId": "gid://shopify/Publication/1"}]}, "owner": "MEDIA_IMAGE"}`), &vars); err != nil {
		t.Fatal(err)
	}
	s, _ := Load()
	got := DeprecatedVariables(s, doc.Operations[0], vars)
	want := []string{"CollectionInput.publications", "MetafieldOwnerType.MEDIA_IMAGE"}
	if !slices.Equal(got, want) {
		t.Fatalf("DeprecatedVariables = %v, want %v", got, want)
	}
	if got := DeprecatedVariables(s, doc.Operations[0], map[string]any{"input": map[string]any{"title": "x"}, "owner": "PRODUCT"}); got != nil {
		t.Fatalf("clean variables reported %v", got)
	}
}
