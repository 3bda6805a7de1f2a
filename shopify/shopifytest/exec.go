package shopifytest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
)

// A small GraphQL executor over gqlparser's AST. Values the resolvers return are Go scalars,
// time.Time, slices, nil, or obj (a typed object). Any field without a resolver is reported as
// unsupported: the fake must never answer a field it does not model.

type obj struct {
	typ string
	v   any
}

// exec carries one request's state. The store lock is held for the whole execution, so
// resolvers read and write the shop directly and a request is atomic like a Shopify mutation.
type exec struct {
	s      *Store
	schema *ast.Schema // of the version that answers the request
	sh     *shopState
	vars   map[string]any
	actual float64 // actual query cost, accumulated while resolving
	// payload is set while a mutation's payload resolves: its objects cost
	// nothing beyond the mutation's 10, its connections count (cost.go).
	payload bool
}

type resolver func(e *exec, parent any, args map[string]any) (any, error)

type fieldError struct {
	msg  string
	path []any
}

func (e *exec) operation(op *ast.OperationDefinition) (map[string]any, []fieldError) {
	root := obj{typ: "QueryRoot"}
	if op.Operation == ast.Mutation {
		root.typ = "Mutation"
	}
	data := map[string]any{}
	var errs []fieldError
	for _, f := range e.collect(op.SelectionSet, root.typ) {
		if op.Operation == ast.Mutation {
			e.actual += mutationFieldCost
			e.payload = true
		}
		v, err := e.field(root, f, []any{f.Alias})
		e.payload = false
		if err != nil {
			errs = append(errs, *err)
			v = nil
		}
		data[f.Alias] = v
	}
	return data, errs
}

// collect flattens fragments that apply to typ and honours @skip / @include.
func (e *exec) collect(set ast.SelectionSet, typ string) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			if e.included(x.Directives) {
				out = append(out, x)
			}
		case *ast.InlineFragment:
			if e.included(x.Directives) && e.applies(x.TypeCondition, typ) {
				out = append(out, e.collect(x.SelectionSet, typ)...)
			}
		case *ast.FragmentSpread:
			if e.included(x.Directives) && x.Definition != nil && e.applies(x.Definition.TypeCondition, typ) {
				out = append(out, e.collect(x.Definition.SelectionSet, typ)...)
			}
		}
	}
	return out
}

func (e *exec) included(ds ast.DirectiveList) bool {
	if d := ds.ForName("skip"); d != nil && d.ArgumentMap(e.vars)["if"] == true {
		return false
	}
	if d := ds.ForName("include"); d != nil && d.ArgumentMap(e.vars)["if"] == false {
		return false
	}
	return true
}

func (e *exec) applies(cond, typ string) bool {
	if cond == "" || cond == typ {
		return true
	}
	def := e.schema.Types[cond]
	if def == nil {
		return false
	}
	for _, p := range e.schema.GetPossibleTypes(def) {
		if p.Name == typ {
			return true
		}
	}
	return false
}

func (e *exec) field(parent obj, f *ast.Field, path []any) (any, *fieldError) {
	if f.Name == "__typename" {
		return parent.typ, nil
	}
	key := parent.typ + "." + f.Name
	r, ok := resolvers[key]
	if !ok {
		if m, isFields := parent.v.(fields); isFields {
			if v, has := m[f.Name]; has {
				return e.complete(v, f, path)
			}
		}
		return nil, &fieldError{msg: fmt.Sprintf("shopifytest: field %s is not supported by the fake store", key), path: path}
	}
	v, err := r(e, parent.v, f.ArgumentMap(e.vars))
	if err != nil {
		return nil, &fieldError{msg: err.Error(), path: path}
	}
	return e.complete(v, f, path)
}

func (e *exec) complete(v any, f *ast.Field, path []any) (any, *fieldError) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case obj:
		inPayload := e.payload
		if !inPayload || isConnection(x.typ) {
			e.actual += objectCost(x.typ)
			e.payload = false // a connection's nodes cost as in a query
		}
		out := map[string]any{}
		for _, sub := range e.collect(f.SelectionSet, x.typ) {
			val, err := e.field(x, sub, append(path, sub.Alias))
			if err != nil {
				e.payload = inPayload
				return nil, err
			}
			out[sub.Alias] = val
		}
		e.payload = inPayload
		return out, nil
	case []obj:
		out := make([]any, len(x))
		for i, o := range x {
			val, err := e.complete(o, f, append(path, i))
			if err != nil {
				return nil, err
			}
			out[i] = val
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			val, err := e.complete(el, f, append(path, i))
			if err != nil {
				return nil, err
			}
			out[i] = val
		}
		return out, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339), nil
	case []string:
		return x, nil
	case string, bool, int, int64, float64:
		return x, nil
	default:
		return nil, &fieldError{msg: fmt.Sprintf("shopifytest: cannot serialise %T", v), path: path}
	}
}

// objectCost is what one resolved object adds to the actual cost: connections 2, their edges and
// pageInfo wrappers nothing, every other object 1 (see cost.go for the rule).
func objectCost(typ string) float64 {
	switch {
	case isConnection(typ):
		return 2
	case typ == "PageInfo" || len(typ) > 4 && typ[len(typ)-4:] == "Edge":
		return 0
	}
	return 1
}

// Argument helpers: variables arrive as json.Number, literals as int64, UnsignedInt64 as strings.

func argInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		return int64(x), x == float64(int64(x))
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func argStr(m map[string]any, k string) (string, bool) {
	s, ok := m[k].(string)
	return s, ok
}

func argList(v any) []any {
	l, _ := v.([]any)
	return l
}

func argStrings(v any) []string {
	var out []string
	for _, x := range argList(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func argMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
