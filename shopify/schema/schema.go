// Package schema owns the Shopify Admin GraphQL schema the app is built against, embedded so that
// the client's documents and the fake store can be validated offline.
package schema

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// Version is the Admin API version the embedded schema was published for.
const Version = "2025-04"

//go:embed admin-2025-04.graphql.gz
var gzSchema []byte

var (
	loadOnce sync.Once
	loaded   *ast.Schema
	loadErr  error
)

// Load returns the parsed Admin schema. Parsing the ~3 MB SDL takes a noticeable fraction of a
// second, so it happens once per process and the result is shared (it is read-only afterwards).
func Load() (*ast.Schema, error) {
	loadOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(gzSchema))
		if err != nil {
			loadErr = fmt.Errorf("open embedded admin schema: %w", err)
			return
		}
		sdl, err := io.ReadAll(zr)
		if err != nil {
			loadErr = fmt.Errorf("read embedded admin schema: %w", err)
			return
		}
		s, gerr := gqlparser.LoadSchema(&ast.Source{Name: "admin-" + Version + ".graphql", Input: string(sdl)})
		if gerr != nil {
			loadErr = fmt.Errorf("parse embedded admin schema: %w", gerr)
			return
		}
		loaded = s
	})
	return loaded, loadErr
}

// Parse parses and validates a query document against the Admin schema and returns it.
// All parse or validation errors are joined into one error.
func Parse(doc string) (*ast.QueryDocument, error) {
	s, err := Load()
	if err != nil {
		return nil, err
	}
	q, perr := parser.ParseQuery(&ast.Source{Name: "document", Input: doc})
	if perr != nil {
		return nil, fmt.Errorf("parse graphql document: %w", perr)
	}
	if list := validator.ValidateWithRules(s, q, nil); len(list) > 0 {
		errs := make([]error, 0, len(list))
		for _, e := range list {
			errs = append(errs, e)
		}
		return nil, fmt.Errorf("validate graphql document: %w", errors.Join(errs...))
	}
	return q, nil
}

// Validate parses and validates a query document against the Admin schema.
func Validate(doc string) error {
	_, err := Parse(doc)
	return err
}
