package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/internal/pgtest"
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

// statefulSets returns the StatefulSets of the Kubernetes files whose name starts with
// prefix, by name.
func statefulSets(t *testing.T, prefix string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, d := range kubernetes(t) {
		if name, _ := get(d, "metadata", "name").(string); d["kind"] == "StatefulSet" && strings.HasPrefix(name, prefix) {
			out[name] = d
		}
	}
	return out
}

// kubernetes returns every document of the Kubernetes files.
func kubernetes(t *testing.T) []map[string]any {
	var out []map[string]any
	paths, _ := filepath.Glob("kubernetes/*.yaml")
	for _, p := range paths {
		out = append(out, docs(t, p)...)
	}
	return out
}

// secretValue returns the value of key in the Secret called name.
func secretValue(t *testing.T, name, key string) string {
	for _, d := range kubernetes(t) {
		if d["kind"] == "Secret" && get(d, "metadata", "name") == name {
			v, _ := get(d, "stringData", key).(string)
			return v
		}
	}
	return ""
}

// TestTSMNodeManifests: one StatefulSet per server node, of two replicas over the node's
// PostgreSQL database (named by a Secret of its own, beside its node key, mounted
// read-only) and no volume, non-root on a read-only root file system, with only variables
// cmd/tsmnode knows; a headless Service names each replica; each node's PostgreSQL is a
// StatefulSet of its own, with a volume and a Secret of its own.
func TestTSMNodeManifests(t *testing.T) {
	known := tsmnodeEnv(t)
	sets := statefulSets(t, "sharevault-tsmnode-")
	if len(sets) != 2 {
		t.Fatalf("%d StatefulSets, want one per server node (2)", len(sets))
	}
	secrets, hosts := map[string]bool{}, map[string]bool{}
	for name, s := range sets {
		c := get(s, "spec", "template", "spec", "containers", 0)
		switch {
		case get(s, "spec", "replicas") != 2:
			t.Errorf("%s: replicas %v, want 2 (one node, two processes over its database)", name, get(s, "spec", "replicas"))
		case get(s, "spec", "volumeClaimTemplates") != nil:
			t.Errorf("%s: a volume of its own: its state belongs in its database", name)
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
			if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
				env[n] = secretValue(t, get(ref, "name").(string), get(ref, "key").(string))
			}
		}
		if !strings.HasPrefix(env["TSMNODE_NODE_KEY"], "/secrets/") || !strings.HasPrefix(env["TSMNODE_DATABASE"], "postgres://") {
			t.Errorf("%s: the node key is not read from its Secret, or the database is not PostgreSQL", name)
		}
		u, err := url.Parse(env["TSMNODE_DATABASE"])
		if err != nil {
			t.Fatalf("%s: its database URL: %v", name, err)
		}
		pg := statefulSets(t, u.Hostname())[u.Hostname()]
		if pg == nil || get(pg, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" {
			t.Errorf("%s: its database's host %s is no PostgreSQL StatefulSet with a volume", name, u.Hostname())
		}
		if hosts[u.Hostname()] {
			t.Errorf("%s shares its PostgreSQL, %s, with another node: both nodes' shares in one place", name, u.Hostname())
		}
		hosts[u.Hostname()] = true
		if env["TSMNODE_METRICS_LISTEN"] == "" || get(s, "spec", "template", "metadata", "annotations", "prometheus.io/port") != strings.TrimPrefix(env["TSMNODE_METRICS_LISTEN"], ":") {
			t.Errorf("%s: metrics are not on their own listener, or the scrape annotation names another port", name)
		}
		headless := false
		for _, d := range kubernetes(t) {
			if d["kind"] == "Service" && get(d, "metadata", "name") == get(s, "spec", "serviceName") {
				headless = get(d, "spec", "clusterIP") == "None"
			}
		}
		if !headless {
			t.Errorf("%s: no headless Service names its replicas", name)
		}
	}
	pgSecrets, values := map[string]bool{}, map[string]string{}
	for name, pg := range statefulSets(t, "sharevault-postgres-") {
		mine := 0
		for _, e := range get(pg, "spec", "template", "spec", "containers", 0, "env").([]any) {
			s, _ := get(e, "valueFrom", "secretKeyRef", "name").(string)
			if s == "" {
				continue
			}
			if pgSecrets[s] {
				t.Errorf("%s reads %s, another PostgreSQL's Secret", name, s)
			}
			mine++
			for _, key := range []string{"password", "node-password"} {
				v := secretValue(t, s, key)
				if other, ok := values[v]; ok && other != s {
					t.Errorf("%s's %s is %s's too (%q): a replace would give both one password", s, key, other, v)
				}
				values[v] = s
			}
		}
		if mine == 0 {
			t.Errorf("%s: its passwords are not from a Secret", name)
		}
		for _, e := range get(pg, "spec", "template", "spec", "containers", 0, "env").([]any) {
			if s, _ := get(e, "valueFrom", "secretKeyRef", "name").(string); s != "" {
				pgSecrets[s] = true
			}
		}
	}
	if len(pgSecrets) != 2 {
		t.Errorf("the PostgreSQL StatefulSets read %d Secrets, want one each (2)", len(pgSecrets))
	}
	listed := map[string]bool{}
	for _, r := range get(docs(t, "kubernetes/kustomization.yaml")[0], "resources").([]any) {
		listed[r.(string)] = true
	}
	if !listed["tsmnode-1.yaml"] || !listed["tsmnode-2.yaml"] || !listed["postgres.yaml"] {
		t.Error("the kustomization does not list the nodes' and PostgreSQL's manifests")
	}
}

