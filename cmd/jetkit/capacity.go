package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"

	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/cmd/jetkit/internal/capview"
	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/capacity"
	"github.com/jetkit/jetkit/internal/httpserver"
)

type capacityOpts struct {
	stream, consumer string
	url              string
	interval         time.Duration
	window           int
	target, startup  time.Duration
	instances        int
	mu, rho          float64
	rateSamples      int
	once, asJSON     bool
	onceSamples      int
	web              string
	add              int
	history          bool
	historyKeep      time.Duration
	historyMax       int
}

// newCapacityCmd is `jetkit capacity`: a live view of a consumer's lag,
// rates and the instances it needs to drain in time.
func newCapacityCmd() *cobra.Command {
	var o capacityOpts
	cmd := &cobra.Command{
		Use:   "capacity --stream S --consumer C",
		Short: "Watch a consumer's lag, rates, status and the instances it needs to drain in time",
		Long: `Samples a durable consumer and its stream every --interval and shows, refreshed
in place: status (OK, WARN: lag growing, STALL: waiting work but no acks,
STOP: nobody consuming), arrival rate λ, processed rate, per-instance
service rate μ and where it came from, backlog, time lag, utilisation,
time to drain, and how many instances drain the backlog within
--target-drain when each new one needs --startup-delay to start working.

μ is measured from throughput while the consumer is saturated (messages
waited throughout the window); until then it is unknown unless --mu gives
it. JetStream does not say how many instances pull from a consumer: pass
--instances, or give --mu and it is derived while the consumer is
saturated (otherwise 1 is assumed, and the output says so).

The connection uses the JETKIT_NATS_* environment (credentials, TLS);
--url overrides the servers. --once --json prints one estimate for
scripts; --web ADDR also serves an HTML page with charts and /metrics.
With --web every estimate is also kept in the stream JETKIT_CAPACITY
(--history; created if missing, --history-keep and --history-max per
consumer), so the page's charts go back further than this process and
every watcher of the consumer shares them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCapacity(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.stream, "stream", "", "stream name (required)")
	f.StringVar(&o.consumer, "consumer", "", "durable consumer name (required)")
	f.StringVar(&o.url, "url", "", "NATS servers, comma separated (default: JETKIT_NATS_URL or nats://127.0.0.1:4222)")
	f.DurationVar(&o.interval, "interval", time.Second, "sampling interval")
	f.IntVar(&o.window, "window", 120, "samples kept (the charts' span)")
	f.IntVar(&o.rateSamples, "rate-samples", 30, "newest samples rates are measured over")
	f.DurationVar(&o.target, "target-drain", time.Minute, "drain the backlog within this time")
	f.DurationVar(&o.startup, "startup-delay", 15*time.Second, "time a new instance takes to start working")
	f.IntVar(&o.instances, "instances", 0, "instances consuming now (0: count the instances registered in KV jetkit_instances, else derive as processed rate / --mu while saturated, else assume 1)")
	f.Float64Var(&o.mu, "mu", 0, "per-instance service rate in messages/s, if known (default: measured)")
	f.Float64Var(&o.rho, "utilisation-target", 0.8, "utilisation the steady-state instance count aims for")
	f.BoolVar(&o.once, "once", false, "sample --once-samples times, print one estimate and exit")
	f.IntVar(&o.onceSamples, "once-samples", 5, "samples taken with --once (at least 2)")
	f.BoolVar(&o.asJSON, "json", false, "with --once: print the estimate as JSON")
	f.IntVar(&o.add, "add", -1, "also predict the drain with this many instances added now, each ready after --startup-delay (-1: none)")
	f.StringVar(&o.web, "web", "", "also serve an HTML view and /metrics on this address, e.g. 127.0.0.1:8090")
	f.BoolVar(&o.history, "history", true, "with --web: keep the estimates in the stream JETKIT_CAPACITY (false: in memory only)")
	f.DurationVar(&o.historyKeep, "history-keep", 24*time.Hour, "with --web: how far back the history goes")
	f.IntVar(&o.historyMax, "history-max", 10000, "with --web: most estimates kept per consumer")
	_ = cmd.MarkFlagRequired("stream")
	_ = cmd.MarkFlagRequired("consumer")
	return cmd
}

func (o capacityOpts) validate() error {
	var p []string
	if o.interval <= 0 {
		p = append(p, fmt.Sprintf("--interval %s: must be positive", o.interval))
	}
	if o.window < 2 {
		p = append(p, fmt.Sprintf("--window %d: must be at least 2", o.window))
	}
	if o.once && o.onceSamples < 2 {
		p = append(p, fmt.Sprintf("--once-samples %d: rates need at least 2", o.onceSamples))
	}
	if o.asJSON && !o.once {
		p = append(p, "--json needs --once (the live view is for people; scripts use --once --json or /estimate.json with --web)")
	}
	if o.web != "" && o.once {
		p = append(p, "--web with --once: the page would vanish at once; drop one of them")
	}
	if o.target <= 0 {
		p = append(p, fmt.Sprintf("--target-drain %s: must be positive", o.target))
	}
	if o.startup < 0 {
		p = append(p, fmt.Sprintf("--startup-delay %s: must not be negative", o.startup))
	}
	if o.instances < 0 {
		p = append(p, fmt.Sprintf("--instances %d: must not be negative", o.instances))
	}
	if o.mu < 0 {
		p = append(p, fmt.Sprintf("--mu %g: must not be negative", o.mu))
	}
	if o.rho <= 0 || o.rho > 1 {
		p = append(p, fmt.Sprintf("--utilisation-target %g: must be in (0, 1]", o.rho))
	}
	if len(p) > 0 {
		return errors.New(strings.Join(p, "; "))
	}
	return nil
}

func runCapacity(ctx context.Context, out, errOut io.Writer, o capacityOpts) error {
	if err := o.validate(); err != nil {
		return err
	}
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "jetkit-capacity"
	cfg, err := cfg.FromEnv("")
	if err != nil {
		return err
	}
	if o.url != "" {
		cfg.URLs = strings.Split(o.url, ",")
	}
	if cfg.ClientName == "" {
		cfg.ClientName = "jetkit-capacity"
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	conn, err := framework.Connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		conn.NC.SetDisconnectErrHandler(nil) // a deliberate close is not worth a warning
		conn.Close()
	}()
	sampler, err := capacity.NewSampler(conn.JS, o.stream, o.consumer,
		capacity.Interval(o.interval), capacity.Window(o.window), capacity.RequestTimeout(cfg.RequestTimeout))
	if err != nil {
		return err
	}
	est := capacity.NewEstimator(capacity.Params{
		Instances: o.instances, ServiceRate: o.mu, TargetDrain: o.target, StartupDelay: o.startup,
		UtilisationTarget: o.rho, RateSamples: o.rateSamples,
	})
	if o.once {
		return capacityOnce(ctx, out, errOut, sampler, est, o)
	}
	var hist *capacity.History
	if o.web != "" {
		hist = capacity.NewHistory(o.historyKeep, o.historyMax)
		if o.history {
			h, err := capacity.OpenHistory(ctx, conn.JS, o.stream, o.consumer, o.historyKeep, o.historyMax)
			if err != nil {
				fmt.Fprintf(errOut, "history kept in memory only: %v\n", err)
			} else {
				hist = h
				if n := h.Skipped(); n > 0 {
					fmt.Fprintf(errOut, "history: %d malformed record(s) in %s skipped\n", n, capacity.HistoryStream)
				}
			}
		}
		stop, err := serveCapacityWeb(o.web, sampler, est, hist, errOut)
		if err != nil {
			return err
		}
		defer stop()
	}
	return capacityLive(ctx, out, errOut, sampler, est, hist, o)
}

func capacityOnce(ctx context.Context, out, progress io.Writer, s *capacity.Sampler, est *capacity.Estimator, o capacityOpts) error {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for i := range o.onceSamples {
		if _, err := s.Sample(ctx); err != nil {
			return err
		}
		fmt.Fprintf(progress, "\rsampling %s/%s: %d of %d every %s", o.stream, o.consumer, i+1, o.onceSamples, o.interval)
		if i == o.onceSamples-1 {
			fmt.Fprintln(progress)
		}
		if i == o.onceSamples-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	e, err := est.Estimate(o.stream, o.consumer, s.Samples())
	if err != nil {
		return err
	}
	if o.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		var whatIf *capacity.Prediction
		if pr, ok := e.Predict(o.add); ok {
			whatIf = &pr
		}
		// The estimate's own MarshalJSON (nulls for unknowns) plus what_if:
		// embedding Estimate would promote its MarshalJSON and drop what_if.
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return err
		}
		if whatIf != nil {
			if fields["what_if"], err = json.Marshal(whatIf); err != nil {
				return err
			}
		}
		return enc.Encode(fields)
	}
	_, err = io.WriteString(out, capacityView(e, s.Samples(), o, nil))
	return err
}

func capacityLive(ctx context.Context, out, errOut io.Writer, s *capacity.Sampler, est *capacity.Estimator, hist *capacity.History, o capacityOpts) error {
	inPlace := isTerminal(out)
	var histWarned time.Time
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		_, serr := s.Sample(ctx)
		if ctx.Err() != nil {
			return nil
		}
		samples := s.Samples()
		var text string
		if e, err := est.Estimate(o.stream, o.consumer, samples); err == nil {
			if hist != nil {
				if herr := hist.Record(ctx, e); herr != nil && time.Since(histWarned) > time.Minute {
					histWarned = time.Now()
					fmt.Fprintf(errOut, "%v (kept in memory)\n", herr)
				}
			}
			text = capacityView(e, samples, o, serr)
			if !inPlace {
				text = capacityLine(e, serr)
			}
		} else {
			text = fmt.Sprintf("%s waiting for samples: %v\n", time.Now().Format("15:04:05"), errors.Join(err, serr))
		}
		if inPlace {
			text = "\x1b[H\x1b[2J" + text // cursor home, clear: refresh in place
		}
		if _, err := io.WriteString(out, text); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// capacityView is the full-screen view.
func capacityView(e capacity.Estimate, samples []capacity.Sample, o capacityOpts, sampleErr error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "jetkit capacity  %s/%s  every %s  %s", o.stream, o.consumer, o.interval, e.At.Format("15:04:05"))
	if !o.once {
		b.WriteString("  (Ctrl-C to stop)")
	}
	b.WriteString("\n\n")
	for _, l := range capview.Summary(e) {
		fmt.Fprintf(&b, "%-15s %s\n", l.Label, l.Value)
	}
	if o.add >= 0 {
		what := "μ unknown"
		if pr, ok := e.Predict(o.add); ok {
			what = "never drains"
			if pr.Drains {
				what = "drained in " + capview.HumanDuration(time.Duration(pr.Drain))
			}
		}
		fmt.Fprintf(&b, "%-15s %s\n", fmt.Sprintf("what if +%d", o.add), what)
	}
	backlogs := capview.Backlogs(samples)
	top := 0.0
	for _, v := range backlogs {
		top = max(top, v)
	}
	fmt.Fprintf(&b, "\n%-15s %s  max %.0f over %d samples\n", "backlog trend", capview.Sparkline(backlogs, 60), top, len(backlogs))
	if sampleErr != nil {
		fmt.Fprintf(&b, "\nlast sample failed: %v\n", sampleErr)
	}
	return b.String()
}

// capacityLine is one line per interval when the output is not a terminal.
func capacityLine(e capacity.Estimate, sampleErr error) string {
	mu, rho := "unknown", "unknown"
	if e.ServiceSource != capacity.SourceUnknown {
		mu = fmt.Sprintf("%.1f/s[%s]", e.ServiceRate.PerSecond, e.ServiceSource)
	}
	if e.Utilisation >= 0 && e.ServiceSource != capacity.SourceUnknown {
		rho = fmt.Sprintf("%.2f", e.Utilisation)
	}
	line := fmt.Sprintf("%s %-5s backlog=%.0f lag=%s λ=%.1f/s processed=%.1f/s μ=%s ρ=%s recommend=%s needed=%s",
		e.At.Format("15:04:05"), e.Status, e.Backlog, capview.HumanDuration(time.Duration(e.TimeLag)), e.Arrival.PerSecond,
		e.Processed.PerSecond, mu, rho, countOrUnknown(e.Plan.Total), countOrUnknown(e.ReplicasNeeded))
	if sampleErr != nil {
		line += " sample_error=" + fmt.Sprintf("%q", sampleErr.Error())
	}
	return line + "\n"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// serveCapacityWeb serves the HTML view, /estimate.json and /metrics on addr.
func serveCapacityWeb(addr string, s *capacity.Sampler, est *capacity.Estimator, hist *capacity.History, errOut io.Writer) (stop func(), err error) {
	metrics, shutdown, err := capacity.PrometheusHandler(capacity.NamedEstimator{Stream: s.Stream(), Consumer: s.Consumer(), Estimator: est})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = shutdown(context.Background())
		return nil, fmt.Errorf("--web %s: listen: %w", addr, err)
	}
	srv := httpserver.New(capview.Handler(s, est, hist, metrics), httpserver.Options{})
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(errOut, "capacity view on http://%s/ (metrics at /metrics)\n", ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = shutdown(ctx)
	}, nil
}

// countOrUnknown shows a replica count, or "unknown" for the estimator's
// negative "cannot tell".
func countOrUnknown(n int) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.Itoa(n)
}
