// Package deploy holds no code: its tests check the deployment files in this
// folder against the code they deploy (ports, probes, the variables config
// reads, webhook topics, metric names), and run several replicas of the real
// binary on one database.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"rtbshopify/config"
)

// repoRoot is the repository's top folder, seen from this package.
const repoRoot = ".."

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file into generic maps.
func yamlDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// dig walks a decoded YAML/TOML tree by map keys and list indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func num(v any) int {
	n, _ := strconv.Atoi(str(v))
	return n
}

// configVars is the set of variables config reads.
func configVars() map[string]bool {
	m := map[string]bool{}
	for _, v := range config.Variables() {
		m[v] = true
	}
	return m
}

func TestEveryYAMLAndTOMLFileParses(t *testing.T) {
	var files []string
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "demo-output") {
			return filepath.SkipDir
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml", ".toml":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d YAML/TOML files: %v", len(files), files)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(repoRoot, f)
		if filepath.Ext(f) == ".toml" {
			var v map[string]any
			if _, err := toml.DecodeFile(f, &v); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
			continue
		}
		if docs := yamlDocs(t, rel); len(docs) == 0 {
			t.Errorf("%s holds no YAML document", rel)
		}
	}
}

// envExample reads deploy/.env.example: every NAME=value line, set or shown
// commented out with its default.
func envExample(t *testing.T) (set map[string]string, commented map[string]string) {
	t.Helper()
	set, commented = map[string]string{}, map[string]string{}
	line := regexp.MustCompile(`^(# )?([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "deploy/.env.example")))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if _, dup := set[m[2]]; dup {
			t.Errorf(".env.example sets %s twice", m[2])
		}
		if m[1] == "" {
			set[m[2]] = m[3]
		} else {
			commented[m[2]] = m[3]
		}
	}
	return set, commented
}

func TestEnvExampleListsEveryVariableConfigReadsAndNoOther(t *testing.T) {
	set, commented := envExample(t)
	listed := map[string]bool{}
	for k := range set {
		listed[k] = true
	}
	for k := range commented {
		if listed[k] {
			t.Errorf(".env.example both sets and comments out %s", k)
		}
		listed[k] = true
	}
	want := configVars()
	for v := range want {
		if !listed[v] {
			t.Errorf(".env.example does not list %s, which config reads", v)
		}
	}
	for v := range listed {
		if !want[v] {
			t.Errorf(".env.example lists %s, which config does not read", v)
		}
	}
	// A commented line shows the default: setting it must change nothing.
	load := func(env map[string]string) string {
		c, err := config.Load(func(k string) string { return env[k] })
		return c.String() + " " + errString(err)
	}
	def := load(nil)
	for k, v := range commented {
		if got := load(map[string]string{k: v}); got != def {
			t.Errorf(".env.example shows %s=%s as the default, but config's default differs:\n set:     %s\n default: %s", k, v, got, def)
		}
	}
	// The values that are set make a configuration serve accepts, apart
	// from the placeholders an operator replaces.
	for _, k := range []string{"APP_URL", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "ENCRYPTION_KEYS", "DATABASE_URL"} {
		if set[k] == "" {
			t.Errorf(".env.example leaves the required %s empty", k)
		}
	}
	c, _ := config.Load(func(k string) string { return set[k] })
	if err := config.ValidateDatabaseURL(c.DatabaseURL); err != nil || !strings.HasPrefix(c.DatabaseURL, "mysql://") {
		t.Errorf(".env.example DATABASE_URL %q: want a valid mysql:// URL (%v)", c.DatabaseURL, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// shutdownBudget reads the ordered-shutdown budget from main.go, so the
// grace periods below are checked against the code, not a copy of it.
func shutdownBudget(t *testing.T) time.Duration {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot, "main.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var budget time.Duration
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "shutdownBudget" || len(vs.Values) != 1 {
			return true
		}
		// N * time.Second
		if be, ok := vs.Values[0].(*ast.BinaryExpr); ok && be.Op == token.MUL {
			lit, ok1 := be.X.(*ast.BasicLit)
			sel, ok2 := be.Y.(*ast.SelectorExpr)
			if ok1 && ok2 && sel.Sel.Name == "Second" {
				n, _ := strconv.Atoi(lit.Value)
				budget = time.Duration(n) * time.Second
			}
		}
		return false
	})
	if budget == 0 {
		t.Fatal("main.go has no `shutdownBudget = N * time.Second`")
	}
	return budget
}

func TestDockerfileBuildsAStaticNonRootDistrolessImage(t *testing.T) {
	df := string(readFile(t, "deploy/Dockerfile"))
	var stages [][]string // instructions per stage
	for _, raw := range strings.Split(strings.ReplaceAll(df, "\\\n", " "), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], line)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("the binary is not built with CGO_ENABLED=0")
	}
	if !strings.Contains(df, "-X main.version=") || !bytes.Contains(readFile(t, "main.go"), []byte("var version = ")) {
		t.Error("the version is not stamped into main.version with -ldflags")
	}
	final := stages[len(stages)-1]
	from := strings.Fields(final[0])[1]
	if !strings.HasPrefix(from, "gcr.io/distroless/") && from != "scratch" {
		t.Errorf("final stage is %s; want distroless or scratch", from)
	}
	var user, expose, entry string
	for _, ins := range final {
		word, rest, _ := strings.Cut(ins, " ")
		switch strings.ToUpper(word) {
		case "USER":
			user = strings.TrimSpace(rest)
		case "EXPOSE":
			expose = strings.TrimSpace(rest)
		case "ENTRYPOINT":
			entry = strings.TrimSpace(rest)
		case "RUN":
			t.Errorf("final stage runs %q: it has no shell", ins)
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); user == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage runs as %q; want a non-root user", user)
	}
	_, port, _ := strings.Cut(config.DefaultListenAddr, ":")
	if expose != port {
		t.Errorf("EXPOSE %q; the app listens on %s by default", expose, port)
	}
	if !strings.HasPrefix(entry, "[") {
		t.Errorf("ENTRYPOINT %q must be exec form: there is no shell", entry)
	}
	di := string(readFile(t, "deploy/Dockerfile.dockerignore"))
	for _, must := range []string{".git", ".env"} {
		if !strings.Contains(di, must) {
			t.Errorf("Dockerfile.dockerignore does not keep %s out of the build context", must)
		}
	}
}

func TestComposeRunsMigrateThenTwoReplicasOnMySQL(t *testing.T) {
	docs := yamlDocs(t, "deploy/docker-compose.yml")
	services, _ := dig(docs[0], "services").(map[string]any)
	if services == nil {
		t.Fatal("no services")
	}
	mysql := services["mysql"]
	if img := str(dig(mysql, "image")); !strings.HasPrefix(img, "mysql:8") {
		t.Errorf("mysql image %q; want MySQL 8", img)
	}
	if dig(mysql, "healthcheck", "test") == nil {
		t.Error("mysql has no health check")
	}
	if vols, _ := dig(mysql, "volumes").([]any); len(vols) == 0 || !strings.HasSuffix(str(vols[0]), ":/var/lib/mysql") {
		t.Errorf("mysql keeps no volume at /var/lib/mysql: %v", vols)
	}
	migrate := services["migrate"]
	if str(dig(migrate, "command", 0)) != "migrate" || str(dig(migrate, "restart")) != "no" {
		t.Errorf("migrate service: command %v restart %v", dig(migrate, "command"), dig(migrate, "restart"))
	}
	if str(dig(migrate, "depends_on", "mysql", "condition")) != "service_healthy" {
		t.Error("migrate does not wait for a healthy mysql")
	}
	var apps []string
	for name, svc := range services {
		if str(dig(svc, "command", 0)) != "serve" {
			continue
		}
		apps = append(apps, name)
		if str(dig(svc, "depends_on", "migrate", "condition")) != "service_completed_successfully" {
			t.Errorf("%s does not wait for migrate to complete", name)
		}
		if str(dig(svc, "env_file")) != ".env" {
			t.Errorf("%s does not read its environment from .env", name)
		}
		if str(dig(svc, "read_only")) != "true" {
			t.Errorf("%s's filesystem is writable", name)
		}
		checkEnvNames(t, "compose "+name, dig(svc, "environment"))
		if g, err := time.ParseDuration(str(dig(svc, "stop_grace_period"))); err != nil || g <= shutdownBudget(t) {
			t.Errorf("%s stop_grace_period %v is not above the shutdown budget %v", name, dig(svc, "stop_grace_period"), shutdownBudget(t))
		}
	}
	sort.Strings(apps)
	if len(apps) != 2 {
		t.Fatalf("want two app replicas, got %v", apps)
	}
	proxy := services["proxy"]
	if ports, _ := dig(proxy, "ports").([]any); len(ports) != 1 || !strings.HasSuffix(str(ports[0]), ":8080") {
		t.Errorf("proxy publishes %v; want one port", dig(proxy, "ports"))
	}
	nginx := str(dig(docs[0], "configs", "nginx", "content"))
	for _, a := range apps {
		if !regexp.MustCompile(`(?m)^\s*server ` + a + `:8080 [^;]*\bresolve\b`).MatchString(nginx) {
			t.Errorf("the proxy does not send requests to %s, looked up again as Compose recreates it (server %s:8080 resolve)", a, a)
		}
	}
	// nginx resolves an upstream's names once at start unless the server
	// carries resolve (nginx 1.27.3 and later, with a zone) and a resolver
	// is set: Docker's, as its containers' addresses change on `up -d`.
	if !regexp.MustCompile(`(?m)^\s*resolver 127\.0\.0\.11\b[^;]*\bvalid=\d+s`).MatchString(nginx) ||
		!regexp.MustCompile(`(?m)^\s*zone \w+ \d+k;`).MatchString(nginx) {
		t.Errorf("the proxy's configuration lacks Docker's resolver (resolver 127.0.0.11 valid=…) or the upstream's zone:\n%s", nginx)
	}
	img := str(dig(proxy, "image"))
	m := regexp.MustCompile(`^nginx:(\d+)\.(\d+)(?:\.(\d+))?(?:-|$)`).FindStringSubmatch(img)
	if m == nil {
		t.Fatalf("proxy image %q: want nginx:MAJOR.MINOR[.PATCH]", img)
	}
	v := [3]int{num(m[1]), num(m[2]), num(m[3])}
	if m[3] == "" && v[1] == 27 { // 1.27 floats, but 1.27.0 to 1.27.2 lack resolve
		v[2] = 0
	}
	if v[0] < 1 || v[0] == 1 && (v[1] < 27 || v[1] == 27 && v[2] < 3) {
		t.Errorf("proxy image %s: the upstream's resolve needs nginx 1.27.3 or later", img)
	}
	mysqlEnv := string(readFile(t, "deploy/mysql.env.example"))
	set, _ := envExample(t)
	c, _ := config.Load(func(k string) string { return set[k] })
	if !strings.Contains(c.DatabaseURL, "@mysql:3306/"+str(dig(mysql, "environment", "MYSQL_DATABASE"))) ||
		!strings.Contains(c.DatabaseURL, str(dig(mysql, "environment", "MYSQL_USER"))+":") ||
		!strings.Contains(mysqlEnv, "MYSQL_PASSWORD=") {
		t.Errorf("DATABASE_URL %s does not match the mysql service", config.RedactURL(c.DatabaseURL))
	}
}

// checkEnvNames fails for a variable name config does not read.
func checkEnvNames(t *testing.T, where string, env any) {
	t.Helper()
	vars := configVars()
	switch e := env.(type) {
	case map[string]any:
		for k := range e {
			if !vars[k] {
				t.Errorf("%s sets %s, which config does not read", where, k)
			}
		}
	case []any:
		for _, item := range e {
			name := str(dig(item, "name"))
			if name == "" {
				name, _, _ = strings.Cut(str(item), "=")
			}
			if !vars[name] {
				t.Errorf("%s sets %s, which config does not read", where, name)
			}
		}
	}
}
