package scaffolding

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// offline makes every go command of the test work from the module cache
// only: generation must not need the network.
var offline = []string{"GOPROXY=off"}

// goIn runs the go command in dir with the verification environment plus env.
func goIn(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, verifyEnv(env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// verifyOffline runs Verify with GOPROXY=off. Only when go mod tidy fails
// because a module is missing from the cache (a fresh machine whose cache
// holds only what jetkit's own build needed) does it say so and verify
// again with the configured proxy. It returns the environment it used last.
func verifyOffline(t *testing.T, dir string, opts VerifyOptions) ([]string, error) {
	t.Helper()
	opts.Env = offline
	err := Verify(t.Context(), dir, opts)
	var se *StepError
	if errors.As(err, &se) && se.Step == "go mod tidy" && strings.Contains(se.Output, "GOPROXY=off") {
		t.Logf("the module cache is not warm enough to work offline; verifying with GOPROXY=%s:\n%s", os.Getenv("GOPROXY"), se.Output)
		opts.Env = nil
		err = Verify(t.Context(), dir, opts)
	}
	return opts.Env, err
}

// TestGeneratedServiceBuildsTestsAndRuns is the end-to-end check, run once:
// generate a service with a local replace, verify it (tidy, vet, build, its
// own tests, a start on an embedded server), prove its handler test really
// consumes a message (it passes, and fails when the handler fails), then
// add an event with new event and verify again.
func TestGeneratedServiceBuildsTestsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a generated service (about a minute)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command must be on PATH: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "payments")
	res, err := Generate(Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t),
		Consumes: []string{"orders.created.v1:keyed"}, Publishes: []string{"payments.settled.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	var progress, output bytes.Buffer
	start := time.Now()
	opts := VerifyOptions{Progress: &progress, Output: &output, TestFlags: []string{"-v"}}
	env, err := verifyOffline(t, res.Dir, opts)
	if err != nil {
		t.Fatalf("generated service does not verify: %v", err)
	}
	t.Logf("verify (env %v) in %s:\n%s", env, time.Since(start).Round(time.Second), progress.String())
	for _, step := range []string{"go mod tidy", "go vet ./...", "go build ./...", "go test", "run"} {
		if !strings.Contains(progress.String(), step) {
			t.Errorf("verification did not report step %q", step)
		}
	}

	// The generated tests ran: the handler test consumed a real message.
	for _, test := range []string{"TestOrdersCreatedV1", "TestOrdersCreatedV1RoundTrip", "TestPaymentsSettledV1RoundTrip"} {
		if !strings.Contains(output.String(), "--- PASS: "+test+" ") {
			t.Errorf("verification did not run %s:\n%s", test, output.String())
		}
	}
	// The handler test fails when the handler fails: it is not vacuous.
	handler := filepath.Join(dir, "internal/handlers/orders_created_v1.go")
	orig := readFile(t, handler)
	broken := strings.Replace(strings.Replace(orig, "\t\"context\"\n", "\t\"context\"\n\t\"errors\"\n", 1),
		"return nil", `return errors.New("injected failure")`, 1)
	if err := os.WriteFile(handler, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := goIn(t, dir, env, "test", "-count=1", "-run", "^TestOrdersCreatedV1$", "./internal/handlers")
	if err == nil || !strings.Contains(out, "injected failure") {
		t.Fatalf("generated handler test passed although the handler fails (%v):\n%s", err, out)
	}
	if err := os.WriteFile(handler, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}

	// new event keeps it building and its tests passing.
	if _, err := AddEvent(dir, "refunds.issued.v1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := AddEvent(dir, "payments.settled.v1", true); err != nil { // now consumed too
		t.Fatal(err)
	}
	output.Reset()
	opts.SkipRun, opts.Env = true, env
	if err := Verify(t.Context(), dir, opts); err != nil {
		t.Fatalf("service does not verify after new event: %v", err)
	}
	for _, test := range []string{"TestOrdersCreatedV1", "TestRefundsIssuedV1", "TestRefundsIssuedV1RoundTrip", "TestPaymentsSettledV1"} {
		if !strings.Contains(output.String(), "--- PASS: "+test+" ") {
			t.Errorf("after new event, verification did not run %s:\n%s", test, output.String())
		}
	}
}

// TestVerifyNamesTheFailingStep breaks a generated service's code and
// checks that Verify stops at go vet, naming it and quoting its output.
func TestVerifyNamesTheFailingStep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	dir := t.TempDir()
	if _, err := Generate(Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t)}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "internal/handlers/handlers.go")
	if err := os.WriteFile(p, []byte(readFile(t, p)+"\nfunc broken() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := verifyOffline(t, dir, VerifyOptions{})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "go vet ./..." || !strings.Contains(se.Output, "undefinedThing") {
		t.Fatalf("Verify = %v, want a StepError at go vet quoting the compile error", err)
	}
	if !strings.Contains(err.Error(), `step "go vet ./..."`) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error message does not name the step and directory: %v", err)
	}
}
