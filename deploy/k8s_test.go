package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"rtbshopify/config"
	"rtbshopify/models"
)

// The Jobs in deploy/k8s, by name.
const (
	migrateJob     = "rtbshopify-migrate"
	rotateJob      = "rtbshopify-rotate-keys"
	rotateCheckJob = "rtbshopify-rotate-keys-check"
)

// k8sObjects loads every manifest in deploy/k8s by kind, and Jobs by
// "Job/<name>".
func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "deploy/k8s/*.yaml"))
	objs := map[string]map[string]any{}
	for _, f := range files {
		rel, _ := filepath.Rel(repoRoot, f)
		for _, d := range yamlDocs(t, rel) {
			kind := str(d["kind"])
			if kind == "" || str(d["apiVersion"]) == "" || str(dig(d, "metadata", "name")) == "" {
				t.Errorf("%s: a document without kind, apiVersion or name", rel)
			}
			key := kind
			if kind == "Job" {
				key += "/" + str(dig(d, "metadata", "name"))
			}
			if objs[key] != nil {
				t.Errorf("two %s manifests", key)
			}
			objs[key] = d
		}
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	objs := k8sObjects(t)
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job/" + migrateJob, "Secret", "ConfigMap", "NetworkPolicy"} {
		if objs[kind] == nil {
			t.Fatalf("deploy/k8s has no %s", kind)
		}
	}
	dep := objs["Deployment"]
	if n := num(dig(dep, "spec", "replicas")); n != 3 {
		t.Errorf("Deployment replicas %d; want 3", n)
	}
	labels, _ := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	pod := dig(dep, "spec", "template", "spec")
	c := dig(pod, "containers", 0)
	if args := strs(dig(c, "args")); !slices.Equal(args, []string{"serve"}) {
		t.Errorf("container args %v; want serve", args)
	}
	_, port, _ := strings.Cut(config.DefaultListenAddr, ":")
	if str(dig(c, "ports", 0, "containerPort")) != port || str(dig(c, "ports", 0, "name")) != "http" {
		t.Errorf("container port %v; the app listens on %s", dig(c, "ports"), port)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if str(dig(c, probe, "httpGet", "path")) != path || str(dig(c, probe, "httpGet", "port")) != "http" {
			t.Errorf("%s %v; want GET %s on the http port", probe, dig(c, probe), path)
		}
	}
	if dig(c, "resources", "requests", "cpu") == nil || dig(c, "resources", "requests", "memory") == nil || dig(c, "resources", "limits", "memory") == nil {
		t.Errorf("resources %v: want cpu and memory requests and a memory limit", dig(c, "resources"))
	}
	checkSecurity(t, "Deployment", pod, c)
	pause := num(dig(c, "lifecycle", "preStop", "sleep", "seconds"))
	if pause < 1 {
		t.Errorf("no preStop sleep: %v", dig(c, "lifecycle"))
	}
	grace := time.Duration(num(dig(pod, "terminationGracePeriodSeconds"))) * time.Second
	if budget := shutdownBudget(t); grace <= time.Duration(pause)*time.Second+budget {
		t.Errorf("terminationGracePeriodSeconds %v is not above the preStop pause %ds plus the shutdown budget %v", grace, pause, budget)
	}
	cm, secret := objs["ConfigMap"], objs["Secret"]
	checkEnvFrom(t, "Deployment", c, cm, secret)
	checkEnvNames(t, "Deployment", dig(c, "env"))
	checkEnvNames(t, "ConfigMap", dig(cm, "data"))
	checkEnvNames(t, "Secret", dig(secret, "stringData"))
	for _, k := range []string{"SHOPIFY_API_SECRET", "ENCRYPTION_KEYS", "DATABASE_URL"} {
		if dig(secret, "stringData", k) == nil {
			t.Errorf("the Secret does not hold %s", k)
		}
		if dig(cm, "data", k) != nil {
			t.Errorf("the ConfigMap holds the secret %s", k)
		}
	}
	for _, k := range []string{"APP_URL", "SHOPIFY_API_KEY"} {
		if dig(cm, "data", k) == nil && dig(secret, "stringData", k) == nil {
			t.Errorf("neither the ConfigMap nor the Secret sets the required %s", k)
		}
	}

	svc := objs["Service"]
	if !selects(dig(svc, "spec", "selector"), labels) || str(dig(svc, "spec", "ports", 0, "targetPort")) != "http" {
		t.Errorf("Service %v does not reach the pods' http port", dig(svc, "spec"))
	}
	pdb := objs["PodDisruptionBudget"]
	if !selects(dig(pdb, "spec", "selector", "matchLabels"), labels) || num(dig(pdb, "spec", "minAvailable")) < 1 {
		t.Errorf("PodDisruptionBudget %v", dig(pdb, "spec"))
	}
	hpa := objs["HorizontalPodAutoscaler"]
	if str(dig(hpa, "spec", "scaleTargetRef", "name")) != str(dig(dep, "metadata", "name")) ||
		num(dig(hpa, "spec", "minReplicas")) < 3 || num(dig(hpa, "spec", "maxReplicas")) <= num(dig(hpa, "spec", "minReplicas")) {
		t.Errorf("HorizontalPodAutoscaler %v", dig(hpa, "spec"))
	}

	selected := map[string]any{"Deployment": labels}
	for name, args := range map[string][]string{migrateJob: {"migrate"}} {
		job := objs["Job/"+name]
		checkJob(t, job, args, c, cm, secret)
		selected[name] = dig(job, "spec", "template", "metadata", "labels")
	}
	checkNetworkPolicy(t, objs["NetworkPolicy"], selected)
}

