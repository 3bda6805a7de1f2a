// Package schema owns the Shopify Admin GraphQL schemas the app is built against, embedded so that
// the client's documents and the fake store can be validated offline, and the check that a document
// uses nothing Shopify has marked @deprecated.
package schema

import (
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// Version is the Admin API version the app pins by default and validates its documents against.
const Version = "2026-10"

// Each file is Shopify's own introspection of one Admin API version, printed as SDL and gzipped:
// admin-<version>.graphql.gz.
//
//go:embed admin-*.graphql.gz
var files embed.FS

type loaded struct {
	once sync.Once
	s    *ast.Schema
	err  error
}

var cache sync.Map // version → *loaded

// Versions lists the embedded schema versions, oldest first.
func Versions() []string {
	entries, _ := files.ReadDir(".")
	var out []string
	for _, e := range entries {
		name := e.Name()
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(name, "admin-"), ".graphql.gz"))
	}
	slices.Sort(out)
	return out
}

// Load returns the parsed schema of Version.
func Load() (*ast.Schema, error) { return For(Version) }

// For returns the parsed schema of an embedded version. Parsing the ~4 MB SDL takes a noticeable
// fraction of a second, so it happens once per version and process and the result is shared (it is
// read-only afterwards).
func For(version string) (*ast.Schema, error) {
	v, _ := cache.LoadOrStore(version, &loaded{})
	l := v.(*loaded)
	l.once.Do(func() { l.s, l.err = load(version) })
	return l.s, l.err
}

func load(version string) (*ast.Schema, error) {
	name := "admin-" + version + ".graphql.gz"
	gz, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("no embedded admin schema for version %s (have %s)", version, strings.Join(Versions(), ", "))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("open embedded admin schema %s: %w", version, err)
	}
	sdl, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read embedded admin schema %s: %w", version, err)
	}
	s, gerr := gqlparser.LoadSchema(&ast.Source{Name: strings.TrimSuffix(name, ".gz"), Input: string(sdl)})
	if gerr != nil {
		return nil, fmt.Errorf("parse embedded admin schema %s: %w", version, gerr)
	}
	return s, nil
}

// Parse parses and validates a query document against the schema of Version and returns it.
func Parse(doc string) (*ast.QueryDocument, error) {
	s, err := Load()
	if err != nil {
		return nil, err
	}
	return ParseWith(s, doc)
}

// ParseWith parses and validates a query document against s. All parse or validation errors are
// joined into one error.
func ParseWith(s *ast.Schema, doc string) (*ast.QueryDocument, error) {
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

// Validate parses and validates a query document against the schema of Version.
func Validate(doc string) error {
	_, err := Parse(doc)
	return err
}
