package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/jetkit/jetkit/framework"
)

// loadCompose loads a compose file with compose-go, the library docker
// compose itself uses: schema validation, interpolation, merge keys and
// path resolution, with no Docker engine.
func loadCompose(t *testing.T, path string) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithName("jetkit"),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options for %s: %v", path, err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return p
}

// isNATS reports whether the service runs a nats-server.
func isNATS(s types.ServiceConfig) bool {
	return strings.HasPrefix(s.Image, "nats:") || strings.HasPrefix(s.Image, "docker.io/library/nats:")
}

// composeProblems checks a loaded project and returns every problem found,
// each naming the service and what to fix.
func composeProblems(p *types.Project) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var nodes []string
	for _, name := range p.ServiceNames() {
		if isNATS(p.Services[name]) {
			nodes = append(nodes, name)
		}
	}
	sort.Strings(nodes)
	if len(nodes) < 3 {
		add("want at least 3 NATS nodes for a cluster that survives losing one, found %v", nodes)
	}

	// Mounted files and directories exist.
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				add("service %s mounts %s at %s, which does not exist: %v", name, v.Source, v.Target, err)
			}
		}
	}

	httpPorts := map[string]string{} // service -> port its HTTP API listens on
	for _, name := range nodes {
		problems = append(problems, natsNodeProblems(p, name, nodes)...)
	}
	for _, name := range p.ServicesWithBuild() {
		port, ps := builtServiceProblems(p, name, nodes)
		problems = append(problems, ps...)
		if port != "" {
			httpPorts[name] = port
		}
	}
	problems = append(problems, scrapeProblems(p, httpPorts)...)
	for name := range httpPorts {
		if v := p.Services[name].Environment["OTEL_METRICS_EXPORTER"]; v == nil || *v != "prometheus" {
			add("service %s is scraped by Prometheus but does not set OTEL_METRICS_EXPORTER=prometheus, so it serves no /metrics", name)
		}
	}
	return problems
}

// natsNodeProblems checks one node: its config file parses as nats-server
// options (with the server's own parser), its name is its service name,
// JetStream stores on a volume, the health check asks the monitoring port
// for /healthz?js-enabled-only=true, and its routes are exactly the
// cluster's nodes on their cluster port.
func natsNodeProblems(p *types.Project, name string, nodes []string) []string {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("nats node %s: "+format, append([]any{name}, args...)...))
	}
	s := p.Services[name]
	confTarget, nodeName := "", ""
	for i := 0; i+1 < len(s.Command); i++ {
		switch s.Command[i] {
		case "-c", "--config":
			confTarget = s.Command[i+1]
		case "-n", "--name", "--server_name":
			nodeName = s.Command[i+1]
		}
	}
	if confTarget == "" {
		add("command %v has no --config", s.Command)
		return problems
	}
	var confSource string
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == confTarget {
			confSource = v.Source
		}
	}
	if confSource == "" {
		add("--config %s is not a file mounted into the container", confTarget)
		return problems
	}
	opts, err := server.ProcessConfigFile(confSource)
	if err != nil {
		add("config %s does not parse: %v", confSource, err)
		return problems
	}
	if nodeName == "" {
		nodeName = opts.ServerName
	}
	if nodeName != name {
		add("server name %q differs from the service name its peers route to", nodeName)
	}
	if !opts.JetStream {
		add("JetStream is not enabled in %s", confSource)
	}
	storeOnVolume := false
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && (opts.StoreDir == v.Target || strings.HasPrefix(opts.StoreDir, v.Target+"/")) {
			storeOnVolume = true
		}
	}
	if !storeOnVolume {
		add("JetStream store_dir %q is not on a named volume: streams would not survive a container re-create", opts.StoreDir)
	}
	if s.HealthCheck == nil || s.HealthCheck.Disable {
		add("no health check")
	} else {
		test := strings.Join(s.HealthCheck.Test, " ")
		want := fmt.Sprintf(":%d/healthz?js-enabled-only=true", opts.HTTPPort)
		if opts.HTTPPort == 0 || !strings.Contains(test, want) {
			add("health check %q does not request %s on the monitoring port", test, want)
		}
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		add("no cluster block with a name and a listen port in %s", confSource)
	}
	var routed []string
	for _, r := range opts.Routes {
		host, port := r.Hostname(), r.Port()
		routed = append(routed, host)
		if !slices.Contains(nodes, host) {
			add("route %s names %q, which is not one of the cluster's nodes %v", r, host, nodes)
		}
		if port != fmt.Sprint(opts.Cluster.Port) {
			add("route %s uses port %s, the nodes listen for routes on %d", r, port, opts.Cluster.Port)
		}
	}
	for _, n := range nodes {
		if n != name && !slices.Contains(routed, n) {
			add("no route to peer %s", n)
		}
	}
	return problems
}

