package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jetkit/jetkit/testenv"
)

// TestMain lets a test run this binary's main: with JETKIT_TEST_RUN_MAIN=1
// the test binary is the order command.
func TestMain(m *testing.M) {
	if os.Getenv("JETKIT_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// healthcheckExit runs "order -healthcheck" and returns its exit status.
func healthcheckExit(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-healthcheck")
	cmd.Env = append(os.Environ(), "JETKIT_TEST_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		t.Logf("order -healthcheck: exit %d: %s", exit.ExitCode(), out)
		return exit.ExitCode()
	default:
		t.Fatalf("order -healthcheck: %v", err)
		return -1
	}
}

// order -healthcheck exits 1 while no instance answers on ORDER_HTTP_ADDR,
// 0 once the running instance is ready, and 1 again after it stopped: the
// compose health check needs nothing else in the image.
func TestHealthcheckFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	srv := testenv.Start(t)
	t.Setenv("ORDER_NATS_URL", srv.URL())
	t.Setenv("ORDER_HTTP_ADDR", addr)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")

	if code := healthcheckExit(t); code != 1 {
		t.Fatalf("-healthcheck with nothing running: exit %d, want 1", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	testenv.Eventually(t, 30*time.Second, "order -healthcheck exits 0", func() bool { return healthcheckExit(t) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if code := healthcheckExit(t); code != 1 {
		t.Errorf("-healthcheck after the service stopped: exit %d, want 1", code)
	}
}
