package scaffolding

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Progress receives one line per step as it starts and ends; nil is silent.
	Progress io.Writer
	// Env is added to the environment of every step (KEY=value), after
	// GOFLAGS=-mod=mod and GOWORK=off.
	Env []string
	// Output, when set, receives every step's output, also on success.
	Output io.Writer
	// TestFlags are added to go test, e.g. -v or -run.
	TestFlags []string
	// SkipRun skips starting the service.
	SkipRun bool
	// RunTimeout bounds how long the started service may take to become
	// ready and to stop; 0 means 2 minutes.
	RunTimeout time.Duration
}

// StepError is a failed verification step, with its output.
type StepError struct {
	// Step is the command that failed, e.g. "go test ./...".
	Step string
	// Dir is where it ran.
	Dir string
	// Err is how it failed (usually an exit status).
	Err error
	// Output is what the step printed.
	Output string
}

// maxShownOutput bounds the output quoted in a StepError message.
const maxShownOutput = 16 << 10

// Error names the step, the directory and quotes the output's tail.
func (e *StepError) Error() string {
	out := strings.TrimSpace(e.Output)
	if len(out) > maxShownOutput {
		out = "...\n" + out[len(out)-maxShownOutput:]
	}
	return fmt.Sprintf("verification failed at step %q in %s: %v\n%s\nThe files are left in %s for inspection; fix the problem and run the step again there, or regenerate with --no-verify",
		e.Step, e.Dir, e.Err, out, e.Dir)
}

// Unwrap returns the step's error.
func (e *StepError) Unwrap() error { return e.Err }

// Verify checks a generated service in dir: go mod tidy, go vet ./...,
// go build ./..., go test ./..., then (unless SkipRun) it builds the
// service with -tags dev, starts it on an embedded NATS server, waits for
// /livez and /readyz to answer 200, sends SIGTERM and expects a clean
// exit. It stops at the first failing step and returns a *StepError.
func Verify(ctx context.Context, dir string, opts VerifyOptions) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	env := verifyEnv(opts.Env)
	test := append(append([]string{"go", "test", "-count=1"}, opts.TestFlags...), "./...")
	steps := [][]string{
		{"go", "mod", "tidy"},
		{"go", "vet", "./..."},
		{"go", "build", "./..."},
		test,
	}
	for _, args := range steps {
		name := strings.Join(args, " ")
		start := time.Now()
		progress(opts.Progress, "  %-24s ...", name)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if opts.Output != nil {
			fmt.Fprintf(opts.Output, "$ %s\n%s", name, out)
		}
		if err != nil {
			progress(opts.Progress, " FAILED\n")
			return &StepError{Step: name, Dir: dir, Err: err, Output: string(out)}
		}
		progress(opts.Progress, " ok (%s)\n", time.Since(start).Round(100*time.Millisecond))
	}
	if opts.SkipRun {
		return nil
	}
	start := time.Now()
	progress(opts.Progress, "  %-24s ...", "run")
	timeout := opts.RunTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	if err := runCheck(ctx, dir, env, timeout); err != nil {
		progress(opts.Progress, " FAILED\n")
		return err
	}
	progress(opts.Progress, " ok (%s)\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// verifyEnv is the environment of the verification steps: module mode may
// update go.mod/go.sum (GOFLAGS=-mod=mod) and a go.work above the service
// must not take over (GOWORK=off).
func verifyEnv(extra []string) []string {
	env := os.Environ()
	var flags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if !strings.HasPrefix(f, "-mod=") {
			flags = append(flags, f)
		}
	}
	flags = append(flags, "-mod=mod")
	env = append(env, "GOFLAGS="+strings.Join(flags, " "), "GOWORK=off")
	return append(env, extra...)
}

// runCheck builds the service with -tags dev and runs it on an embedded
// NATS server until it reports ready, then stops it with SIGTERM.
func runCheck(ctx context.Context, dir string, env []string, timeout time.Duration) error {
	const step = "run"
	fail := func(err error, out string) error {
		return &StepError{Step: step, Dir: dir, Err: err, Output: out}
	}
	mainSrc, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil {
		return fail(err, "")
	}
	m := envPrefixRE.FindSubmatch(mainSrc)
	if m == nil {
		return fail(errors.New(`main.go has no "const envPrefix = ..." line; it is needed to point the service at a free port`), "")
	}
	prefix := string(m[1])
	tmp, err := os.MkdirTemp("", "jetkit-verify-")
	if err != nil {
		return fail(err, "")
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "service")
	build := exec.CommandContext(ctx, "go", "build", "-tags", "dev", "-o", bin, ".")
	build.Dir, build.Env = dir, env
	if out, err := build.CombinedOutput(); err != nil {
		return &StepError{Step: "go build -tags dev .", Dir: dir, Err: err, Output: string(out)}
	}
	addr, err := freeAddr()
	if err != nil {
		return fail(err, "")
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-embedded-nats", "-embedded-nats-dir", filepath.Join(tmp, "nats"))
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, env...), prefix+"_HTTP_ADDR="+addr)
	// No collector is expected during verification: export nothing unless
	// the caller chose exporters.
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"} {
		if os.Getenv(k) == "" {
			cmd.Env = append(cmd.Env, k+"=none")
		}
	}
	// One comparable writer for both: exec then calls Write from one goroutine.
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start %s: %w", bin, err), "")
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	output := func() string { return out.String() }

	if err := waitHealthy(ctx, addr, timeout, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fail(err, output())
	}
	if err := stopProcess(cmd.Process); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fail(fmt.Errorf("send SIGTERM: %w", err), output())
	}
	select {
	case err := <-exited:
		if err != nil {
			return fail(fmt.Errorf("after SIGTERM the service exited with %w, want a clean exit", err), output())
		}
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fail(fmt.Errorf("the service did not exit within %s of SIGTERM", timeout), output())
	}
	return nil
}