// builtServiceProblems checks a service built from the repository: its
// Dockerfile, and that every environment variable is one its code reads
// and that together they load as a valid framework.Config pointing at the
// cluster's nodes. It returns the port of its HTTP API.
func builtServiceProblems(p *types.Project, name string, nodes []string) (httpPort string, problems []string) {
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("service %s: "+format, append([]any{name}, args...)...))
	}
	s := p.Services[name]
	b := s.Build
	if st, err := os.Stat(b.Context); err != nil || !st.IsDir() {
		add("build context %s is not a directory", b.Context)
		return "", problems
	}
	if _, err := os.Stat(filepath.Join(b.Context, "go.mod")); err != nil {
		add("build context %s is not the module root (no go.mod)", b.Context)
	}
	dockerfile := b.Dockerfile
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(b.Context, dockerfile)
	}
	pkg, ps := dockerfileProblems(b.Context, dockerfile)
	problems = append(problems, ps...)
	if pkg == "" {
		return "", problems
	}
	code, err := readServiceCode(pkg)
	if err != nil {
		add("cannot tell which variables it reads: %v", err)
		return "", problems
	}
	fw := frameworkVars()
	env := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			add("%s has no value", k)
			continue
		}
		env[k] = *v
		rest, prefixed := strings.CutPrefix(k, code.prefix+"_")
		switch {
		case prefixed && (fw[rest] || code.own[rest]):
		case otelVar(k):
		default:
			rel, _ := filepath.Rel(b.Context, code.dir)
			add("sets %s, which %s does not read (it reads %s_<framework variable>, its own %s_%v, and OTEL_*)",
				k, filepath.ToSlash(rel), code.prefix, code.prefix, sortedKeys(code.own))
		}
	}
	if addr, ok := env[code.prefix+"_HTTP_ADDR"]; ok {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			httpPort = port
		} else {
			add("%s_HTTP_ADDR %q is not host:port", code.prefix, addr)
		}
	}
	if _, err := loadFrameworkConfig(code.prefix, env); err != nil {
		add("its environment does not load: %v", err)
	}
	urls := strings.Split(env[code.prefix+"_NATS_URL"], ",")
	for _, raw := range urls {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || !slices.Contains(nodes, u.Hostname()) {
			add("%s_NATS_URL lists %q, which is not one of the NATS nodes %v", code.prefix, raw, nodes)
		}
	}
	if len(urls) != len(nodes) {
		add("%s_NATS_URL lists %d servers; list all %d nodes so the client can start while one is down", code.prefix, len(urls), len(nodes))
	}
	if replicas, err := strconv.Atoi(env[code.prefix+"_STREAM_REPLICAS"]); err != nil || replicas < 3 || replicas > len(nodes) {
		add("%s_STREAM_REPLICAS=%q: set 3 so streams survive losing a node (at most the %d nodes)", code.prefix, env[code.prefix+"_STREAM_REPLICAS"], len(nodes))
	}
	const telemetryPkg, healthPkg = "github.com/jetkit/jetkit/framework/telemetry", "github.com/jetkit/jetkit/framework/health"
	for k := range env {
		if otelVar(k) && !code.imports[telemetryPkg] {
			add("sets %s, but its main does not use %s, which reads the OTEL_* variables", k, telemetryPkg)
			break
		}
	}
	if env["OTEL_METRICS_EXPORTER"] == "prometheus" && !code.imports[healthPkg] {
		add("OTEL_METRICS_EXPORTER=prometheus, but its main does not use %s, which serves /metrics", healthPkg)
	}
	if ep := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep != "" {
		if u, err := url.Parse(ep); err != nil || p.Services[u.Hostname()].Name == "" {
			add("OTEL_EXPORTER_OTLP_ENDPOINT %q is not a service of this file", ep)
		}
	}
	return httpPort, problems
}

