package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/internal/tsm"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

// tsmnodeEnv lists the TSMNODE_* variables cmd/tsmnode documents, from its source.
func tsmnodeEnv(t *testing.T) map[string]bool {
	b, err := os.ReadFile("../cmd/tsmnode/main.go")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`TSMNODE_[A-Z_]+[A-Z]`).FindAll(b, -1) {
		known[string(m)] = true
	}
	if len(known) < 6 {
		t.Fatalf("cmd/tsmnode documents only %v", known)
	}
	return known
}

// statefulSets returns the StatefulSets of the Kubernetes files, by name.
func statefulSets(t *testing.T) map[string]map[string]any {
	out := map[string]map[string]any{}
	paths, _ := filepath.Glob("kubernetes/*.yaml")
	for _, p := range paths {
		for _, d := range docs(t, p) {
			if d["kind"] == "StatefulSet" {
				out[get(d, "metadata", "name").(string)] = d
			}
		}
	}
	return out
}

// TestTSMNodeManifests: one StatefulSet per server node, of one replica, each with a volume
// of its own and a Secret of its own for its node key, mounted read-only, non-root on a
// read-only root file system, and only variables cmd/tsmnode knows.
func TestTSMNodeManifests(t *testing.T) {
	known := tsmnodeEnv(t)
	sets := statefulSets(t)
	if len(sets) != 2 {
		t.Fatalf("%d StatefulSets, want one per server node (2)", len(sets))
	}
	secrets := map[string]bool{}
	for name, s := range sets {
		c := get(s, "spec", "template", "spec", "containers", 0)
		switch {
		case get(s, "spec", "replicas") != 1:
			t.Errorf("%s: replicas %v, want 1 (a node is one party)", name, get(s, "spec", "replicas"))
		case get(s, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data":
			t.Errorf("%s: no volume of its own", name)
		case get(c, "securityContext", "readOnlyRootFilesystem") != true || get(s, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true:
			t.Errorf("%s: not non-root on a read-only root file system", name)
		}
		secret, _ := get(s, "spec", "template", "spec", "volumes", 0, "secret", "secretName").(string)
		if secret == "" || secrets[secret] {
			t.Errorf("%s: no Secret of its own for its node key", name)
		}
		secrets[secret] = true
		env := map[string]string{}
		for _, e := range get(c, "env").([]any) {
			n := get(e, "name").(string)
			if !known[n] {
				t.Errorf("%s sets %s, which cmd/tsmnode does not know", name, n)
			}
			env[n], _ = get(e, "value").(string)
		}
		if !strings.HasPrefix(env["TSMNODE_NODE_KEY"], "/secrets/") || !strings.HasPrefix(env["TSMNODE_DATABASE"], "/data/") {
			t.Errorf("%s: the node key is not read from its Secret, or the database is not on its volume", name)
		}
		if env["TSMNODE_METRICS_LISTEN"] == "" || get(s, "spec", "template", "metadata", "annotations", "prometheus.io/port") != strings.TrimPrefix(env["TSMNODE_METRICS_LISTEN"], ":") {
			t.Errorf("%s: metrics are not on their own listener, or the scrape annotation names another port", name)
		}
	}
	listed := map[string]bool{}
	for _, r := range get(docs(t, "kubernetes/kustomization.yaml")[0], "resources").([]any) {
		listed[r.(string)] = true
	}
	if !listed["tsmnode-1.yaml"] || !listed["tsmnode-2.yaml"] {
		t.Error("the kustomization does not list the nodes' manifests")
	}
}

func TestComposeNodes(t *testing.T) {
	d := docs(t, "compose.yaml")[0]
	for _, s := range []string{"tsmnode1", "tsmnode2"} {
		n := get(d, "services", s)
		if n == nil || get(n, "read_only") != true || get(n, "volumes", 0) == nil {
			t.Errorf("compose: %s missing, writable, or without its volume", s)
		}
		for k := range get(n, "environment").(map[string]any) {
			if !tsmnodeEnv(t)[k] {
				t.Errorf("compose: %s sets %s, which cmd/tsmnode does not know", s, k)
			}
		}
	}
}

// startNodes runs two tsmnode processes configured by the StatefulSets' environment (only
// the listen address, database and key paths moved to loopback and a temporary directory,
// and the peers filled in) and returns their URLs.
func startNodes(t *testing.T) []string {
	bin, err := vaultproc.BuildCmd(t.TempDir(), "tsmnode")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var ids []string
	for i := range 2 {
		k, err := tsm.LoadNodeKey(filepath.Join(dir, "node"+string(rune('1'+i))+".key"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID().String())
	}
	var urls []string
	for i, name := range []string{"sharevault-tsmnode-1", "sharevault-tsmnode-2"} {
		s := statefulSets(t)[name]
		var env []string
		for _, e := range get(s, "spec", "template", "spec", "containers", 0, "env").([]any) {
			n, v := get(e, "name").(string), get(e, "value").(string)
			switch n {
			case "TSMNODE_LISTEN", "TSMNODE_METRICS_LISTEN":
				v = "127.0.0.1:0"
			case "TSMNODE_DATABASE":
				v = filepath.Join(dir, "node"+string(rune('1'+i))+".db")
			case "TSMNODE_NODE_KEY":
				v = filepath.Join(dir, "node"+string(rune('1'+i))+".key")
			case "TSMNODE_PEERS":
				v = ids[1-i]
			}
			env = append(env, n+"="+v)
		}
		p, err := vaultproc.Start(bin, append(env, "PATH="+os.Getenv("PATH")), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		urls = append(urls, p.URL)
	}
	return urls
}
