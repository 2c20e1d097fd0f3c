package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/client"
	"github.com/sharevault/sharevault/internal/miniotest"
)

// TestTwoReplicas runs two vault processes, configured with the Deployment's VAULT_*
// environment (only the listen addresses and the S3 endpoint changed, to loopback and a
// real MinIO), over one bucket, and two TSM server nodes configured with the StatefulSets'
// TSMNODE_* environment. A backup made through one replica restores through the other, and
// the restored share signs with the nodes.
func TestTwoReplicas(t *testing.T) {
	m := miniotest.Start(t)
	env := vaultEnv(t)
	bucket := strings.SplitN(env["VAULT_STORE"], "/", 4)[2] // s3://BUCKET/prefix?...
	if err := m.CreateBucket(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	env["VAULT_LISTEN"] = "127.0.0.1:0"
	env["VAULT_STORE"] += "&endpoint=" + m.Endpoint + "&path_style=true"
	env["VAULT_TRUSTED_PROXIES"] = ""
	env["VAULT_METRICS_LISTEN"] = "127.0.0.1:0"
	var vars []string
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	vars = append(vars, "AWS_ACCESS_KEY_ID="+m.AccessKey, "AWS_SECRET_ACCESS_KEY="+m.SecretKey, "HOME="+t.TempDir(), "PATH="+os.Getenv("PATH"))
	a, b := startReplica(t, vars), startReplica(t, vars)
	if a == b {
		t.Fatal("both replicas on one address")
	}

	dir := t.TempDir()
	nodes := startNodes(t)
	phone := func(name, url string) *client.Phone {
		p, err := client.OpenPhone(filepath.Join(dir, name), client.NewVault(url))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			u, id, _ := strings.Cut(n, "#")
			p.AddRemoteNode(u, id)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	old := phone("old-phone.db", a)
	keyID, err := old.KeyGen("eddsa", "smoke")
	if err != nil {
		t.Fatal(err)
	}
	words, _ := client.NewWords(12)
	keys, _ := words.Keys("")
	if _, err := old.Backup(keys, keyID); err != nil {
		t.Fatalf("backup through replica A: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "old-phone.db")); err != nil {
		t.Fatal(err)
	}

	found, err := client.FindKeys(client.NewVault(b), words.Phrase(), "")
	if err != nil || found.Position != 0 {
		t.Fatalf("finding the vault through replica B: %v", err)
	}
	fresh := phone("new-phone.db", b)
	info, err := fresh.Restore(found.Keys, keyID)
	if err != nil {
		t.Fatalf("restore through replica B: %v", err)
	}
	if info.KeyID != keyID {
		t.Fatalf("restored %s, want %s", info.KeyID, keyID)
	}
	if _, err := fresh.Sign(keyID, "smoke"); err != nil {
		t.Fatalf("the restored share does not sign: %v", err)
	}
}
