package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetkit/jetkit/internal/bench"
)

// TestBenchCommandTiny runs `jetkit bench` end to end with tiny counts on
// an embedded server: every scenario runs for raw and jetkit, the JSON
// report parses and covers every scenario, and the progress and markdown
// outputs name every scenario. Timings are not asserted.
func TestBenchCommandTiny(t *testing.T) {
	md := filepath.Join(t.TempDir(), "bench.md")
	var stdout, stderr bytes.Buffer
	root := newRootCmd()
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"bench", "--short", "--json", "--markdown", md,
		"--publish", "200", "--consume", "200", "--backlog", "400",
		"--rate", "1000", "--e2e-duration", "200ms",
		"--concurrency", "1,4", "--service-concurrency", "1,4", "--service-duration", "50ms", "--rounds", "2"})
	if err := root.Execute(); err != nil {
		t.Fatalf("jetkit bench: %v\nprogress:\n%s", err, stderr.String())
	}

	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout.String())
	}
	if rep.Server != "embedded" || rep.MsgSize != 128 || rep.Storage != "file" || rep.Rounds != 2 {
		t.Errorf("report header: server %q, size %d, storage %q, rounds %d; want embedded, 128, file, 2", rep.Server, rep.MsgSize, rep.Storage, rep.Rounds)
	}
	rows := map[string]int{}
	for _, r := range rep.Results {
		rows[r.Scenario]++
		if r.Unit == "msgs/s" && (r.Raw <= 0 || r.Jetkit <= 0) {
			t.Errorf("%s %s: raw %v, jetkit %v msgs/s; both must have moved messages", r.Scenario, r.Case, r.Raw, r.Jetkit)
		}
	}
	want := map[string]int{
		bench.ScenarioPublishSync: 2, bench.ScenarioPublishAsync: 2, bench.ScenarioWireCost: 4,
		bench.ScenarioConsumeAsync: 2, bench.ScenarioConsumeSync: 2, bench.ScenarioOrdered: 3,
		bench.ScenarioE2E: 5, bench.ScenarioServiceTime: 2, bench.ScenarioMemory: 6,
	}
	for _, s := range bench.AllScenarios {
		if rows[s] != want[s] {
			t.Errorf("scenario %s: %d rows in the JSON report, want %d", s, rows[s], want[s])
		}
		if !strings.Contains(stderr.String(), "] "+s+":") {
			t.Errorf("no progress line for scenario %s:\n%s", s, stderr.String())
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatalf("--markdown file: %v", err)
	}
	for _, s := range bench.AllScenarios {
		if !strings.Contains(string(b), "| "+s+" |") {
			t.Errorf("markdown table has no row for %s:\n%s", s, b)
		}
	}
}

// TestBenchTable checks the aligned table names every row of a report.
func TestBenchTable(t *testing.T) {
	pass := true
	rep := &bench.Report{Server: "embedded", Storage: "file", Replicas: 1, MsgSize: 128, Results: []bench.Result{
		{Scenario: bench.ScenarioPublishSync, Unit: "msgs/s", Raw: 40000, Jetkit: 39000, Ratio: 0.975, Target: ">= 0.95x", Pass: &pass},
		{Scenario: bench.ScenarioE2E, Case: "p99", Unit: "ms", Raw: 1.5, Jetkit: 1.6, Ratio: 1.07},
	}}
	var out bytes.Buffer
	if err := bench.WriteTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"publish-sync", "40,000", "39,000", "0.97x", "ok", "e2e-latency", "1.600"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