// TestKubernetesRotateKeysJobs: the runbook's key rotation runs as Jobs on
// the replicas' image and configuration, `rotate-keys` retried (it resumes)
// and `rotate-keys --check` not (its exit 1 is the answer), both allowed to
// reach MySQL.
func TestKubernetesRotateKeysJobs(t *testing.T) {
	objs := k8sObjects(t)
	dep, cm, secret := objs["Deployment"], objs["ConfigMap"], objs["Secret"]
	c := dig(dep, "spec", "template", "spec", "containers", 0)
	selected := map[string]any{}
	for name, args := range map[string][]string{rotateJob: {"rotate-keys"}, rotateCheckJob: {"rotate-keys", "--check"}} {
		job := objs["Job/"+name]
		if job == nil {
			t.Fatalf("deploy/k8s has no Job %s", name)
		}
		checkJob(t, job, args, c, cm, secret)
		selected[name] = dig(job, "spec", "template", "metadata", "labels")
	}
	if n := num(dig(objs["Job/"+rotateJob], "spec", "backoffLimit")); n < 1 {
		t.Errorf("the rotate-keys Job's backoffLimit %d: a retry resumes the rotation", n)
	}
	if v := dig(objs["Job/"+rotateCheckJob], "spec", "backoffLimit"); v == nil || num(v) != 0 {
		t.Errorf("the --check Job's backoffLimit %v: want 0, its exit 1 is an answer, not a fault", v)
	}
	checkNetworkPolicy(t, objs["NetworkPolicy"], selected)

	// The runbook applies the files it names and reads the labels the Job
	// controller sets.
	readme := string(readFile(t, "deploy/README.md"))
	for _, f := range []string{"deploy/k8s/rotate-keys-job.yaml", "deploy/k8s/rotate-keys-check-job.yaml"} {
		if !strings.Contains(readme, "kubectl apply -f "+f) {
			t.Errorf("the runbook does not apply %s", f)
		}
	}
	for _, name := range []string{rotateJob, rotateCheckJob} {
		if !strings.Contains(readme, "job/"+name) {
			t.Errorf("the runbook does not follow job/%s", name)
		}
	}
	if strings.Contains(readme, "--env-from") {
		t.Error("the runbook uses --env-from, which kubectl run does not have")
	}
}

