package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

// runDevCmd runs `jetkit dev --demo` for n orders on free ports and
// returns its output.
func runDevCmd(t *testing.T, dataDir string, n int, fresh bool) string {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(io.Discard)
	args := []string{"dev", "--demo", "--demo-orders", strconv.Itoa(n), "--demo-rate", "50",
		"--data", dataDir, "--nats-port", "0", "--order-addr", "127.0.0.1:0", "--inventory-addr", "127.0.0.1:0"}
	if fresh {
		args = append(args, "--fresh")
	}
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("jetkit dev: %v\n%s", err, out.String())
	}
	return out.String()
}

// storedOrders counts the orders kept in the data directory.
func storedOrders(t *testing.T, dataDir string) int {
	t.Helper()
	srv, err := testenv.Run(testenv.Options{StoreDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), order.Bucket)
	if err != nil {
		t.Fatalf("orders bucket: %v", err)
	}
	keys, err := kv.Keys(context.Background())
	if err != nil {
		t.Fatalf("orders keys: %v", err)
	}
	return len(keys)
}

func TestDevDemoRunsTheSystemAndKeepsState(t *testing.T) {
	// What jetkit dev defaults to, set here so that the test restores them.
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("JETKIT_NATS_URL", "")
	dataDir := filepath.Join(t.TempDir(), "data")

	out := runDevCmd(t, dataDir, 6, true)
	for _, want := range []string{"orders     http://127.0.0.1:", "inventory  http://127.0.0.1:", "curl -s -X POST http://127.0.0.1:", "started empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	journeys := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "created → ") {
			journeys++
			if !strings.Contains(line, "→ reserved → confirmed") && !strings.Contains(line, "→ rejected (") {
				t.Errorf("journey neither confirmed nor rejected: %q", line)
			}
		}
	}
	if journeys != 6 {
		t.Errorf("%d journeys printed, want 6:\n%s", journeys, out)
	}
	if n := storedOrders(t, dataDir); n != 6 {
		t.Errorf("%d orders stored after the first run, want 6", n)
	}

	out = runDevCmd(t, dataDir, 2, false)
	if !strings.Contains(out, "kept between runs") {
		t.Errorf("second run does not say the data is kept:\n%s", out)
	}
	if n := storedOrders(t, dataDir); n != 8 {
		t.Errorf("%d orders stored after a second run, want 8: a restart must keep state", n)
	}

	runDevCmd(t, dataDir, 1, true)
	if n := storedOrders(t, dataDir); n != 1 {
		t.Errorf("%d orders stored after --fresh, want 1", n)
	}
}

// With JETKIT_NATS_URL set, jetkit dev uses that server; --fresh deletes
// the sample's streams and buckets there.
func TestDevUsesJETKIT_NATS_URL(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, err := testenv.Run(testenv.Options{StoreDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	t.Setenv("JETKIT_NATS_URL", srv.URL())

	out := runDevCmd(t, filepath.Join(t.TempDir(), "unused"), 3, false)
	if !strings.Contains(out, srv.URL()+" (from JETKIT_NATS_URL)") || strings.Count(out, "created → ") != 3 {
		t.Errorf("output:\n%s", out)
	}
	out = runDevCmd(t, filepath.Join(t.TempDir(), "unused"), 1, true)
	if !strings.Contains(out, "--fresh: deleted stream KV_orders") {
		t.Errorf("--fresh did not delete the sample's assets:\n%s", out)
	}
	if strings.Count(out, "created → ") != 1 {
		t.Errorf("output:\n%s", out)
	}
}

// TestBannerRedactsURLs: the banner shows JETKIT_NATS_URL without any
// user information: user:password, a token, or a user alone (a token to NATS).
func TestBannerRedactsURLs(t *testing.T) {
	t.Setenv("JETKIT_NATS_URL", "nats://alice:s3cret@h1:4222, nats://h2:4222,nats://T0KEN-abc@h4:4222,nats://carol@h5:4222")
	_, where, _, err := devNATS(context.Background(), io.Discard, devOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var banner bytes.Buffer
	printBanner(&banner, where, "http://o", "http://i")
	got := banner.String()
	for _, secret := range []string{"s3cret", "T0KEN-abc", "carol"} {
		if strings.Contains(got, secret) {
			t.Errorf("banner shows %q:\n%s", secret, got)
		}
	}
	if !strings.Contains(got, "h2:4222") || !strings.Contains(got, "@h4:4222") || !strings.Contains(got, "@h5:4222") {
		t.Errorf("banner lost a server:\n%s", got)
	}
}