// loadFrameworkConfig runs framework.LoadConfig with exactly env set for
// prefix, restoring the process environment afterwards.
func loadFrameworkConfig(prefix string, env map[string]string) (framework.Config, error) {
	var touched []string
	for name := range frameworkVars() {
		touched = append(touched, prefix+"_"+name, name) // envconfig falls back to the bare name
	}
	for k := range env {
		touched = append(touched, k)
	}
	for _, k := range touched {
		if old, ok := os.LookupEnv(k); ok {
			defer os.Setenv(k, old)
		} else {
			defer os.Unsetenv(k)
		}
		_ = os.Unsetenv(k)
	}
	for k, v := range env {
		if strings.HasPrefix(k, prefix+"_") {
			_ = os.Setenv(k, v)
		}
	}
	return framework.LoadConfig(prefix)
}

// scrapeProblems checks that Prometheus scrapes services of this file on
// the ports their HTTP APIs listen on, and scrapes every built service.
func scrapeProblems(p *types.Project, httpPorts map[string]string) []string {
	var problems []string
	var promConf string
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if !strings.HasPrefix(s.Image, "prom/prometheus") {
			continue
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Target, "prometheus.yml") {
				promConf = v.Source
			}
		}
	}
	if promConf == "" {
		return []string{"no prometheus service with a mounted prometheus.yml"}
	}
	data, err := os.ReadFile(promConf)
	if err != nil {
		return []string{fmt.Sprintf("prometheus config: %v", err)}
	}
	var conf struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &conf); err != nil {
		return []string{fmt.Sprintf("prometheus config %s: %v", promConf, err)}
	}
	scraped := map[string]bool{}
	for _, sc := range conf.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					problems = append(problems, fmt.Sprintf("prometheus job %s: target %q is not host:port", sc.JobName, target))
					continue
				}
				if host == "localhost" {
					continue // Prometheus itself
				}
				want, ok := httpPorts[host]
				switch {
				case !ok:
					problems = append(problems, fmt.Sprintf("prometheus job %s scrapes %s, which is not a jetkit service of this file", sc.JobName, target))
				case port != want:
					problems = append(problems, fmt.Sprintf("prometheus job %s scrapes %s, but %s listens on port %s", sc.JobName, target, host, want))
				}
				scraped[host] = true
			}
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			problems = append(problems, fmt.Sprintf("prometheus job %s: metrics_path %s; jetkit serves /metrics", sc.JobName, sc.MetricsPath))
		}
	}
	for name := range httpPorts {
		if !scraped[name] {
			problems = append(problems, fmt.Sprintf("prometheus does not scrape service %s", name))
		}
	}
	return problems
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestComposeFileIsValid(t *testing.T) {
	p := loadCompose(t, filepath.Join("..", "docker-compose.yml"))
	for _, want := range []string{"n1", "n2", "n3", "order", "inventory", "jaeger", "prometheus"} {
		if _, err := p.GetService(want); err != nil {
			t.Errorf("service %s: %v", want, err)
		}
	}
	for _, problem := range composeProblems(p) {
		t.Error(problem)
	}
}

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
