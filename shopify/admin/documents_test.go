package admin

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
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

var operationRE = regexp.MustCompile(`^\s*(query|mutation|subscription)\s+[A-Za-z_]\w*\s*[({]`)

// TestEveryDocumentIsListed walks the app's Go source (not tests, not the fake store) for string
// literals that are GraphQL operations: each must be one Documents returns, so the validation and
// deprecation checks above cover every document the app can send.
func TestEveryDocumentIsListed(t *testing.T) {
	listed := map[string]bool{}
	for _, d := range Documents() {
		listed[d] = true
	}
	root := filepath.Join("..", "..")
	found := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "shopifytest" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !operationRE.MatchString(s) {
				return true
			}
			found++
			if !listed[s] {
				t.Errorf("%s holds a GraphQL document Documents() does not list: %.60q", path, s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < len(listed) {
		t.Fatalf("found %d documents in the source, Documents() lists %d", found, len(listed))
	}
}
