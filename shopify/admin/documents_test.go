package admin

import (
	"strings"
	"testing"

	"rtbshopify/shopify/schema"
)

func TestDocumentsValidate(t *testing.T) {
	for name, doc := range Documents() {
		t.Run(name, func(t *testing.T) {
			if err := schema.Validate(doc); err != nil {
				t.Fatalf("document %s does not validate: %v", name, err)
			}
			// The operation name keys the cost estimate: it must match the map key.
			if !strings.Contains(doc, " "+name+"(") && !strings.Contains(doc, " "+name+" {") {
				t.Fatalf("document %s is not the operation named %s", name, name)
			}
		})
	}
}