// checkJob wants a Job that runs the binary with args (commands and flags
// main.go implements) once, on the Deployment's image, environment and
// security settings.
func checkJob(t *testing.T, job map[string]any, args []string, deployed, cm, secret any) {
	t.Helper()
	if job == nil {
		t.Errorf("no Job runs %v", args)
		return
	}
	name := str(dig(job, "metadata", "name"))
	pod := dig(job, "spec", "template", "spec")
	c := dig(pod, "containers", 0)
	if got := strs(dig(c, "args")); !slices.Equal(got, args) || str(dig(pod, "restartPolicy")) != "Never" {
		t.Errorf("Job %s runs %v with restartPolicy %v; want %v, Never", name, got, dig(pod, "restartPolicy"), args)
	}
	checkCLIArgs(t, "Job "+name, strs(dig(c, "args")))
	if dig(c, "command") != nil {
		t.Errorf("Job %s overrides the image's entrypoint: %v", name, dig(c, "command"))
	}
	if str(dig(c, "image")) != str(dig(deployed, "image")) {
		t.Errorf("Job %s's image %v differs from the Deployment's %v", name, dig(c, "image"), dig(deployed, "image"))
	}
	checkSecurity(t, "Job "+name, pod, c)
	checkEnvFrom(t, "Job "+name, c, cm, secret)
	checkEnvNames(t, "Job "+name, dig(c, "env"))
}

// checkSecurity wants a non-root, read-only, unprivileged container.
func checkSecurity(t *testing.T, what string, pod, c any) {
	t.Helper()
	if str(dig(pod, "securityContext", "runAsNonRoot")) != "true" || num(dig(pod, "securityContext", "runAsUser")) == 0 {
		t.Errorf("%s pod securityContext %v: want runAsNonRoot and a non-zero runAsUser", what, dig(pod, "securityContext"))
	}
	sc := dig(c, "securityContext")
	if str(dig(sc, "readOnlyRootFilesystem")) != "true" || str(dig(sc, "allowPrivilegeEscalation")) != "false" ||
		str(dig(sc, "capabilities", "drop", 0)) != "ALL" {
		t.Errorf("%s container securityContext %v: want read-only, no privilege escalation, no capabilities", what, sc)
	}
}

// checkEnvFrom wants the container to take its environment from the
// ConfigMap and the Secret.
func checkEnvFrom(t *testing.T, what string, c, cm, secret any) {
	t.Helper()
	refs := map[string]bool{}
	for i := 0; dig(c, "envFrom", i) != nil; i++ {
		refs["cm:"+str(dig(c, "envFrom", i, "configMapRef", "name"))] = true
		refs["s:"+str(dig(c, "envFrom", i, "secretRef", "name"))] = true
	}
	if !refs["cm:"+str(dig(cm, "metadata", "name"))] || !refs["s:"+str(dig(secret, "metadata", "name"))] {
		t.Errorf("%s does not take its environment from the ConfigMap and the Secret: %v", what, dig(c, "envFrom"))
	}
}

// selects reports whether every label of a selector is on the pods.
func selects(selector any, labels map[string]any) bool {
	m, _ := selector.(map[string]any)
	if len(m) == 0 {
		return false
	}
	for k, v := range m {
		if str(labels[k]) != str(v) {
			return false
		}
	}
	return true
}

