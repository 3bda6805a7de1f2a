package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfileInstructions lists the Dockerfile's instructions (continuation
// lines joined, comments dropped).
func dockerfileInstructions(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, raw := range strings.Split(strings.ReplaceAll(string(readFile(t, "deploy/Dockerfile")), "\\\n", " "), "\n") {
		if line := strings.TrimSpace(raw); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// TestDockerfileBuildsWithTheGoOfGoMod: the build stage's Go is the
// version go.mod names, so the image is built by the toolchain the tests ran.
func TestDockerfileBuildsWithTheGoOfGoMod(t *testing.T) {
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	want := string(m[1])
	var arg string
	built := false
	for _, ins := range dockerfileInstructions(t) {
		if v, ok := strings.CutPrefix(ins, "ARG GO_VERSION="); ok {
			arg = v
		}
		if strings.HasPrefix(ins, "FROM golang:${GO_VERSION}") {
			built = true
		}
	}
	if arg != want {
		t.Errorf("Dockerfile ARG GO_VERSION=%s; go.mod says go %s", arg, want)
	}
	if !built {
		t.Error("no build stage FROM golang:${GO_VERSION}")
	}
}

// TestDockerImageLeavesConfigurationToTheEnvironment: the image sets no
// variable config reads. One set there would win over config's own
// fallbacks: LISTEN_ADDR, say, would hide the PORT the Shopify CLI sets.
func TestDockerImageLeavesConfigurationToTheEnvironment(t *testing.T) {
	vars := configVars()
	for _, ins := range dockerfileInstructions(t) {
		word, rest, _ := strings.Cut(ins, " ")
		if !strings.EqualFold(word, "ENV") {
			continue
		}
		for _, f := range strings.Fields(rest) {
			name, _, _ := strings.Cut(f, "=")
			if vars[name] {
				t.Errorf("the Dockerfile sets %s (%q), which config reads: leave it to the deployment", name, ins)
			}
		}
	}
	if !vars["LISTEN_ADDR"] || !vars["PORT"] {
		t.Fatal("config reads neither LISTEN_ADDR nor PORT; this test looks for the wrong names")
	}
}

// ignorePattern is one line of a .dockerignore file, compiled as BuildKit
// does (github.com/moby/patternmatcher): `**` any number of folders, `*`
// and `?` within one, `!` re-includes.
type ignorePattern struct {
	text      string
	exclusion bool
	re        *regexp.Regexp
}

func readDockerIgnore(t *testing.T, rel string) []ignorePattern {
	t.Helper()
	var out []ignorePattern
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, rel)))
	for sc.Scan() {
		p := sc.Text()
		if strings.HasPrefix(p, "#") {
			continue
		}
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ip := ignorePattern{text: p}
		if p[0] == '!' {
			ip.exclusion, p = true, strings.TrimSpace(p[1:])
		}
		p = filepath.ToSlash(filepath.Clean(p))
		if len(p) > 1 && p[0] == '/' {
			p = p[1:]
		}
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case c == '*' && i+1 < len(p) && p[i+1] == '*':
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
				}
				if i+1 == len(p) {
					re.WriteString(".*")
				} else {
					re.WriteString("(.*/)?")
				}
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			case c == '\\' && i+1 < len(p):
				i++
				re.WriteString(regexp.QuoteMeta(string(p[i])))
			case strings.IndexByte(".+()|{}$", c) >= 0:
				re.WriteString(`\` + string(c))
			default: // letters, and [...] classes as filepath.Match has them
				re.WriteByte(c)
			}
		}
		re.WriteString("$")
		ip.re = regexp.MustCompile(re.String())
		out = append(out, ip)
	}
	return out
}

// ignored reports whether the build context leaves out a file (a path
// relative to the context, with slashes): the last pattern matching it or
// one of its folders decides.
func ignored(patterns []ignorePattern, file string) bool {
	dirs := strings.Split(file, "/")
	matched := false
	for _, p := range patterns {
		if p.exclusion != matched {
			continue
		}
		match := p.re.MatchString(file)
		for i := 1; !match && i < len(dirs); i++ {
			match = p.re.MatchString(strings.Join(dirs[:i], "/"))
		}
		if match {
			matched = !p.exclusion
		}
	}
	return matched
}

// buildInputs lists what `go build .` reads, relative to the repository
// root: go.mod, go.sum, and the Go and embedded files of every package of
// this module the binary imports, as `go list` reports them for the
// image's target. Every non-test Go file of the module counts too (under
// testdata and dot folders the go command looks at none), so a package
// imported tomorrow is not already left out.
func buildInputs(t *testing.T) (files []string, embedded []string) {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	seen := map[string]bool{"go.mod": true, "go.sum": true}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		for _, f := range p.GoFiles {
			rel, _ := filepath.Rel(root, filepath.Join(p.Dir, f))
			seen[filepath.ToSlash(rel)] = true
		}
		for _, f := range p.EmbedFiles {
			rel, _ := filepath.Rel(root, filepath.Join(p.Dir, f))
			seen[filepath.ToSlash(rel)] = true
			embedded = append(embedded, filepath.ToSlash(rel))
		}
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			rel, _ := filepath.Rel(root, path)
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range seen {
		files = append(files, f)
	}
	slices.Sort(files)
	return files, embedded
}

func TestDockerIgnoreKeepsEverythingTheBuildNeeds(t *testing.T) {
	patterns := readDockerIgnore(t, "deploy/Dockerfile.dockerignore")
	files, embedded := buildInputs(t)
	for _, dir := range []string{"models/migrations/", "shopify/schema/", "shopify/ui/static/"} {
		if !slices.ContainsFunc(embedded, func(f string) bool { return strings.HasPrefix(f, dir) }) {
			t.Errorf("go list reports no embedded file under %s (it reports %d embedded files)", dir, len(embedded))
		}
	}
	if len(files) < 30 {
		t.Fatalf("only %d build inputs: %v", len(files), files)
	}
	for _, f := range files {
		if ignored(patterns, f) {
			t.Errorf("Dockerfile.dockerignore leaves %s out of the build context; the build needs it", f)
		}
	}
	// And it does leave out what it is for.
	for _, f := range []string{".git/HEAD", ".env", ".env.local", "main_test.go", "models/models_test.go",
		"rtbshopify.db", "deploy/.env", "deploy/mysql.env", "demo-output/index.html", "sync/e2e/testdata/x.json"} {
		if !ignored(patterns, f) {
			t.Errorf("Dockerfile.dockerignore lets %s into the build context", f)
		}
	}
}
