// The runbook and the alert rules quote the binary's commands, flags and log
// lines; these tests hold the quotes to the code, so an operator who copies
// a command runs what exists and one who searches the logs finds the line.

package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// cliCommands reads main.go: the commands run's switch accepts, each with
// the flags its flag set defines (flag name → whether it takes a value).
func cliCommands(t *testing.T) map[string]map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot, "main.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]map[string]bool{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "run" || fn.Body == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok {
				return true
			}
			if id, ok := sw.Tag.(*ast.Ident); !ok || id.Name != "cmd" {
				return true
			}
			for _, st := range sw.Body.List {
				for _, e := range st.(*ast.CaseClause).List {
					if s, ok := stringLit(e); ok {
						cmds[s] = map[string]bool{}
					}
				}
			}
			return false
		})
	}
	if len(cmds) < 4 {
		t.Fatalf("found only commands %v in main.go's run", cmds)
	}
	// A flag set is named after its command: fs := flag.NewFlagSet("rotate-keys", …),
	// then fs.Bool("check", …), fs.DurationVar(&p, "pause", …).
	defines := map[string]bool{"Bool": false, "Int": true, "Int64": true, "Uint": true, "Uint64": true, "String": true,
		"Float64": true, "Duration": true, "Func": true, "BoolFunc": false, "Var": true, "TextVar": true}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		sets := map[string]string{}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.AssignStmt:
				if len(x.Lhs) != 1 || len(x.Rhs) != 1 {
					return true
				}
				call, ok := x.Rhs[0].(*ast.CallExpr)
				id, ok2 := x.Lhs[0].(*ast.Ident)
				if !ok || !ok2 || len(call.Args) == 0 {
					return true
				}
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewFlagSet" {
					if name, ok := stringLit(call.Args[0]); ok {
						if cmds[name] == nil {
							t.Errorf("main.go has a flag set %q for no command of run's switch", name)
							cmds[name] = map[string]bool{}
						}
						sets[id.Name] = name
					}
				}
			case *ast.CallExpr:
				sel, ok := x.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				recv, ok := sel.X.(*ast.Ident)
				if !ok || sets[recv.Name] == "" {
					return true
				}
				method, arg := sel.Sel.Name, 0
				if strings.HasSuffix(method, "Var") && method != "Var" && method != "TextVar" {
					method, arg = strings.TrimSuffix(method, "Var"), 1
				} else if method == "Var" || method == "TextVar" {
					arg = 1
				}
				takesValue, isDef := defines[method]
				if isDef && len(x.Args) > arg {
					if name, ok := stringLit(x.Args[arg]); ok {
						cmds[sets[recv.Name]][name] = takesValue
					}
				}
			}
			return true
		})
	}
	return cmds
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// checkCLIArgs wants args (after the binary) to be a command main.go runs
// followed only by flags its flag set defines, each value after a flag
// that takes one.
func checkCLIArgs(t *testing.T, where string, args []string) {
	t.Helper()
	cmds := cliCommands(t)
	if len(args) == 0 {
		return // serve
	}
	flags, ok := cmds[args[0]]
	if !ok {
		t.Errorf("%s runs `rtbshopify %s`: main.go has no command %q (it has %v)", where, strings.Join(args, " "), args[0], mapKeys(cmds))
		return
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s runs `rtbshopify %s`: %q is neither a flag nor a flag's value", where, strings.Join(args, " "), a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := flags[name]
		if !ok {
			t.Errorf("%s runs `rtbshopify %s`: %s has no flag -%s (it has %v)", where, strings.Join(args, " "), args[0], name, mapKeys(flags))
			continue
		}
		if takesValue && !hasValue {
			i++ // its value
			if i == len(args) {
				t.Errorf("%s runs `rtbshopify %s`: -%s needs a value", where, strings.Join(args, " "), name)
			}
		}
	}
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// runbook splits deploy/README.md into the lines of its fenced code blocks
// (a line ending in \ joined with the next) and its inline code spans
// (which may break across lines), and the prose outside code blocks.
func runbook(t *testing.T) (blockLines, spans []string, prose string) {
	t.Helper()
	var out strings.Builder
	fenced := false
	pending := ""
	for _, line := range strings.Split(string(readFile(t, "deploy/README.md")), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out.WriteString(line + "\n")
			continue
		}
		if l, cont := strings.CutSuffix(line, `\`); cont {
			pending += l + " "
			continue
		}
		blockLines = append(blockLines, strings.Join(strings.Fields(pending+line), " "))
		pending = ""
	}
	prose = out.String()
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(prose, -1) {
		spans = append(spans, strings.Join(strings.Fields(m[1]), " "))
	}
	return blockLines, spans, prose
}

// invocations finds `rtbshopify <command> [flags]` (or the image name with
// a tag, as docker run takes it) in a line of code, and the arguments of
// `docker compose … run [--rm] <service> <command> [flags]`.
func invocations(code string) [][]string {
	var out [][]string
	collect := func(rest string) {
		var args []string
		for _, f := range strings.Fields(rest) {
			if f == "&&" || f == "||" || f == "|" || f == ";" || strings.HasPrefix(f, "#") || strings.HasPrefix(f, "→") {
				break
			}
			trimmed := strings.TrimRight(f, `)"'`)
			if trimmed != "" {
				args = append(args, trimmed)
			}
			if trimmed != f {
				break
			}
		}
		if len(args) > 0 && regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(args[0]) {
			out = append(out, args)
		}
	}
	for _, m := range regexp.MustCompile(`(?:^|[^\w/.:-])rtbshopify(?::[\w.-]+)?[ \t]+(.*)`).FindAllStringSubmatch(code, -1) {
		collect(m[1])
	}
	if m := regexp.MustCompile(`docker compose .*\brun (?:--rm )?[\w-]+ (.*)`).FindStringSubmatch(code); m != nil {
		collect(m[1])
	}
	return out
}

