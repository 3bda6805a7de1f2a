package shopifytest

//lint:file-ignore ST1005 error messages copy Shopify's own wording, capitals included

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// fields backs plain payload objects (mutation payloads, user errors, staged targets): a field
// not present in the map is reported as unsupported like any other.
type fields map[string]any

var resolvers map[string]resolver

func init() {
	resolvers = map[string]resolver{
		"QueryRoot.product":  queryProduct,
		"QueryRoot.products": queryProducts,
		"QueryRoot.files":    queryFiles,
		"QueryRoot.nodes":    queryNodes,
		"QueryRoot.node":     queryNode,
		"QueryRoot.job":      queryJob,
		"Job.id":             func(_ *exec, p any, _ map[string]any) (any, error) { return p.(*job).id, nil },
		"Job.done":           func(_ *exec, p any, _ map[string]any) (any, error) { return p.(*job).done, nil },
	}
	addProductResolvers()
	addMediaResolvers()
	addConnectionResolvers()
	addMutationResolvers()
}

func queryProduct(e *exec, _ any, args map[string]any) (any, error) {
	raw, _ := argStr(args, "id")
	id, ok := parseGID(raw, "Product")
	if !ok {
		return nil, fmt.Errorf("Invalid global id '%s'", raw)
	}
	if p := e.sh.products[id]; p != nil {
		return obj{"Product", p}, nil
	}
	return nil, nil
}

// lookupNode resolves any gid the fake models; nil when it does not exist.
func (e *exec) lookupNode(raw string) (any, error) {
	if id, ok := parseGID(raw, "Product"); ok {
		if p := e.sh.products[id]; p != nil {
			return obj{"Product", p}, nil
		}
		return nil, nil
	}
	if id, ok := parseGID(raw, "MediaImage"); ok {
		if f := e.sh.files[id]; f != nil {
			return obj{"MediaImage", f}, nil
		}
		return nil, nil
	}
	if id, ok := parseGID(raw, "ProductVariant"); ok {
		for _, p := range e.sh.products {
			for _, v := range p.variants {
				if v.id == id {
					return obj{"ProductVariant", variantRef{p, v}}, nil
				}
			}
		}
		return nil, nil
	}
	if strings.HasPrefix(raw, "gid://shopify/") {
		// Other kinds exist at Shopify; answering null would pretend they don't.
		return nil, fmt.Errorf("shopifytest: node kind of %q is not supported by the fake store", raw)
	}
	return nil, fmt.Errorf("Invalid global id '%s'", raw)
}

func queryNodes(e *exec, _ any, args map[string]any) (any, error) {
	ids := argStrings(args["ids"])
	if len(ids) > 250 {
		return nil, fmt.Errorf("The maximum number of ids allowed is 250")
	}
	out := make([]any, len(ids))
	for i, id := range ids {
		n, err := e.lookupNode(id)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func queryNode(e *exec, _ any, args map[string]any) (any, error) {
	id, _ := argStr(args, "id")
	return e.lookupNode(id)
}

// queryJob reports a job not done on its first poll and completes it (applying its effect) on
// the next, so clients must really poll; one nobody polls completes after JobDelay.
func queryJob(e *exec, _ any, args map[string]any) (any, error) {
	id, _ := argStr(args, "id")
	j := e.sh.jobs[id]
	if j == nil {
		return nil, nil
	}
	j.polls++
	if j.polls >= 2 {
		j.finish()
	}
	return obj{"Job", j}, nil
}

var updatedAtRe = regexp.MustCompile(`^updated_at:>\s*'?([^']+?)'?$`)

func queryProducts(e *exec, _ any, args map[string]any) (any, error) {
	q, _ := argStr(args, "query")
	q = strings.TrimSpace(q)
	var since time.Time
	if q != "" {
		m := updatedAtRe.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("shopifytest: products query %q is not supported (only updated_at:>'RFC3339')", q)
		}
		t, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			return nil, fmt.Errorf("shopifytest: products query %q: bad timestamp: %v", q, err)
		}
		since = t
	}
	sortKey, _ := argStr(args, "sortKey")
	var items []item
	for _, p := range e.sh.products {
		if !since.IsZero() && !p.updatedAt.After(since) {
			continue
		}
		var key string
		switch sortKey {
		case "ID", "":
			key = fmt.Sprintf("%020d", p.id)
		case "UPDATED_AT":
			key = sortTime(p.updatedAt)
		case "CREATED_AT":
			key = sortTime(p.createdAt)
		case "TITLE":
			key = strings.ToLower(p.title)
		default:
			return nil, fmt.Errorf("shopifytest: products sortKey %s is not supported", sortKey)
		}
		items = append(items, item{key: key, id: p.id, o: obj{"Product", p}})
	}
	return paginate("Product", items, args)
}

var filenameRe = regexp.MustCompile(`^filename:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(\S+))$`)

