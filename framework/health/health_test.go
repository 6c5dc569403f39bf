package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

type orderCreated struct {
	ID string `json:"id"`
}

var (
	ordersStream = framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}
	orderTopic   = framework.MustNewTopic[orderCreated]("orders.created.v1")
)

func newService(t *testing.T, srv *testenv.Server, opts ...framework.Option) *framework.Service {
	t.Helper()
	cfg := srv.Config("order")
	cfg.ReconnectWait = 50 * time.Millisecond
	cfg.RequestTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	ctx := context.Background()
	svc := testenv.NewService(t, cfg, opts...)
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatal(err)
	}
	return svc
}

func get(t *testing.T, url string) (int, health.Status, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st health.Status
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("%s: body %q: %v", url, body, err)
		}
	}
	return resp.StatusCode, st, string(body)
}

func waitStatus(t *testing.T, url string, code int, what string) health.Status {
	t.Helper()
	var st health.Status
	testenv.Eventually(t, 20*time.Second, what, func() bool {
		c, s, _ := get(t, url)
		st = s
		return c == code
	})
	return st
}

// /readyz flips to 503 while the NATS server is down and back to 200 when
// a server returns on the same port and store; the subscription keeps
// working afterwards.
func TestReadyzFollowsTheServer(t *testing.T) {
	dir := t.TempDir()
	srv1, err := testenv.Run(testenv.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv1.Shutdown)
	port := srv1.NS.Addr().(*net.TCPAddr).Port
	svc := newService(t, srv1)
	var handled atomic.Int64
	if _, err := framework.Subscribe(t.Context(), svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		handled.Add(1)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(health.New(svc))
	defer hs.Close()

	if code, st, body := get(t, hs.URL+"/readyz"); code != http.StatusOK || st.Status != "ready" {
		t.Fatalf("/readyz before the outage: %d %s", code, body)
	}
	srv1.Shutdown()
	st := waitStatus(t, hs.URL+"/readyz", http.StatusServiceUnavailable, "/readyz is 503 while the server is down")
	// Until the client notices the closed socket the JetStream call times out
	// instead; either way the reason is given.
	if len(st.Problems) == 0 || !(strings.Contains(st.Problems[0], "not connected") || strings.Contains(st.Problems[0], "JetStream not reachable")) {
		t.Fatalf("503 should say why: %+v", st)
	}
	if code, _, _ := get(t, hs.URL+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez must stay 200 during a broker outage, got %d", code)
	}

	testenv.Start(t, testenv.Options{Port: port, StoreDir: dir})
	waitStatus(t, hs.URL+"/readyz", http.StatusOK, "/readyz is 200 again after the server returns")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := orderTopic.Publish(ctx, svc, orderCreated{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "message published after the outage handled", func() bool { return handled.Load() == 1 })
	// Shut the service down while the second server still runs (cleanups
	// run last-in first-out, and the server's was registered after ours).
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := svc.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestReadyzReasons(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv)
	if _, err := framework.Subscribe(t.Context(), svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	h := health.New(svc, health.WithCheck("postgres", func(ctx context.Context) error {
		if failing.Load() {
			return errors.New("connection refused")
		}
		return nil
	}))
	hs := httptest.NewServer(h)
	defer hs.Close()

	if code, _, body := get(t, hs.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code, _, _ := get(t, hs.URL+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics without a metrics handler: %d, want 404", code)
	}

	failing.Store(true)
	code, st, _ := get(t, hs.URL+"/readyz")
	if code != http.StatusServiceUnavailable || len(st.Problems) != 1 || st.Problems[0] != "postgres: connection refused" {
		t.Fatalf("failing extra check: %d %+v", code, st)
	}
	failing.Store(false)

	ctx := context.Background()
	if err := svc.Conn().JS.DeleteConsumer(ctx, "ORDERS", "inventory"); err != nil {
		t.Fatal(err)
	}
	code, st, _ = get(t, hs.URL+"/readyz")
	if code != http.StatusServiceUnavailable || len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "consumer ORDERS/inventory not bound") {
		t.Fatalf("deleted consumer: %d %+v", code, st)
	}

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := svc.Shutdown(sctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	code, st, _ = get(t, hs.URL+"/readyz")
	if code != http.StatusServiceUnavailable || len(st.Problems) != 1 || st.Problems[0] != "shutting down" {
		t.Fatalf("after shutdown: %d %+v", code, st)
	}
}

// With OTEL_METRICS_EXPORTER=prometheus, telemetry.Setup's handler serves
// jetkit's metrics at /metrics.
func TestMetricsEndpointWithPrometheusExporter(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_SERVICE_NAME", "order-test")
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.SetupOptions{ServiceName: "order"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(ctx) }()
	if tel.Observer() == nil || tel.MetricsHandler() == nil || tel.Tracing() {
		t.Fatalf("prometheus metrics without tracing: observer %v handler %v tracing %v", tel.Observer(), tel.MetricsHandler(), tel.Tracing())
	}
	srv := testenv.Start(t)
	svc := newService(t, srv, framework.WithObserver(tel.Observer()))
	var handled atomic.Int64
	if _, err := framework.Subscribe(ctx, svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		handled.Add(1)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := orderTopic.Publish(ctx, svc, orderCreated{ID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "handled", func() bool { return handled.Load() == 1 })

	hs := httptest.NewServer(health.New(svc, health.WithMetrics(tel.MetricsHandler())))
	defer hs.Close()
	var body string
	testenv.Eventually(t, 10*time.Second, "processed counter exposed", func() bool {
		code, _, b := get(t, hs.URL+"/metrics")
		body = b
		return code == http.StatusOK && strings.Contains(b, `jetkit_messages_processed_total{`)
	})
	for _, want := range []string{
		`messaging_process_duration_seconds_bucket{`, `le="0.0001"`, `le="30"`,
		`messaging_consumer_group_name="inventory"`, `messaging_destination_name="orders.created.v1"`,
		`jetkit_handlers_limit{`, `service_name="order-test"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// /readyz shows which partitions each instance of a partitioned consumer
// group owns; an instance left without one (more instances than
// partitions) is ready, a standby.
func TestReadyzShowsOwnedPartitions(t *testing.T) {
	srv := testenv.Start(t)
	spec := framework.StreamSpec{Name: "PARCELS", Subjects: []string{"parcels.>"}, Partitions: 2}
	topic := framework.MustNewTopic[orderCreated]("parcels.sent.v1", framework.Keyed())
	var urls []string
	for range 3 {
		svc := newService(t, srv)
		if _, err := svc.EnsureStream(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
		if _, err := framework.Subscribe(t.Context(), svc, topic, "courier",
			func(context.Context, orderCreated, *framework.Message) error { return nil }, &framework.SubscribeOptions{Partitioned: true}); err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(health.New(svc))
		t.Cleanup(ts.Close)
		urls = append(urls, ts.URL+"/readyz")
	}
	// Each /readyz is read at its own moment while the group settles:
	// wait until the three answers agree with the settled assignment.
	var last string
	err := testenv.WaitFor(context.Background(), 30*time.Second, func() bool {
		owners := map[int]int{}
		standby := 0
		last = ""
		for i, u := range urls {
			code, st, body := get(t, u)
			last += fmt.Sprintf("instance %d: %d %s\n", i, code, body)
			if code != http.StatusOK || len(st.Partitions) != 1 {
				return false
			}
			g := st.Partitions[0]
			if g.Stream != "PARCELS" || g.Consumer != "courier" || g.Owned == nil {
				return false
			}
			if len(g.Owned) == 0 {
				standby++
			}
			for _, p := range g.Owned {
				owners[p]++
			}
		}
		return owners[0] == 1 && owners[1] == 1 && len(owners) == 2 && standby == 1
	})
	if err != nil {
		t.Fatalf("/readyz never showed partitions 0 and 1 owned once and one standby; last answers:\n%s", last)
	}
}