// checkNetworkPolicy wants egress to DNS, MySQL and HTTPS only (plus plain
// HTTP exactly when Remove The Background's default base is http://).
func checkNetworkPolicy(t *testing.T, np map[string]any, pods map[string]any) {
	t.Helper()
	types := dig(np, "spec", "policyTypes")
	if !strings.Contains(strings.Join(strs(types), ","), "Egress") {
		t.Errorf("NetworkPolicy policyTypes %v lacks Egress", types)
	}
	for what, l := range pods {
		labels, _ := l.(map[string]any)
		if !podSelected(dig(np, "spec", "podSelector"), labels) {
			t.Errorf("NetworkPolicy does not select the %s's pods (%v)", what, l)
		}
	}
	var ports []string
	for i := 0; dig(np, "spec", "egress", i) != nil; i++ {
		for j := 0; dig(np, "spec", "egress", i, "ports", j) != nil; j++ {
			p := dig(np, "spec", "egress", i, "ports", j)
			ports = append(ports, str(dig(p, "protocol"))+"/"+str(dig(p, "port")))
		}
		if dig(np, "spec", "egress", i, "to") == nil {
			t.Errorf("egress rule %d allows every destination", i)
		}
	}
	sort.Strings(ports)
	want := []string{"TCP/3306", "TCP/443", "TCP/53", "UDP/53"}
	if strings.HasPrefix(config.DefaultRTBBaseURL, "http://") {
		want = append(want, "TCP/80")
	}
	sort.Strings(want)
	if strings.Join(ports, " ") != strings.Join(want, " ") {
		t.Errorf("NetworkPolicy egress ports %v; want exactly %v", ports, want)
	}
}

// podSelected reports whether a label selector (matchLabels and
// matchExpressions with In, NotIn, Exists, DoesNotExist) selects pods with
// these labels. An empty selector selects every pod.
func podSelected(selector any, labels map[string]any) bool {
	ml, _ := dig(selector, "matchLabels").(map[string]any)
	for k, v := range ml {
		if l, ok := labels[k]; !ok || str(l) != str(v) {
			return false
		}
	}
	for i := 0; dig(selector, "matchExpressions", i) != nil; i++ {
		e := dig(selector, "matchExpressions", i)
		l, has := labels[str(dig(e, "key"))]
		in := has && slices.Contains(strs(dig(e, "values")), str(l))
		switch str(dig(e, "operator")) {
		case "In":
			if !in {
				return false
			}
		case "NotIn":
			if in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = str(x)
	}
	return out
}

// webhookTopics reads the topics the app handles from the shopify
// package's Topic* constants.
func webhookTopics(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "shopify", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if strings.HasPrefix(name.Name, "Topic") && i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						topics = append(topics, s)
					}
				}
			}
			return false
		})
	}
	sort.Strings(topics)
	if len(topics) < 6 {
		t.Fatalf("found only topics %v in package shopify", topics)
	}
	return topics
}

func TestShopifyAppTOMLSubscribesEveryTopicTheAppHandles(t *testing.T) {
	var app map[string]any
	if _, err := toml.Decode(string(readFile(t, "deploy/shopify.app.toml")), &app); err != nil {
		t.Fatal(err)
	}
	var got []string
	compliance := map[string]bool{}
	subs, _ := dig(app, "webhooks", "subscriptions").([]map[string]any)
	for _, s := range subs {
		if str(s["uri"]) != "/webhooks" {
			t.Errorf("subscription %v is not sent to /webhooks", s)
		}
		got = append(got, strs(toAny(s["topics"]))...)
		for _, c := range strs(toAny(s["compliance_topics"])) {
			got = append(got, c)
			compliance[c] = true
		}
	}
	sort.Strings(got)
	if want := webhookTopics(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("shopify.app.toml subscribes %v; the app handles %v", got, want)
	}
	for _, c := range []string{"customers/data_request", "customers/redact", "shop/redact"} {
		if !compliance[c] {
			t.Errorf("%s is not a compliance topic in shopify.app.toml", c)
		}
	}
	if v := str(dig(app, "webhooks", "api_version")); !regexp.MustCompile(`^\d{4}-(01|04|07|10)$`).MatchString(v) {
		t.Errorf("webhooks api_version %q", v)
	}
	if s := str(dig(app, "access_scopes", "scopes")); s != config.DefaultScopes {
		t.Errorf("access_scopes %q; the app asks for %q", s, config.DefaultScopes)
	}
	if str(dig(app, "embedded")) != "true" {
		t.Error("shopify.app.toml: embedded is not true")
	}
	for _, u := range strs(toAny(dig(app, "auth", "redirect_urls"))) {
		if !strings.HasSuffix(u, "/auth/callback") {
			t.Errorf("redirect URL %s is not the app's /auth/callback", u)
		}
	}

	var web map[string]any
	if _, err := toml.Decode(string(readFile(t, "deploy/web/shopify.web.toml")), &web); err != nil {
		t.Fatal(err)
	}
	if dev := str(dig(web, "commands", "dev")); !strings.Contains(dev, "serve") {
		t.Errorf("shopify.web.toml dev command %q does not run serve", dev)
	}
	if p := str(dig(web, "webhooks_path")); p != "" && p != "/webhooks" {
		t.Errorf("shopify.web.toml webhooks_path %q", p)
	}
}