func queryFiles(e *exec, _ any, args map[string]any) (any, error) {
	q, _ := argStr(args, "query")
	q = strings.TrimSpace(q)
	name, filter := "", false
	if q != "" {
		m := filenameRe.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("shopifytest: files query %q is not supported (only filename:'…')", q)
		}
		name = strings.NewReplacer(`\'`, `'`, `\"`, `"`, `\\`, `\`).Replace(m[1] + m[2] + m[3])
		filter = true
	}
	if sk, _ := argStr(args, "sortKey"); sk != "ID" {
		return nil, fmt.Errorf("shopifytest: files sortKey %s is not supported", sk)
	}
	// Shopify's filename search is loose (word-based, case-insensitive): it finds other files
	// than the one named. The fake matches every file whose name has the query's stem, case and
	// extension ignored, so a client must check the names it gets back.
	var items []item
	for _, f := range e.sh.files {
		if filter && !strings.EqualFold(stem(f.filename), stem(name)) {
			continue
		}
		items = append(items, item{key: fmt.Sprintf("%020d", f.id), id: f.id, o: obj{"MediaImage", f}})
	}
	return paginate("File", items, args)
}

func stem(name string) string { return strings.TrimSuffix(name, path.Ext(name)) }

// sortTime formats t so that string order is time order.
func sortTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// item is one entry of a connection, ordered by (key, id).
type item struct {
	key string
	id  int64
	o   obj
}

type connection struct {
	node             string // type of the nodes: Product, Media, ProductVariant, File
	items            []item
	hasNext, hasPrev bool
}

type cursor struct {
	Key string `json:"last_value"`
	ID  int64  `json:"last_id"`
}

func (it item) cursor() string {
	b, _ := json.Marshal(cursor{Key: it.key, ID: it.id})
	return base64.RawURLEncoding.EncodeToString(b)
}

func less(a, b item) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return int(a.id - b.id)
}

// paginate applies sort, reverse, after/before and first/last like Shopify's connections:
// exactly one of first or last is required, at most 250.
func paginate(node string, items []item, args map[string]any) (any, error) {
	slices.SortFunc(items, less)
	if args["reverse"] == true {
		slices.Reverse(items)
	}
	first, hasFirst := argInt(args["first"])
	last, hasLast := argInt(args["last"])
	if hasFirst == hasLast {
		return nil, fmt.Errorf("you must provide one of first or last")
	}
	if n := max(first, last); n > 250 || n < 0 {
		return nil, fmt.Errorf("the %s argument must be between 0 and 250", map[bool]string{true: "first", false: "last"}[hasFirst])
	}
	decode := func(name string) (*item, error) {
		raw, ok := args[name].(string)
		if !ok || raw == "" {
			return nil, nil
		}
		b, err := base64.RawURLEncoding.DecodeString(raw)
		var c cursor
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil {
			return nil, fmt.Errorf("Invalid cursor for current pagination sort")
		}
		return &item{key: c.Key, id: c.ID}, nil
	}
	after, err := decode("after")
	if err != nil {
		return nil, err
	}
	before, err := decode("before")
	if err != nil {
		return nil, err
	}
	rev := args["reverse"] == true
	pos := func(a, b item) int { // order within the (possibly reversed) list
		if rev {
			return -less(a, b)
		}
		return less(a, b)
	}
	var window []item
	for _, it := range items {
		if after != nil && pos(it, *after) <= 0 || before != nil && pos(it, *before) >= 0 {
			continue
		}
		window = append(window, it)
	}
	c := &connection{node: node}
	if hasFirst {
		c.hasPrev = after != nil
		if int64(len(window)) > first {
			window, c.hasNext = window[:first], true
		}
	} else {
		c.hasNext = before != nil
		if int64(len(window)) > last {
			window, c.hasPrev = window[int64(len(window))-last:], true
		}
	}
	c.items = window
	return obj{node + "Connection", c}, nil
}

func addConnectionResolvers() {
	for _, n := range []string{"Product", "Media", "ProductVariant", "File"} {
		resolvers[n+"Connection.nodes"] = func(_ *exec, p any, _ map[string]any) (any, error) {
			c := p.(*connection)
			out := make([]obj, len(c.items))
			for i, it := range c.items {
				out[i] = it.o
			}
			return out, nil
		}
		resolvers[n+"Connection.edges"] = func(_ *exec, p any, _ map[string]any) (any, error) {
			c := p.(*connection)
			out := make([]obj, len(c.items))
			for i, it := range c.items {
				out[i] = obj{c.node + "Edge", it}
			}
			return out, nil
		}
		resolvers[n+"Connection.pageInfo"] = func(_ *exec, p any, _ map[string]any) (any, error) {
			return obj{"PageInfo", p.(*connection)}, nil
		}
		resolvers[n+"Edge.node"] = func(_ *exec, p any, _ map[string]any) (any, error) { return p.(item).o, nil }
		resolvers[n+"Edge.cursor"] = func(_ *exec, p any, _ map[string]any) (any, error) { return p.(item).cursor(), nil }
	}
	resolvers["PageInfo.hasNextPage"] = func(_ *exec, p any, _ map[string]any) (any, error) { return p.(*connection).hasNext, nil }
	resolvers["PageInfo.hasPreviousPage"] = func(_ *exec, p any, _ map[string]any) (any, error) { return p.(*connection).hasPrev, nil }
	resolvers["PageInfo.startCursor"] = func(_ *exec, p any, _ map[string]any) (any, error) {
		if c := p.(*connection); len(c.items) > 0 {
			return c.items[0].cursor(), nil
		}
		return nil, nil
	}
	resolvers["PageInfo.endCursor"] = func(_ *exec, p any, _ map[string]any) (any, error) {
		if c := p.(*connection); len(c.items) > 0 {
			return c.items[len(c.items)-1].cursor(), nil
		}
		return nil, nil
	}
}
