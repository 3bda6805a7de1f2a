package shopifytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

const invalidTokenMessage = "[API] Invalid API key or access token (unrecognized login or wrong password)"

type gqlBody struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

func gqlErrors(msgs ...string) []map[string]any {
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]any{"message": m}
	}
	return out
}

func (s *Store) handleGraphQL(w http.ResponseWriter, r *http.Request) {
	rec := Request{Time: s.opts.Now(), Shop: r.Host, Path: r.URL.Path}
	defer func() { s.record(rec) }()
	served, sch := s.versions.serve(r.PathValue("version"))
	rec.Version = served
	setServedVersion(w, served)

	s.mu.Lock()
	sh, ok := s.shopFromHost(r)
	s.mu.Unlock()
	if !ok {
		rec.Status = http.StatusNotFound
		writeJSON(w, rec.Status, map[string]any{"errors": "Not Found"})
		return
	}
	if !s.validToken(sh, r.Header.Get("X-Shopify-Access-Token")) {
		rec.Status = http.StatusUnauthorized
		writeJSON(w, rec.Status, map[string]any{"errors": invalidTokenMessage})
		return
	}
	if !s.ipAllowed(r) {
		rec.Status = http.StatusForbidden
		writeJSON(w, rec.Status, map[string]any{"errors": ipNotAllowedMessage})
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil {
		rec.Status = http.StatusBadRequest
		writeJSON(w, rec.Status, map[string]any{"errors": "could not read body"})
		return
	}
	var body gqlBody
	if err := json.Unmarshal(raw, &body); err != nil || body.Query == "" {
		rec.Status = http.StatusBadRequest
		writeJSON(w, rec.Status, map[string]any{"errors": gqlErrors("Bad Request: body must be JSON with a query")})
		return
	}
	rec.Status = http.StatusOK

	// Shopify answers syntax and validation errors with HTTP 200 and an errors list.
	doc, perr := parser.ParseQuery(&ast.Source{Input: body.Query})
	if perr != nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": gqlErrors(perr.Error())})
		return
	}
	if list := validator.ValidateWithRules(sch, doc, nil); len(list) > 0 {
		msgs := make([]string, len(list))
		for i, e := range list {
			msgs[i] = e.Message
		}
		writeJSON(w, http.StatusOK, map[string]any{"errors": gqlErrors(msgs...)})
		return
	}
	op := doc.Operations.ForName(body.OperationName)
	if op == nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": gqlErrors(fmt.Sprintf("Operation %q not found in the document", body.OperationName))})
		return
	}
	rec.Operation = op.Name
	if rec.Operation == "" && len(op.SelectionSet) > 0 {
		if f, ok := op.SelectionSet[0].(*ast.Field); ok {
			rec.Operation = f.Name
		}
	}
	vars, verr := validator.VariableValues(sch, op, body.Variables)
	if verr != nil {
		writeJSON(w, http.StatusOK, map[string]any{"errors": gqlErrors(verr.Error())})
		return
	}
	// Since 2025-04 Shopify names the deprecated fields a request used, as "Type.field, …".
	if dep := deprecatedIn(sch, doc, op, body.Variables); len(dep) > 0 {
		rec.Deprecated = dep
		w.Header().Set("X-Shopify-API-Deprecated-Reason", strings.Join(dep, ", "))
	}
	if op.Operation == ast.Subscription {
		writeJSON(w, http.StatusOK, map[string]any{"errors": gqlErrors("shopifytest: subscriptions are not supported")})
		return
	}

	requested := s.requestedCost(op, vars)
	rec.Cost = requested

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	sh.bucket.refill(now, s.opts.BucketSize, s.opts.RestoreRate)
	status := func() map[string]any {
		return map[string]any{
			"maximumAvailable": s.opts.BucketSize, "currentlyAvailable": sh.bucket.available,
			"restoreRate": s.opts.RestoreRate,
		}
	}
	if requested > maxSingleQueryCost {
		writeJSON(w, http.StatusOK, map[string]any{
			"errors": []map[string]any{{
				"message":    fmt.Sprintf("Query cost is %.0f, which exceeds the single query max cost limit (%d).", requested, maxSingleQueryCost),
				"extensions": map[string]any{"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": maxSingleQueryCost},
			}},
			"extensions": map[string]any{"cost": map[string]any{"requestedQueryCost": requested, "actualQueryCost": nil, "throttleStatus": status()}},
		})
		return
	}
	if sh.bucket.available < requested {
		rec.Throttled = true
		writeJSON(w, http.StatusOK, throttled(requested, status()))
		return
	}
	sh.bucket.available -= requested

	e := &exec{s: s, schema: sch, sh: sh, vars: vars}
	data, ferrs := e.operation(op)
	actual := min(e.actual, requested)
	rec.ActualCost = actual
	sh.bucket.available += requested - actual // refund, as Shopify does
	resp := map[string]any{
		"data":       data,
		"extensions": map[string]any{"cost": map[string]any{"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status()}},
	}
	if len(ferrs) > 0 {
		list := make([]map[string]any, len(ferrs))
		for i, fe := range ferrs {
			list[i] = map[string]any{"message": fe.msg, "path": fe.path}
		}
		resp["errors"] = list
	}
	writeJSON(w, http.StatusOK, resp)
}

// throttled is Shopify's answer to a query its bucket has no room for: HTTP
// 200, a THROTTLED error, nothing done, and the bucket's state.
func throttled(requested float64, bucket map[string]any) map[string]any {
	return map[string]any{
		"errors": []map[string]any{{
			"message":    "Throttled",
			"extensions": map[string]any{"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
		}},
		"extensions": map[string]any{"cost": map[string]any{"requestedQueryCost": requested, "actualQueryCost": nil, "throttleStatus": bucket}},
	}
}
