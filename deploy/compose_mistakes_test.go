package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComposeValidationCatchesMistakes feeds the validation a compose file
// with one of each mistake and checks that each is reported.
func TestComposeValidationCatchesMistakes(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := `listen: 0.0.0.0:4222
http: 0.0.0.0:8222
jetstream { store_dir: /data }
cluster {
  name: jetkit
  listen: 0.0.0.0:6222
  routes: [nats-route://n1:6222, nats-route://n2:6222, nats-route://nx:6222]
}
`
	prom := `scrape_configs:
  - job_name: order
    static_configs:
      - targets: ["order:9999"]
`
	for name, text := range map[string]string{"node.conf": conf, "prometheus.yml": prom} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	node := func(name string) string {
		return fmt.Sprintf(`
  %[1]s:
    image: nats:2.15-alpine
    command: ["--config", "/etc/nats/node.conf", "--name", "%[1]s"]
    volumes:
      - ./node.conf:/etc/nats/node.conf:ro
      - %[1]s-data:/data
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost:8222/healthz"]
`, name)
	}
	compose := "services:" + node("n1") + node("n2") + node("n3") + fmt.Sprintf(`
  order:
    build:
      context: %[1]s
      dockerfile: services/order/Dockerfile
    environment:
      JETKIT_NATS_URL: nats://n1:4222
      ORDER_NATS_URL: nats://n1:4222,nats://n9:4222
      ORDER_STREAM_REPLICAS: "1"
      ORDER_ACK_WAIT: soon
      ORDER_HTTP_ADDR: ":8081"
      OTEL_TRACES_EXPORTER: otlp
      OTEL_EXPORTER_OTLP_ENDPOINT: http://collector:4318
    volumes:
      - ./missing.pem:/etc/ca.pem:ro
  prometheus:
    image: prom/prometheus:v3.5.0
    volumes:
      - ./prometheus.yml:/etc/prometheus/prometheus.yml:ro
volumes:
  n1-data:
  n2-data:
  n3-data:
`, root)
	path := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(path, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(composeProblems(loadCompose(t, path)), "\n")
	for _, want := range []string{
		`route nats-route://nx:6222 names "nx", which is not one of the cluster's nodes`,
		"nats node n1: no route to peer n3", // the routes name n1, n2 and nx, never n3
		"does not request :8222/healthz?js-enabled-only=true",
		"sets JETKIT_NATS_URL, which services/order/cmd/order does not read",
		"ORDER_ACK_WAIT", // does not parse as a duration
		"mounts " + filepath.Join(dir, "missing.pem"),
		"prometheus job order scrapes order:9999, but order listens on port 8081",
		`ORDER_NATS_URL lists "nats://n9:4222", which is not one of the NATS nodes`,
		`ORDER_NATS_URL lists 2 servers; list all 3 nodes`,
		`ORDER_STREAM_REPLICAS="1"`,
		`OTEL_EXPORTER_OTLP_ENDPOINT "http://collector:4318" is not a service of this file`,
		"service order is scraped by Prometheus but does not set OTEL_METRICS_EXPORTER=prometheus",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("validation did not report %q; it reported:\n%s", want, got)
		}
	}
}
