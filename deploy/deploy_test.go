// Package deploy holds the deployment files; its tests check them without a Docker engine
// or a cluster: every manifest parses and says what matters, every VAULT_* variable is a
// real flag of the vault and every TSMNODE_* one a variable cmd/tsmnode reads, and two
// vault replicas configured as the Deployment is serve one MinIO bucket, with two TSM
// nodes configured as the StatefulSets are (TestTwoReplicas, also run by smoke.sh).
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sharevault/sharevault/internal/vaultproc"
	"gopkg.in/yaml.v3"
)

// docs parses every YAML document in a file.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, d)
	}
}

// get walks a parsed document: get(d, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func TestKubernetesManifests(t *testing.T) {
	kinds := map[string]map[string]any{}
	paths, _ := filepath.Glob("kubernetes/*.yaml")
	for _, p := range paths {
		for _, d := range docs(t, p) {
			kind, _ := d["kind"].(string)
			if d["apiVersion"] == nil || kind == "" {
				t.Errorf("%s: no apiVersion or kind", p)
			}
			if kind != "Kustomization" && get(d, "metadata", "name") == nil {
				t.Errorf("%s: %s without a name", p, kind)
			}
			kinds[kind] = d
		}
	}
	for _, k := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret", "Kustomization"} {
		if kinds[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	for _, r := range get(kinds["Kustomization"], "resources").([]any) {
		if _, err := os.Stat(filepath.Join("kubernetes", r.(string))); err != nil {
			t.Errorf("kustomization names %s: %v", r, err)
		}
	}
	dep := kinds["Deployment"]
	if n, _ := get(dep, "spec", "replicas").(int); n < 2 {
		t.Errorf("replicas %v, want at least 2", get(dep, "spec", "replicas"))
	}
	c := get(dep, "spec", "template", "spec", "containers", 0)
	for path, want := range map[string]any{
		"readinessProbe.httpGet.path":              "/readyz",
		"livenessProbe.httpGet.path":               "/healthz",
		"securityContext.readOnlyRootFilesystem":   true,
		"securityContext.allowPrivilegeEscalation": false,
		"securityContext.capabilities.drop.0":      "ALL",
	} {
		var keys []any
		for _, k := range strings.Split(path, ".") {
			if k == "0" {
				keys = append(keys, 0)
			} else {
				keys = append(keys, k)
			}
		}
		if got := get(c, keys...); got != want {
			t.Errorf("container %s = %v, want %v", path, got, want)
		}
	}
	if get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("pod does not run as non-root")
	}
	if get(c, "resources", "requests") == nil || get(c, "resources", "limits") == nil {
		t.Error("container has no resource requests and limits")
	}
	if min, _ := get(kinds["HorizontalPodAutoscaler"], "spec", "minReplicas").(int); min < 2 {
		t.Error("HPA may scale below 2 replicas")
	}
	env := map[string]string{}
	for _, e := range get(c, "env").([]any) {
		m := e.(map[string]any)
		if v, ok := m["value"].(string); ok {
			env[m["name"].(string)] = v
		}
	}
	checkTrustedProxies(t, "the Deployment", env["VAULT_TRUSTED_PROXIES"])
	if env["VAULT_METRICS_LISTEN"] == "" || get(dep, "spec", "template", "metadata", "annotations", "prometheus.io/port") != strings.TrimPrefix(env["VAULT_METRICS_LISTEN"], ":") {
		t.Error("metrics are not on their own listener, or the scrape annotation names another port")
	}
	for _, p := range paths {
		for _, d := range docs(t, p) {
			if d["kind"] == "Service" && get(d, "metadata", "name") == "sharevault-vault" {
				for _, p := range get(d, "spec", "ports").([]any) {
					if p.(map[string]any)["targetPort"] != "http" {
						t.Errorf("the vault's Service exposes %v: only the API belongs in it", p)
					}
				}
			}
		}
	}
}

