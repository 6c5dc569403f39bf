package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/internal/bench"
)

// newBenchCmd is `jetkit bench`: raw nats.go against jetkit in one run.
func newBenchCmd() *cobra.Command {
	var (
		short, asJSON         bool
		markdown, scenarios   string
		cpuProfile, memProfle string
		size, pubN, consN     int
		backlog, rate         int
		replicas, prefetch    int
		rounds                int
		memory                bool
		noMiddleware          bool
		noTelemetry           bool
		concurrency, svcConc  []int
		e2eFor, svcTime, svcD time.Duration
		url                   string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark jetkit against raw nats.go in one run (publish, consume, latency, scaling, memory)",
		Long: `Runs each scenario with raw nats.go and with jetkit, in the same process against
the same server, and prints both with the ratio jetkit/raw. By default an
embedded server with file storage is started; --url benchmarks your own
server (credentials may be given in the URL, nats://user:pass@host:4222).

Scenarios: ` + strings.Join(bench.AllScenarios, ", ") + `.
--short is what 'make bench' runs (well under two minutes); the default is
the full run with a 1,000,000-message backlog.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o := bench.Full()
			if short {
				o = bench.Short()
			}
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			o.URL, o.Replicas, o.MemoryStorage = url, replicas, memory
			set("size", func() { o.MsgSize = size })
			set("publish", func() { o.PublishCount = pubN })
			set("consume", func() { o.ConsumeCount, o.SyncConsumeCount = consN, consN })
			set("backlog", func() { o.Backlog = backlog })
			set("rate", func() { o.Rate = rate })
			set("e2e-duration", func() { o.E2EDuration = e2eFor })
			set("service-time", func() { o.ServiceTime = svcTime })
			set("prefetch", func() { o.Prefetch = prefetch })
			set("rounds", func() { o.Rounds = rounds })
			set("service-duration", func() { o.ServiceDuration = svcD })
			set("concurrency", func() { o.Concurrencies = concurrency })
			set("service-concurrency", func() { o.ServiceConcurrencies = svcConc })
			if scenarios != "" {
				o.Scenarios = strings.Split(scenarios, ",")
			}
			if !noMiddleware {
				o.Middleware, o.MiddlewareNames = bench.DefaultMiddleware()
			}
			if !noTelemetry {
				obs, name, err := bench.DefaultObserver()
				if err != nil {
					return err
				}
				o.Observer, o.ObserverName = obs, name
			}
			return runBench(cmd, o, asJSON, markdown, cpuProfile, memProfle)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&short, "short", false, "quick run with small counts (what 'make bench' runs)")
	f.StringVar(&url, "url", "", "NATS server URL to benchmark instead of an embedded server")
	f.IntVar(&prefetch, "prefetch", 0, "jetkit Prefetch for the consume scenarios (default: the framework's default)")
	f.IntVar(&replicas, "replicas", 1, "replicas of the streams the bench creates")
	f.IntVar(&rounds, "rounds", 3, "runs of each throughput comparison, raw and jetkit alternating; each side's median is reported")
	f.BoolVar(&memory, "memory-storage", false, "memory-backed streams instead of file-backed")
	f.IntVar(&size, "size", 128, "payload size in bytes")
	f.IntVar(&pubN, "publish", 0, "messages per publish run (default 200000, --short 20000)")
	f.IntVar(&consN, "consume", 0, "messages per consume run (default 200000, --short 30000 async and 10000 sync)")
	f.IntVar(&backlog, "backlog", 0, "messages in the memory scenario's backlog (default 1000000, --short 100000)")
	f.IntVar(&rate, "rate", 10000, "end-to-end publish rate, msgs/s")
	f.DurationVar(&e2eFor, "e2e-duration", 0, "how long the end-to-end scenario publishes (default 10s, --short 3s)")
	f.DurationVar(&svcTime, "service-time", time.Millisecond, "handler service time of the scaling scenario")
	f.DurationVar(&svcD, "service-duration", 0, "ideal length of each scaling run; sets its message count (default 2s, --short 500ms)")
	f.IntSliceVar(&concurrency, "concurrency", []int{1, 4, 16, 64}, "concurrencies of the consume scenarios")
	f.IntSliceVar(&svcConc, "service-concurrency", nil, "concurrencies of the scaling scenario (default 1,4,16,64, --short 1,16,64)")
	f.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(bench.AllScenarios, ","))
	f.BoolVar(&noMiddleware, "no-middleware", false, "run jetkit without the default middleware (logging, retry, recover)")
	f.BoolVar(&noTelemetry, "no-telemetry", false, "run jetkit without the telemetry observer")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	f.StringVar(&markdown, "markdown", "", "also write the results as a markdown table to this file")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	f.StringVar(&memProfle, "memprofile", "", "write an allocation profile at the end of the run to this file")
	return cmd
}

func runBench(cmd *cobra.Command, o bench.Options, asJSON bool, markdown, cpuProfile, memProfile string) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, runErr := bench.Run(cmd.Context(), o, cmd.ErrOrStderr())
	if rep == nil {
		return runErr
	}
	out := cmd.OutOrStdout()
	var err error
	if asJSON {
		err = bench.WriteJSON(out, rep)
	} else {
		err = bench.WriteTable(out, rep)
	}
	if markdown != "" {
		err = errors.Join(err, writeMarkdown(markdown, rep))
	}
	if memProfile != "" {
		err = errors.Join(err, writeHeapProfile(memProfile))
	}
	return errors.Join(runErr, err)
}

func writeMarkdown(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--markdown: %w", err)
	}
	if err := bench.WriteMarkdown(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("--markdown %s: %w", path, err)
	}
	return f.Close()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("--memprofile %s: %w", path, err)
	}
	return nil
}