func TestRunbookCommandsAreTheOnesTheBinaryImplements(t *testing.T) {
	blockLines, spans, _ := runbook(t)
	cmds := cliCommands(t)
	allFlags := map[string]bool{}
	for _, flags := range cmds {
		for f := range flags {
			allFlags[f] = true
		}
	}
	seen := map[string]bool{}
	for _, code := range append(blockLines, spans...) {
		for _, args := range invocations(code) {
			checkCLIArgs(t, "the runbook", args)
			seen[strings.Join(args, " ")] = true
		}
		// A flag quoted on its own (`--pause 100ms`) is one of the binary's
		// (the runbook spells them with two dashes; other tools' flags it
		// quotes alone, like docker's `-f deploy/Dockerfile`, have one).
		if f := strings.Fields(code); len(f) > 0 && regexp.MustCompile(`^--[a-z][a-z0-9-]*(=|$)`).MatchString(f[0]) {
			name, _, _ := strings.Cut(strings.TrimLeft(f[0], "-"), "=")
			if !allFlags[name] {
				t.Errorf("the runbook quotes `%s`: no command of main.go has a flag -%s", code, name)
			}
		}
	}
	for _, want := range []string{"migrate", "keygen", "rotate-keys", "rotate-keys --check", "version"} {
		if !seen[want] {
			t.Errorf("the runbook never shows `rtbshopify %s` (it shows %v)", want, mapKeys(seen))
		}
	}
}

func TestRunbookCommandsRunFromTheRepositoryRoot(t *testing.T) {
	blockLines, spans, _ := runbook(t)
	code := append(blockLines, spans...)
	// The deployment files' own comments show commands too.
	for _, rel := range []string{"deploy/docker-compose.yml", "deploy/Dockerfile"} {
		for _, line := range strings.Split(string(readFile(t, rel)), "\n") {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "#"); ok {
				code = append(code, strings.TrimSpace(c))
			}
		}
	}
	k8s, _ := filepath.Glob(filepath.Join(repoRoot, "deploy/k8s/*.yaml"))
	for _, f := range k8s {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "#"); ok {
				code = append(code, strings.TrimSpace(c))
			}
		}
	}
	composes, builds := 0, 0
	for _, c := range code {
		if strings.Contains(c, "docker compose ") || strings.Contains(c, "docker-compose ") {
			composes++
			if !strings.Contains(c, "docker compose -f deploy/docker-compose.yml ") {
				t.Errorf("`%s`: every Compose command runs from the repository root with -f deploy/docker-compose.yml", c)
			}
		}
		if strings.Contains(c, "docker build ") {
			builds++
			f := strings.Fields(strings.Split(c, "#")[0])
			if !strings.Contains(c, "-f deploy/Dockerfile") || f[len(f)-1] != "." {
				t.Errorf("`%s`: the image builds from the repository root: -f deploy/Dockerfile … .", c)
			}
		}
		// Every file a command names (-f FILE, --path DIR) exists.
		for _, m := range regexp.MustCompile(`(?:^|\s)(?:-f|--path)\s+(deploy[\w./-]*)`).FindAllStringSubmatch(c, -1) {
			if _, err := os.Stat(filepath.Join(repoRoot, m[1])); err != nil {
				t.Errorf("`%s` names %s, which does not exist", c, m[1])
			}
		}
	}
	if composes < 3 || builds < 1 {
		t.Errorf("found %d Compose and %d docker build commands", composes, builds)
	}
}

