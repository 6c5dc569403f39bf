package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
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