// toAny turns a TOML array into []any whatever its element type.
func toAny(v any) any {
	switch l := v.(type) {
	case []string:
		out := make([]any, len(l))
		for i := range l {
			out[i] = l[i]
		}
		return out
	}
	return v
}

func TestSystemdUnitOutwaitsTheShutdownBudget(t *testing.T) {
	unit := string(readFile(t, "deploy/rtbshopify.service"))
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("no TimeoutStopSec")
	}
	if n, _ := strconv.Atoi(m[1]); time.Duration(n)*time.Second <= shutdownBudget(t) {
		t.Errorf("TimeoutStopSec=%s is not above the shutdown budget %v", m[1], shutdownBudget(t))
	}
}

func TestAlertRulesUseMetricsTheAppExports(t *testing.T) {
	docs := yamlDocs(t, "deploy/prometheus-alerts.yml")
	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`\brtbshopify_[a-z_]+`)
	rules := 0
	for i := 0; dig(docs[0], "groups", i) != nil; i++ {
		for j := 0; dig(docs[0], "groups", i, "rules", j) != nil; j++ {
			r := dig(docs[0], "groups", i, "rules", j)
			rules++
			expr := str(dig(r, "expr"))
			if str(dig(r, "alert")) == "" || expr == "" || dig(r, "annotations", "summary") == nil {
				t.Errorf("rule %v lacks alert, expr or summary", r)
			}
			for _, m := range metric.FindAllString(expr, -1) {
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suf)
				}
				if !exported[base] {
					t.Errorf("alert %s uses %s, which the app does not export (it exports %v)", str(dig(r, "alert")), m, keys(exported))
				}
			}
			for _, s := range regexp.MustCompile(`state=~?"([^"]+)"`).FindAllStringSubmatch(expr, -1) {
				for _, st := range strings.Split(s[1], "|") {
					if !isJobState(st) {
						t.Errorf("alert %s names job state %q, which does not exist", str(dig(r, "alert")), st)
					}
				}
			}
			for _, s := range regexp.MustCompile(`route="([^"]+)"`).FindAllStringSubmatch(expr, -1) {
				if !routeExists(t, s[1]) {
					t.Errorf("alert %s names route %s, which the app does not serve", str(dig(r, "alert")), s[1])
				}
			}
		}
	}
	if rules < 5 {
		t.Errorf("only %d alert rules", rules)
	}
}

// exportedMetrics collects the rtbshopify_* metric names named in the
// app's (non-test) Go sources.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	re := regexp.MustCompile(`"(rtbshopify_[a-z_]+)"`)
	walkGo(t, func(src []byte) {
		for _, m := range re.FindAllSubmatch(src, -1) {
			out[string(m[1])] = true
		}
	})
	if len(out) == 0 {
		t.Fatal("found no rtbshopify_* metric in the sources")
	}
	return out
}

func walkGo(t *testing.T, fn func([]byte)) {
	t.Helper()
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil {
			fn(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func routeExists(t *testing.T, route string) bool {
	found := false
	walkGo(t, func(src []byte) {
		if strings.Contains(string(src), `"`+route+`"`) {
			found = true
		}
	})
	return found
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isJobState(s string) bool { return slices.Contains(models.JobStates, s) }
