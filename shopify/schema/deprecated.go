package schema

import (
	"slices"

	"github.com/vektah/gqlparser/v2/ast"
)

// Deprecated lists what a validated document uses that its schema marks @deprecated: fields
// ("Product.images"), arguments ("Product.media(reverse)"), input fields
// ("ProductInput.images") and enum values ("MediaContentType.IMAGE") written in the document.
// Shopify names the deprecated fields a request used in X-Shopify-API-Deprecated-Reason, in the
// same Type.field form. The list is sorted and without repeats; nil when nothing is deprecated.
//
// doc must come from ParseWith (validation is what links each node to its definition).
func Deprecated(doc *ast.QueryDocument) []string {
	w := walker{seen: map[string]bool{}}
	for _, op := range doc.Operations {
		for _, v := range op.VariableDefinitions {
			if v.DefaultValue != nil {
				w.value(v.DefaultValue)
			}
		}
		w.selections(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		w.selections(f.SelectionSet)
	}
	return w.list()
}

// DeprecatedVariables lists the deprecated input fields and enum values that variable values sent
// with op use (values as decoded from JSON, before coercion).
func DeprecatedVariables(s *ast.Schema, op *ast.OperationDefinition, vars map[string]any) []string {
	w := walker{seen: map[string]bool{}}
	for _, v := range op.VariableDefinitions {
		if val, ok := vars[v.Variable]; ok {
			w.input(s, v.Type, val)
		}
	}
	return w.list()
}

type walker struct {
	seen map[string]bool
	out  []string
}

func (w *walker) add(name string, ds ast.DirectiveList) {
	if ds.ForName("deprecated") != nil && !w.seen[name] {
		w.seen[name] = true
		w.out = append(w.out, name)
	}
}

func (w *walker) list() []string {
	slices.Sort(w.out)
	return w.out
}

func (w *walker) selections(set ast.SelectionSet) {
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			w.field(x)
		case *ast.InlineFragment:
			w.selections(x.SelectionSet)
		case *ast.FragmentSpread:
			// The fragment's own definition is walked once with the document's fragments.
		}
	}
}

func (w *walker) field(f *ast.Field) {
	if f.Definition != nil && f.ObjectDefinition != nil {
		owner := f.ObjectDefinition.Name + "." + f.Name
		w.add(owner, f.Definition.Directives)
		for _, a := range f.Arguments {
			if def := f.Definition.Arguments.ForName(a.Name); def != nil {
				w.add(owner+"("+a.Name+")", def.Directives)
			}
			w.value(a.Value)
		}
	}
	w.selections(f.SelectionSet)
}

// value walks a literal: enum values and input object fields carry their definitions once the
// document is validated.
func (w *walker) value(v *ast.Value) {
	if v == nil || v.Definition == nil {
		return
	}
	switch v.Kind {
	case ast.EnumValue:
		if ev := v.Definition.EnumValues.ForName(v.Raw); ev != nil {
			w.add(v.Definition.Name+"."+v.Raw, ev.Directives)
		}
	case ast.ObjectValue:
		for _, c := range v.Children {
			if fd := v.Definition.Fields.ForName(c.Name); fd != nil {
				w.add(v.Definition.Name+"."+c.Name, fd.Directives)
			}
			w.value(c.Value)
		}
	case ast.ListValue:
		for _, c := range v.Children {
			w.value(c.Value)
		}
	}
}

// input walks a variable's JSON value against its declared type.
func (w *walker) input(s *ast.Schema, t *ast.Type, val any) {
	if t == nil || val == nil {
		return
	}
	if t.Elem != nil {
		if list, ok := val.([]any); ok {
			for _, el := range list {
				w.input(s, t.Elem, el)
			}
			return
		}
		w.input(s, t.Elem, val) // a single value coerces to a one-element list
		return
	}
	def := s.Types[t.NamedType]
	if def == nil {
		return
	}
	switch def.Kind {
	case ast.Enum:
		if str, ok := val.(string); ok {
			if ev := def.EnumValues.ForName(str); ev != nil {
				w.add(def.Name+"."+str, ev.Directives)
			}
		}
	case ast.InputObject:
		m, ok := val.(map[string]any)
		if !ok {
			return
		}
		for name, fv := range m {
			if fd := def.Fields.ForName(name); fd != nil {
				w.add(def.Name+"."+name, fd.Directives)
				w.input(s, fd.Type, fv)
			}
		}
	}
}
