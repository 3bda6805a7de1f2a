package shopifytest

import (
	"math"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
)

// Cost rule (a simplification of Shopify's calculated query cost, documented so tests can
// predict it):
//   - scalars and enums cost 0;
//   - every other object field costs 1 plus its selection;
//   - a connection field (type …Connection) costs 2 plus first (or last) × the cost of one node,
//     one node being the `nodes` or `edges.node` selection (1 + its fields); the `pageInfo` and
//     `edges` wrappers cost 0 (executing a connection without first/last is an error, as at Shopify);
//   - a plain list of objects counts once, except nodes(ids:) which counts len(ids);
//   - a mutation field costs 10, whatever payload it returns: its payload's objects (the
//     created file, userErrors) add nothing, only a connection inside it counts as above. This
//     is what Shopify answers: draftOrderCreate returning draftOrder { id } and userErrors, or
//     appUninstall returning app { id title } and userErrors, report requestedQueryCost 10.
// The requested cost is charged up front and the difference to the actual cost (the same rule
// over what was returned) refunded, like Shopify.

const maxSingleQueryCost = 1000

func isConnection(typ string) bool { return strings.HasSuffix(typ, "Connection") }

// mutationFieldCost is what one mutation field costs, its payload's objects included.
const mutationFieldCost = 10

func (s *Store) requestedCost(op *ast.OperationDefinition, vars map[string]any) float64 {
	if op.Operation != ast.Mutation {
		return s.selectionCost(op.SelectionSet, vars, false)
	}
	var c float64
	for _, f := range rootFields(op.SelectionSet) {
		c += mutationFieldCost + s.selectionCost(f.SelectionSet, vars, true)
	}
	return c
}

// rootFields are an operation's top-level fields, fragments flattened.
func rootFields(set ast.SelectionSet) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			out = append(out, x)
		case *ast.InlineFragment:
			out = append(out, rootFields(x.SelectionSet)...)
		case *ast.FragmentSpread:
			if x.Definition != nil {
				out = append(out, rootFields(x.Definition.SelectionSet)...)
			}
		}
	}
	return out
}

// selectionCost is the cost of a selection; in a mutation's payload only
// connections cost anything.
func (s *Store) selectionCost(set ast.SelectionSet, vars map[string]any, payload bool) float64 {
	var total float64
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			total += s.fieldCost(x, vars, payload)
		case *ast.InlineFragment:
			total += s.selectionCost(x.SelectionSet, vars, payload)
		case *ast.FragmentSpread:
			if x.Definition != nil {
				total += s.selectionCost(x.Definition.SelectionSet, vars, payload)
			}
		}
	}
	return total
}

func (s *Store) fieldCost(f *ast.Field, vars map[string]any, payload bool) float64 {
	if f.Definition == nil || len(f.SelectionSet) == 0 {
		return 0 // scalar, enum or __typename
	}
	typ := f.Definition.Type.Name()
	if payload && !isConnection(typ) {
		return s.selectionCost(f.SelectionSet, vars, true)
	}
	sub := s.selectionCost(f.SelectionSet, vars, false)
	args := f.ArgumentMap(vars)
	switch {
	case isConnection(typ):
		n := int64(0)
		if v, ok := argInt(args["first"]); ok {
			n = v
		} else if v, ok := argInt(args["last"]); ok {
			n = v
		}
		return 2 + float64(n)*sub
	case f.Name == "edges" && strings.HasSuffix(typ, "Edge"), typ == "PageInfo":
		return sub
	case f.Name == "nodes" && f.ObjectDefinition != nil && isConnection(f.ObjectDefinition.Name):
		return 1 + sub // per node; the connection multiplies
	case f.Name == "nodes" && f.ObjectDefinition != nil && f.ObjectDefinition.Name == "QueryRoot":
		return float64(len(argList(args["ids"]))) * (1 + sub)
	}
	return 1 + sub
}

// bucket is a shop's leaky bucket of cost points.
type bucket struct {
	available float64
	at        time.Time
}

func (b *bucket) refill(now time.Time, size, rate float64) {
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.available = math.Min(size, b.available+el*rate)
	}
	b.at = now
}
