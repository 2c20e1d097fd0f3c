// Package bindtest holds AppDemo, an app written against the Java bindings of package
// client, and the test that runs it on this machine's JVM.
package bindtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sharevault/sharevault/internal/tsmnode/tsmnodetest"
	"github.com/sharevault/sharevault/internal/vaultproc"
)

// TestAppDemoOnTheJVM runs AppDemo through the bindings that jvm.sh built in
// $SHAREVAULT_BIND (make bindings does both), against a real vault and two real TSM nodes:
// every call of it crosses from Java into Go. Without $SHAREVAULT_BIND it says so and skips
// (make test runs it with the bindings; SHAREVAULT_REQUIRE_BIND=1 makes the skip a failure).
func TestAppDemoOnTheJVM(t *testing.T) {
	bind := os.Getenv("SHAREVAULT_BIND")
	if bind == "" {
		if os.Getenv("SHAREVAULT_REQUIRE_BIND") != "" {
			t.Fatal("SHAREVAULT_BIND is not set: make bindings builds the bindings and runs this test")
		}
		t.Skip("SKIPPED: the bindings are not built here (SHAREVAULT_BIND); make bindings builds them and runs this test")
	}
	dir := t.TempDir()
	vaultBin, err := vaultproc.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vaultproc.Start(vaultBin, nil, nil, "--listen", "127.0.0.1:0", "--store", filepath.Join(dir, "vault-data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	c := tsmnodetest.Must(t, 2)
	args := []string{"-Djava.library.path=" + bind, "-cp", filepath.Join(bind, "classes"), "AppDemo", v.URL, dir}
	for _, n := range c.Nodes {
		args = append(args, n.URL+"#"+n.ID.String())
	}
	cmd := exec.Command("java", args...)
	cmd.Env = append(os.Environ(), "SHAREVAULT_TEST_CHEAP_KDF=1")
	out, err := cmd.CombinedOutput()
	t.Logf("AppDemo:\n%s", out)
	if err != nil {
		t.Fatalf("AppDemo failed: %v", err)
	}
	for _, want := range []string{`backed up [a-z2-7]{26} version 1`, `restored [a-z2-7]{26} epoch 0 signature [0-9a-f]{128}`, `savings signs: 128`, `eth 0x[0-9a-fA-F]{40} signs: 130 v 1[bc]`, `shares restore the words`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("AppDemo did not print %q", want)
		}
	}
	if strings.Contains(string(out), "Exception") {
		t.Error("AppDemo printed an exception")
	}
}