// goStringLiterals collects every string literal of the app's non-test Go
// sources.
func goStringLiterals(t *testing.T) []string {
	t.Helper()
	var lits []string
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if e, ok := n.(ast.Expr); ok {
				if s, ok := stringLit(e); ok {
					lits = append(lits, s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lits
}

// checkLogLine wants a quoted log message to be a string literal of the
// code: exactly, or, when the quote ends in an ellipsis, as its start.
func checkLogLine(t *testing.T, where, quote string, lits []string) {
	t.Helper()
	q := strings.Join(strings.Fields(quote), " ")
	prefix, cut := strings.CutSuffix(q, "…")
	if !cut {
		prefix, cut = strings.CutSuffix(q, "...")
	}
	prefix = strings.TrimSpace(prefix)
	for _, l := range lits {
		if l == q || cut && len(prefix) >= 10 && strings.HasPrefix(l, prefix) {
			return
		}
	}
	t.Errorf("%s quotes the log line %q, which the code does not write", where, quote)
}

func TestRunbookAndAlertsQuoteLogLinesTheCodeWrites(t *testing.T) {
	lits := goStringLiterals(t)
	_, _, prose := runbook(t)

	// The runbook's table of log lines (its first column holds the msg
	// fields) and every "log line `…`" or "logs `…`" in its prose.
	var quotes []string
	inTable := false
	for _, line := range strings.Split(prose, "\n") {
		switch {
		case strings.HasPrefix(line, "| `msg` |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|"):
			cells := strings.Split(line, "|")
			for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[1], -1) {
				quotes = append(quotes, m[1])
			}
		default:
			inTable = false
		}
	}
	tableRows := len(quotes)
	for _, m := range regexp.MustCompile("(?:log line|logs)\\s+`([^`]+)`").FindAllStringSubmatch(prose, -1) {
		quotes = append(quotes, m[1])
	}
	if tableRows < 12 || len(quotes) < tableRows+3 {
		t.Errorf("found only %d log lines in the runbook's table and %d in its prose", tableRows, len(quotes)-tableRows)
	}
	for _, q := range quotes {
		checkLogLine(t, "the runbook", q, lits)
	}

	// The alert rules quote log lines in double quotes in their annotations.
	docs := yamlDocs(t, "deploy/prometheus-alerts.yml")
	alertQuotes := 0
	for i := 0; dig(docs[0], "groups", i) != nil; i++ {
		for j := 0; dig(docs[0], "groups", i, "rules", j) != nil; j++ {
			r := dig(docs[0], "groups", i, "rules", j)
			ann, _ := dig(r, "annotations").(map[string]any)
			for _, k := range mapKeys(ann) {
				for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(str(ann[k]), -1) {
					alertQuotes++
					checkLogLine(t, "alert "+str(dig(r, "alert"))+" "+k, m[1], lits)
				}
			}
		}
	}
	if alertQuotes < 6 {
		t.Errorf("found only %d log lines quoted by the alert rules", alertQuotes)
	}
}

// TestRunbookNamesTheVersionsTheFilesNeed: a feature of the files that
// needs a minimum version of the tool running them is named with it.
func TestRunbookNamesTheVersionsTheFilesNeed(t *testing.T) {
	readme := string(readFile(t, "deploy/README.md"))
	dep := k8sObjects(t)["Deployment"]
	if dig(dep, "spec", "template", "spec", "containers", 0, "lifecycle", "preStop", "sleep") != nil &&
		!strings.Contains(readme, "Kubernetes 1.30 or later") {
		t.Error("the Deployment's preStop uses the sleep action (Kubernetes 1.30 or later); the runbook does not say so")
	}
	compose := yamlDocs(t, "deploy/docker-compose.yml")[0]
	configs, _ := dig(compose, "configs").(map[string]any)
	for name := range configs {
		if dig(configs, name, "content") != nil && !strings.Contains(readme, "Compose 2.23.1 or later") {
			t.Errorf("config %s is inline (configs.content, Compose 2.23.1 or later); the runbook does not say so", name)
		}
	}
	df := string(readFile(t, "deploy/Dockerfile"))
	if strings.Contains(df, "RUN --mount") && (!strings.Contains(readme, "BuildKit") || !strings.Contains(df, "BuildKit")) {
		t.Error("the Dockerfile uses BuildKit's RUN --mount; the runbook and the Dockerfile must say it needs BuildKit")
	}
}

// TestComposeSecretsAreNotCommitted: the files the runbook has operators
// fill in with passwords are ignored by git; their examples are not.
func TestComposeSecretsAreNotCommitted(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	if out, err := exec.Command("git", "-C", repoRoot, "rev-parse", "--is-inside-work-tree").Output(); err != nil || strings.TrimSpace(string(out)) != "true" {
		t.Skip("not a git work tree")
	}
	blocks, _, prose := runbook(t)
	var copies []string
	for _, m := range regexp.MustCompile(`cp (deploy/[\w.-]+\.example) (deploy/[\w.-]+)`).FindAllStringSubmatch(prose+strings.Join(blocks, "\n"), -1) {
		copies = append(copies, m[1], m[2])
	}
	for _, f := range []string{"deploy/.env", "deploy/mysql.env"} {
		if !slices.Contains(copies, f) {
			t.Errorf("the runbook does not have %s copied from its example (it copies %v)", f, copies)
		}
	}
	for i := 0; i+1 < len(copies); i += 2 {
		example, filled := copies[i], copies[i+1]
		if err := exec.Command("git", "-C", repoRoot, "check-ignore", "-q", "--no-index", filled).Run(); err != nil {
			t.Errorf("%s (filled in with passwords) is not ignored by git", filled)
		}
		if err := exec.Command("git", "-C", repoRoot, "check-ignore", "-q", "--no-index", example).Run(); err == nil {
			t.Errorf("%s is ignored by git", example)
		}
	}
}
