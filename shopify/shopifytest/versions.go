package shopifytest

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/vektah/gqlparser/v2/ast"

	"rtbshopify/shopify/schema"
)

// apiVersions is what the store serves: each supported Admin API version with its schema.
type apiVersions struct {
	schemas map[string]*ast.Schema
	sorted  []string // oldest first
}

// loadVersions uses opts.Schemas, or else every schema embedded in shopify/schema.
func loadVersions(given map[string]*ast.Schema) (apiVersions, error) {
	v := apiVersions{schemas: map[string]*ast.Schema{}}
	if len(given) > 0 {
		for name, s := range given {
			v.schemas[name] = s
		}
	} else {
		for _, name := range schema.Versions() {
			s, err := schema.For(name)
			if err != nil {
				return v, err
			}
			v.schemas[name] = s
		}
	}
	for name := range v.schemas {
		v.sorted = append(v.sorted, name)
	}
	if len(v.sorted) == 0 {
		return v, fmt.Errorf("no Admin API versions to serve")
	}
	slices.Sort(v.sorted)
	return v, nil
}

// serve picks the version that answers a request for asked. Shopify answers a request for a
// version it no longer serves (past its end of support, or never released) with the oldest
// supported stable version, and names the version that answered in X-Shopify-API-Version
// ("About Shopify API versioning": requests to unsupported versions fall forward).
func (v apiVersions) serve(asked string) (string, *ast.Schema) {
	if s, ok := v.schemas[asked]; ok {
		return asked, s
	}
	oldest := v.sorted[0]
	return oldest, v.schemas[oldest]
}

// setServedVersion writes the header Shopify sends with every Admin API answer.
func setServedVersion(w http.ResponseWriter, version string) {
	w.Header().Set("X-Shopify-API-Version", version)
}

// deprecatedIn lists what the request used that its version's schema marks @deprecated, in the
// document and in the variables.
func deprecatedIn(sch *ast.Schema, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any) []string {
	dep := append(schema.Deprecated(doc), schema.DeprecatedVariables(sch, op, vars)...)
	slices.Sort(dep)
	return slices.Compact(dep)
}