// TestComposeNodes: two replicas of each node, read-only, each on its node's PostgreSQL
// (one per node, with a volume of its own) and its node key's volume.
func TestComposeNodes(t *testing.T) {
	d := docs(t, "compose.yaml")[0]
	hostOf := map[string][]string{}
	for _, s := range []string{"tsmnode1a", "tsmnode1b", "tsmnode2a", "tsmnode2b"} {
		n := get(d, "services", s)
		if n == nil || get(n, "read_only") != true || get(n, "volumes", 0) == nil {
			t.Errorf("compose: %s missing, writable, or without its node key's volume", s)
			continue
		}
		env := get(n, "environment").(map[string]any)
		for k := range env {
			if !tsmnodeEnv(t)[k] {
				t.Errorf("compose: %s sets %s, which cmd/tsmnode does not know", s, k)
			}
		}
		db, _ := env["TSMNODE_DATABASE"].(string)
		u, err := url.Parse(db)
		if err != nil || u.Scheme != "postgres" {
			t.Errorf("compose: %s is not on PostgreSQL", s)
			continue
		}
		if get(d, "services", u.Hostname(), "volumes", 0) == nil {
			t.Errorf("compose: %s's PostgreSQL, %s, is not a service with a volume", s, u.Hostname())
		}
		hostOf[s[:len(s)-1]] = append(hostOf[s[:len(s)-1]], u.Hostname())
	}
	if h1, h2 := hostOf["tsmnode1"], hostOf["tsmnode2"]; len(h1) != 2 || len(h2) != 2 || h1[0] != h1[1] || h2[0] != h2[1] || h1[0] == h2[0] {
		t.Errorf("compose: each node's replicas must share its PostgreSQL, and the nodes must not: %v, %v", h1, h2)
	}
}

// startNodes runs two nodes of two tsmnode processes each, configured by the StatefulSets'
// environment (only the listen addresses and the key paths moved to loopback and a
// temporary directory, the database to a real PostgreSQL of its own, and the peers filled in), and
// returns each node as a phone names it ("URL|URL#NODE-ID").
func startNodes(t *testing.T) []string {
	pgs := []*pgtest.Server{pgtest.Must(t), pgtest.Must(t)} // a PostgreSQL each, as deployed
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
	var nodes []string
	for i, name := range []string{"sharevault-tsmnode-1", "sharevault-tsmnode-2"} {
		s := statefulSets(t, name)[name]
		db := pgs[i].Database(t)
		var env []string
		for _, e := range get(s, "spec", "template", "spec", "containers", 0, "env").([]any) {
			n, _ := get(e, "name").(string)
			v, _ := get(e, "value").(string)
			switch n {
			case "TSMNODE_LISTEN", "TSMNODE_METRICS_LISTEN":
				v = "127.0.0.1:0"
			case "TSMNODE_DATABASE":
				v = db
			case "TSMNODE_NODE_KEY":
				v = filepath.Join(dir, "node"+string(rune('1'+i))+".key")
			case "TSMNODE_PEERS":
				v = ids[1-i]
			}
			env = append(env, n+"="+v)
		}
		var urls []string
		for range get(s, "spec", "replicas").(int) {
			p, err := vaultproc.Start(bin, append(env, "PATH="+os.Getenv("PATH")), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Stop)
			urls = append(urls, p.URL)
		}
		nodes = append(nodes, strings.Join(urls, "|")+"#"+ids[i])
	}
	return nodes
}
