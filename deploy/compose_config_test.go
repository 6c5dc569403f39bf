package deploy_test

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/jetkit/jetkit/framework"
)

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
