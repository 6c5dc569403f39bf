package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the jetkit command line with args and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestNewServiceAndEventCommands(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "payments")
	args := []string{"new", "service", "payments", "--module", "example.com/payments", "--dir", dir,
		"--consumes", "orders.created.v1", "--publishes", "payments.settled.v1", "--jetkit-replace", root, "--no-verify"}
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("new service: %v\n%s", err, out)
	}
	if !strings.Contains(out, "replaced with the local checkout "+root) || !strings.Contains(out, "--no-verify") {
		t.Fatalf("new service output does not say which jetkit it uses and that it did not verify:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "internal/handlers/orders_created_v1_test.go")); err != nil {
		t.Fatalf("no handler test generated: %v", err)
	}
	if _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second new service into the same dir = %v, want a refusal naming --force", err)
	}
	if out, err := runCLI(t, append(args, "--force")...); err != nil {
		t.Fatalf("new service --force: %v\n%s", err, out)
	}

	t.Chdir(filepath.Join(dir, "internal"))
	out, err = runCLI(t, "new", "event", "refunds.issued.v1", "--consume", "--no-verify")
	if err != nil || !strings.Contains(out, "wrote internal/handlers/refunds_issued_v1.go") {
		t.Fatalf("new event: %v\n%s", err, out)
	}
}

func TestNewServiceRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"new", "service", "Pay_ments", "--module", "example.com/p", "--dir", dir, "--no-verify"}, []string{`service name "Pay_ments"`, `try "pay-ments"`}},
		{[]string{"new", "service", "payments", "--module", "payments", "--dir", dir, "--no-verify"}, []string{`module path "payments"`, "github.com/acme/payments"}},
		{[]string{"new", "service", "payments", "--module", "example.com/p", "--dir", dir, "--consumes", "orders.>", "--no-verify"}, []string{`"orders.>"`, "wildcard"}},
		{[]string{"new", "service", "payments", "--module", "example.com/p", "--dir", dir, "--consumes", "Orders.Created.v1", "--no-verify"}, []string{"--consumes Orders.Created.v1", `use "orders.created.v1"`}},
		{[]string{"new", "service", "payments", "--module", "example.com/p", "--dir", dir, "--publishes", "payments.settled.v1:key", "--no-verify"}, []string{"--publishes payments.settled.v1:key", ":keyed"}},
		{[]string{"new", "service", "payments", "--dir", dir}, []string{`"module" not set`}},
		{[]string{"new", "event", "orders.created.v1", "--no-verify"}, []string{"jetkit new service"}},
	} {
		if tc.args[1] == "event" {
			t.Chdir(dir)
		}
		_, err := runCLI(t, tc.args...)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("jetkit %s = %v, want an error saying %s", strings.Join(tc.args, " "), err, want)
			}
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("rejected commands wrote %d entries into %s", len(entries), dir)
	}
}
