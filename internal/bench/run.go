package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"
)

// Run runs the enabled scenarios and returns the report. It writes one
// progress line per measured row to progress (nil: none). A failed run
// returns the rows measured so far together with the error.
func Run(ctx context.Context, o Options, progress io.Writer) (*Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	rep := &Report{
		Started: time.Now().UTC(), MsgSize: o.MsgSize, Replicas: o.Replicas, Storage: "file",
		Middleware: append(append([]string{}, o.MiddlewareNames...), "recover (core dispatcher)"),
		GoVersion:  runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(),
		Rounds: o.Rounds,
	}
	if o.MemoryStorage {
		rep.Storage = "memory"
	}
	if o.Observer != nil {
		rep.Middleware = append(rep.Middleware, o.ObserverName)
	}
	e, err := newEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	rep.Server = e.serverName()
	fmt.Fprintf(progress, "jetkit bench: %s server, %s storage, R%d, %d-byte messages, middleware %v\n",
		rep.Server, rep.Storage, rep.Replicas, rep.MsgSize, rep.Middleware)
	add := func(r Result) {
		rep.Results = append(rep.Results, r)
		cpu := ""
		if c := cpuColumns(r); c[0] != "" {
			cpu = fmt.Sprintf("  (CPU µs/msg raw %s, jetkit %s)", c[0], c[1])
		}
		fmt.Fprintf(progress, "  %-14s %-22s raw %12s  jetkit %12s  %6s %-4s%s\n", r.Scenario, r.Case,
			formatValue(r.Raw, r.Unit), formatValue(r.Jetkit, r.Unit), formatRatio(r.Ratio), verdict(r), cpu)
	}
	steps := e.steps()
	for i, st := range steps {
		fmt.Fprintf(progress, "[%d/%d] %s: %s\n", i+1, len(steps), st.name, st.what)
		if err := st.run(ctx, add); err != nil {
			rep.Elapsed = time.Since(rep.Started).Seconds()
			return rep, fmt.Errorf("scenario %s: %w", st.name, err)
		}
	}
	rep.Elapsed = time.Since(rep.Started).Seconds()
	return rep, nil
}

type step struct {
	name, what string
	run        func(ctx context.Context, add func(Result)) error
}

func many(f func(context.Context) ([]Result, error)) func(context.Context, func(Result)) error {
	return func(ctx context.Context, add func(Result)) error {
		rs, err := f(ctx)
		for _, r := range rs {
			add(r)
		}
		return err
	}
}

// steps lists the enabled scenarios. The consume scenarios share one
// backlog, filled before the first of them runs.
func (e *env) steps() []step {
	o := e.opts
	var backlog struct{ stream, subject string }
	ensureBacklog := func(ctx context.Context) error {
		if backlog.stream != "" {
			return nil
		}
		n := o.ConsumeCount
		if o.enabled(ScenarioServiceTime) {
			for _, c := range o.ServiceConcurrencies {
				n = max(n, e.serviceCount(c))
			}
		}
		s, subj, err := e.consumeBacklog(ctx, "consume", n)
		backlog.stream, backlog.subject = s, subj
		return err
	}
	consume := func(sync bool) func(context.Context, func(Result)) error {
		return func(ctx context.Context, add func(Result)) error {
			if err := ensureBacklog(ctx); err != nil {
				return err
			}
			_, err := e.consume(ctx, backlog.stream, backlog.subject, sync, add)
			return err
		}
	}
	var out []step
	if o.enabled(ScenarioPublishSync) {
		out = append(out, step{ScenarioPublishSync, fmt.Sprintf("%d msgs, each waiting for its PubAck", o.PublishCount), many(e.publishSync)})
	}
	if o.enabled(ScenarioPublishAsync) {
		out = append(out, step{ScenarioPublishAsync, fmt.Sprintf("%d msgs, %d in flight at most", o.PublishCount, asyncMaxPending), many(e.publishAsync)})
	}
	if o.enabled(ScenarioWireCost) {
		out = append(out, step{ScenarioWireCost, fmt.Sprintf("raw async publish of %d msgs, bare and with parts of jetkit's headers", o.PublishCount), many(e.wireCost)})
	}
	if o.enabled(ScenarioConsumeAsync) {
		out = append(out, step{ScenarioConsumeAsync, fmt.Sprintf("%d msgs per run, no-op handler, Ack, concurrency %v", o.ConsumeCount, o.Concurrencies), consume(false)})
	}
	if o.enabled(ScenarioConsumeSync) {
		out = append(out, step{ScenarioConsumeSync, fmt.Sprintf("%d msgs per run, no-op handler, DoubleAck, concurrency %v", o.consumeCount(true), o.Concurrencies), consume(true)})
	}
	if o.enabled(ScenarioOrdered) {
		out = append(out, step{ScenarioOrdered, fmt.Sprintf("OrderedByKey at concurrency %d over %d keys, and with one hot key", orderedConcurrency, orderedKeys), func(ctx context.Context, add func(Result)) error { _, err := e.ordered(ctx, add); return err }})
	}
	if o.enabled(ScenarioE2E) {
		out = append(out, step{ScenarioE2E, fmt.Sprintf("%d msgs/s for %s, latency publish -> handler", o.Rate, o.E2EDuration), many(e.e2e)})
	}
	if o.enabled(ScenarioServiceTime) {
		out = append(out, step{ScenarioServiceTime, fmt.Sprintf("handler takes %s, concurrency %v", o.ServiceTime, o.ServiceConcurrencies),
			func(ctx context.Context, add func(Result)) error {
				if err := ensureBacklog(ctx); err != nil {
					return err
				}
				_, err := e.serviceTime(ctx, backlog.stream, backlog.subject, add)
				return err
			}})
	}
	if o.enabled(ScenarioMemory) {
		out = append(out, step{ScenarioMemory, fmt.Sprintf("consume a %d-message backlog, sampling heap and RSS", o.Backlog), many(e.memory)})
	}
	return out
}
