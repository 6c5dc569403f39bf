package embedded_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/testenv/embedded"
)

// A server started with the zero Options accepts clients, and Shutdown
// removes its temporary store.
func TestRunServesAndShutdownRemovesTheTemporaryStore(t *testing.T) {
	srv, err := embedded.Run(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.StoreDir()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		srv.Shutdown()
		t.Fatalf("connect to %s: %v", srv.URL(), err)
	}
	nc.Close()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store %s while running: %v", dir, err)
	}
	srv.Shutdown()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary store %s still there after Shutdown (stat: %v)", dir, err)
	}
}

// Programs (jetkit dev) link this package: it must not pull in package
// testing.
func TestDoesNotImportTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/jetkit/jetkit/testenv/embedded").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	if slices.Contains(strings.Fields(string(out)), "testing") {
		t.Fatal("package embedded depends on package testing")
	}
}