// checkTrustedProxies fails for a trusted range wider than a /24 (IPv4) or /120 (IPv6): any
// peer inside a trusted range can claim any client address, so only the proxies' own
// addresses belong there (the Deployment once trusted all of 10.0.0.0/8).
func checkTrustedProxies(t *testing.T, where, list string) {
	t.Helper()
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			continue // one address
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			t.Errorf("%s: trusted proxy %q is not an address or CIDR", where, p)
			continue
		}
		if ones, bits := n.Mask.Size(); bits-ones > 8 {
			t.Errorf("%s trusts all of %s: name the proxies' own addresses", where, p)
		}
	}
}

func TestCompose(t *testing.T) {
	d := docs(t, "compose.yaml")[0]
	for _, s := range []string{"minio", "create-bucket", "vault"} {
		if get(d, "services", s) == nil {
			t.Errorf("compose has no %s service", s)
		}
	}
	v := get(d, "services", "vault")
	if get(v, "read_only") != true || !strings.HasPrefix(get(v, "environment", "VAULT_STORE").(string), "s3://") {
		t.Error("the compose vault is not read-only on S3")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	froms := regexp.MustCompile(`(?m)^FROM `).FindAllStringIndex(s, -1)
	if len(froms) != 2 {
		t.Errorf("%d stages, want a build stage and a final one", len(froms))
	}
	final := s[froms[len(froms)-1][0]:]
	for _, want := range []string{"distroless/static", "USER nonroot", "CGO_ENABLED=0", `ENTRYPOINT ["/vault"]`} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(final, "RUN ") {
		t.Error("the final stage runs commands: it should only copy the static binary")
	}
}

func TestSystemdUnit(t *testing.T) {
	for unit, state := range map[string]string{"sharevault-vault": "sharevault", "sharevault-tsmnode": "sharevault-tsmnode"} {
		t.Run(unit, func(t *testing.T) { checkUnit(t, "systemd/"+unit+".service", state) })
	}
}

func checkUnit(t *testing.T, path, state string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("unit line %q is not key=value", l)
			}
			kv[section+"."+k] = v
		}
	}
	for k, want := range map[string]string{"Service.NoNewPrivileges": "yes", "Service.ProtectSystem": "strict",
		"Service.DynamicUser": "yes", "Service.StateDirectory": state, "Service.StateDirectoryMode": "0700",
		"Service.KillSignal": "SIGTERM", "Install.WantedBy": "multi-user.target"} {
		if kv[k] != want {
			t.Errorf("%s = %q, want %q", k, kv[k], want)
		}
	}
}

var (
	buildOnce sync.Once
	vaultBin  string
	buildErr  error
)

func buildVault(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sharevault-deploy")
		if err != nil {
			buildErr = err
			return
		}
		vaultBin, buildErr = vaultproc.Build(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return vaultBin
}

// vaultEnv lists every VAULT_* variable the deployment files set.
func vaultEnv(t *testing.T) map[string]string {
	env := map[string]string{}
	dep := docs(t, "kubernetes/deployment.yaml")[0]
	for _, e := range get(dep, "spec", "template", "spec", "containers", 0, "env").([]any) {
		name, _ := get(e, "name").(string)
		if v, ok := get(e, "value").(string); ok && strings.HasPrefix(name, "VAULT_") {
			env[name] = v
		}
	}
	return env
}

func TestEveryVariableIsAFlag(t *testing.T) {
	out, _ := exec.Command(buildVault(t), "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 10 {
		t.Fatalf("vault -h listed %d flags:\n%s", len(flags), out)
	}
	var names []string
	for _, f := range []string{"Dockerfile", "compose.yaml", "systemd/sharevault-vault.service", "kubernetes/deployment.yaml"} {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`VAULT_[A-Z_]+`).FindAll(b, -1) {
			names = append(names, string(m))
		}
	}
	if len(names) < 5 {
		t.Fatalf("found only %d VAULT_ variables", len(names))
	}
	for _, n := range names {
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(n, "VAULT_")), "_", "-")
		if !flags[flag] {
			t.Errorf("%s is set in deploy/ but the vault has no --%s flag", n, flag)
		}
	}
}

// startReplica runs a vault with the environment env and returns its base URL.
func startReplica(t *testing.T, env []string) string {
	var logs bytes.Buffer
	p, err := vaultproc.Start(buildVault(t), env, &logs)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("replica log:\n%s", logs.String())
		}
	})
	return p.URL
}
