package admin

import (
	"strings"
	"testing"

	"rtbshopify/config"
	"rtbshopify/shopify/schema"
)

// TestDocumentsValidate checks every document the client sends against the schema of the version
// it pins, and that none uses a field, argument, input field or enum value the schema marks
// @deprecated (Shopify removes those in a later version).
func TestDocumentsValidate(t *testing.T) {
	if DefaultAPIVersion != schema.Version || config.DefaultAPIVersion != schema.Version {
		t.Fatalf("the client pins %s and SHOPIFY_API_VERSION defaults to %s, but documents are validated against %s",
			DefaultAPIVersion, config.DefaultAPIVersion, schema.Version)
	}
	docs := Documents()
	if len(docs) == 0 {
		t.Fatal("no documents")
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			q, err := schema.Parse(doc)
			if err != nil {
				t.Fatalf("document %s does not validate against %s: %v", name, schema.Version, err)
			}
			if dep := schema.Deprecated(q); len(dep) > 0 {
				t.Fatalf("document %s uses what %s marks @deprecated: %s", name, schema.Version, strings.Join(dep, ", "))
			}
			// The operation name keys the cost estimate: it must match the map key.
			if !strings.Contains(doc, " "+name+"(") && !strings.Contains(doc, " "+name+" {") {
				t.Fatalf("document %s is not the operation named %s", name, name)
			}
		})
	}
}
