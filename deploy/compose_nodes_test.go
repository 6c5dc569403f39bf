package deploy_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

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
	problems = append(problems, healthcheckProblems(s, dockerfile)...)
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

// healthcheckProblems checks that a built service has a health check that
// runs its own binary with -healthcheck (the distroless image has no shell
// or wget), so that docker compose up --wait returns once it is ready.
func healthcheckProblems(s types.ServiceConfig, dockerfile string) []string {
	hc := s.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) != 3 || hc.Test[0] != "CMD" || hc.Test[2] != "-healthcheck" {
		var test []string
		if hc != nil {
			test = hc.Test
		}
		return []string{fmt.Sprintf(`service %s: health check %q; want ["CMD", "<its binary>", "-healthcheck"] so that up --wait waits for /readyz`, s.Name, test)}
	}
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return []string{fmt.Sprintf("service %s: %v", s.Name, err)}
	}
	if entry := fmt.Sprintf(`ENTRYPOINT [%q]`, hc.Test[1]); !strings.Contains(string(df), entry) {
		return []string{fmt.Sprintf("service %s: health check runs %s, but %s has no %s", s.Name, hc.Test[1], dockerfile, entry)}
	}
	return nil
}
