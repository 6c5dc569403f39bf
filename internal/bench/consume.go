package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
)

// consumeRun describes one consume measurement.
type consumeRun struct {
	stream, subject string
	n, concurrency  int
	sync            bool          // DoubleAck instead of Ack
	work            time.Duration // handler service time
}

// counter times a run from the first delivery to the n-th settled one.
type counter struct {
	n     int64
	count atomic.Int64
	first atomic.Int64
	last  atomic.Int64
	done  chan struct{}
}

func newCounter(n int) *counter { return &counter{n: int64(n), done: make(chan struct{})} }

// begin marks a delivery's arrival; the first one starts the clock.
func (k *counter) begin() {
	if k.first.Load() == 0 {
		k.first.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// settled counts a finished message; the n-th stops the clock.
func (k *counter) settled() {
	if k.count.Add(1) == k.n {
		k.last.Store(time.Now().UnixNano())
		close(k.done)
	}
}

func (k *counter) rate() float64 {
	d := time.Duration(k.last.Load() - k.first.Load())
	return rate(int(k.n), d)
}

func (k *counter) wait(ctx context.Context, what string) error {
	select {
	case <-k.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %d of %d messages after %s: %w", what, k.count.Load(), k.n, time.Since(time.Unix(0, k.first.Load())).Round(time.Millisecond), ctx.Err())
	}
}

// rawConsume: nats.go Consume with the library's defaults. Ack is sent
// from the callback; with concurrency > 1 the callback hands messages to
// that many goroutines over a channel (the usual raw worker pool).
func (e *env) rawConsume(ctx context.Context, r consumeRun) (measurement, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	nc, js, err := e.rawConn(ctx, "raw")
	if err != nil {
		return measurement{}, err
	}
	defer nc.Close()
	durable := fmt.Sprintf("raw_%d", e.nextSeq())
	cons, err := js.CreateOrUpdateConsumer(ctx, r.stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: r.subject,
	})
	if err != nil {
		return measurement{}, fmt.Errorf("raw consumer on %s: %w", r.stream, err)
	}
	defer e.deleteConsumer(r.stream, durable)

	k := newCounter(r.n)
	handle := func(m jetstream.Msg) {
		if r.work > 0 {
			time.Sleep(r.work)
		}
		var err error
		if r.sync {
			actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = m.DoubleAck(actx)
			acancel()
		} else {
			err = m.Ack()
		}
		if err == nil {
			k.settled()
		}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var cb jetstream.MessageHandler
	if r.concurrency == 1 {
		cb = func(m jetstream.Msg) { k.begin(); handle(m) }
	} else {
		work := make(chan jetstream.Msg)
		for range r.concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case m := <-work:
						handle(m)
					case <-quit:
						return
					}
				}
			}()
		}
		cb = func(m jetstream.Msg) {
			k.begin()
			select {
			case work <- m:
			case <-quit:
			}
		}
	}
	cpu := startCPU()
	cc, err := cons.Consume(cb)
	if err != nil {
		close(quit)
		return measurement{}, fmt.Errorf("raw consume %s: %w", r.stream, err)
	}
	err = k.wait(ctx, "raw consume")
	m := cpu.measure(r.n, k.rate())
	cc.Stop()
	close(quit)
	wg.Wait()
	if err != nil {
		return measurement{}, err
	}
	return m, nil
}

// jetkitConsume: framework.Subscribe with the bench middleware, timed
// from the first delivery until the subscription has acked n messages.
func (e *env) jetkitConsume(ctx context.Context, r consumeRun) (measurement, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	topic, err := framework.NewTopic[Event](r.subject)
	if err != nil {
		return measurement{}, err
	}
	svc, err := e.service(ctx)
	if err != nil {
		return measurement{}, err
	}
	defer stopService(svc)
	durable := fmt.Sprintf("jetkit_%d", e.nextSeq())
	defer e.deleteConsumer(r.stream, durable)
	k := newCounter(r.n)
	handled := make(chan struct{})
	var count atomic.Int64
	opts := e.subOpts(framework.SubscribeOptions{Stream: r.stream, Concurrency: r.concurrency, AckMode: ackMode(r.sync)})
	cpu := startCPU()
	sub, err := framework.Subscribe(ctx, svc, topic, durable, func(ctx context.Context, ev Event, m *framework.Message) error {
		k.begin()
		if r.work > 0 {
			time.Sleep(r.work)
		}
		if count.Add(1) == int64(r.n) {
			close(handled)
		}
		return nil
	}, opts)
	if err != nil {
		return measurement{}, fmt.Errorf("jetkit subscribe %s: %w", r.stream, err)
	}
	select {
	case <-handled:
	case <-ctx.Done():
		return measurement{}, fmt.Errorf("jetkit consume: %d of %d messages handled: %w", count.Load(), r.n, ctx.Err())
	}
	// The handler has seen the n-th message; the run ends when its ack is
	// sent (async) or confirmed (sync).
	for sub.Stats().Acked < uint64(r.n) {
		if ctx.Err() != nil {
			st := sub.Stats()
			return measurement{}, fmt.Errorf("jetkit consume: %d of %d acked (ack failures %d): %w", st.Acked, r.n, st.AckFailed, ctx.Err())
		}
		time.Sleep(200 * time.Microsecond)
	}
	k.last.Store(time.Now().UnixNano())
	return cpu.measure(r.n, k.rate()), nil
}

// subOpts adds the bench-wide subscription options to o.
func (e *env) subOpts(o framework.SubscribeOptions) *framework.SubscribeOptions {
	o.Prefetch = e.opts.Prefetch // 0: adaptive
	return &o
}

// ackMode is the ack mode of a run: sync or async.
func ackMode(sync bool) framework.AckMode {
	if sync {
		return framework.AckModeSync
	}
	return framework.AckModeAsync
}

func (e *env) nextSeq() int {
	e.seq++
	return e.seq
}

func (e *env) deleteConsumer(stream, durable string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = e.adminJS.DeleteConsumer(ctx, stream, durable)
}

// consumeBacklog creates the stream the consume scenarios read, filled
// with n jetkit events.
func (e *env) consumeBacklog(ctx context.Context, what string, n int) (stream, subject string, err error) {
	stream, subject, err = e.stream(ctx, what, backlogDuplicates)
	if err != nil {
		return "", "", err
	}
	if err := e.fill(ctx, subject, n); err != nil {
		return "", "", err
	}
	return stream, subject, nil
}

// consume measures raw and jetkit at each concurrency, in async or sync
// ack mode, over the same backlog.
func (e *env) consume(ctx context.Context, stream, subject string, sync bool, progress func(Result)) ([]Result, error) {
	scenario, t := ScenarioConsumeAsync, ratioAtLeast(0.9)
	if sync {
		scenario = ScenarioConsumeSync
	}
	var out []Result
	for _, c := range e.opts.Concurrencies {
		run := consumeRun{stream: stream, subject: subject, n: e.opts.consumeCount(sync), concurrency: c, sync: sync}
		rawRun := run
		note := "raw: Consume+Ack in the callback"
		if sync {
			note = fmt.Sprintf("raw: %d goroutine(s) calling DoubleAck", c)
		} else {
			rawRun.concurrency = 1
		}
		ms, err := e.compare(ctx, e.opts.Rounds,
			side{"raw", func(ctx context.Context) (measurement, error) { return e.rawConsume(ctx, rawRun) }},
			side{"jetkit", func(ctx context.Context) (measurement, error) { return e.jetkitConsume(ctx, run) }})
		if err != nil {
			return out, err
		}
		raw, jk := ms[0], ms[1]
		var rowTarget *target
		if !sync || c == 16 {
			rowTarget = t
		}
		r := throughputResult(scenario, fmt.Sprintf("c=%d", c), raw, jk, rowTarget, note)
		progress(r)
		out = append(out, r)
	}
	return out, nil
}

// serviceCount is how many messages a scaling run at concurrency c takes.
func (e *env) serviceCount(c int) int {
	if e.opts.ServiceTime <= 0 {
		return e.opts.ConsumeCount
	}
	return max(100, int(time.Duration(c)*e.opts.ServiceDuration/e.opts.ServiceTime))
}

// serviceTime measures a handler with a fixed service time at several
// concurrencies, raw worker pool against jetkit.
func (e *env) serviceTime(ctx context.Context, stream, subject string, progress func(Result)) ([]Result, error) {
	var out []Result
	for _, c := range e.opts.ServiceConcurrencies {
		run := consumeRun{stream: stream, subject: subject, n: e.serviceCount(c), concurrency: c, work: e.opts.ServiceTime}
		// One run per side: the handlers sleep, so the run is paced by
		// the sleeps rather than by the CPU another tenant may take.
		ms, err := e.compare(ctx, 1,
			side{"raw", func(ctx context.Context) (measurement, error) { return e.rawConsume(ctx, run) }},
			side{"jetkit", func(ctx context.Context) (measurement, error) { return e.jetkitConsume(ctx, run) }})
		if err != nil {
			return out, err
		}
		raw, jk := ms[0], ms[1]
		note := ""
		if e.opts.ServiceTime > 0 {
			note = fmt.Sprintf("ideal %.0f msgs/s (%d x 1/%s)", float64(c)/e.opts.ServiceTime.Seconds(), c, e.opts.ServiceTime)
		}
		r := throughputResult(ScenarioServiceTime, fmt.Sprintf("c=%d", c), raw, jk, nil, note)
		progress(r)
		out = append(out, r)
	}
	return out, nil
}
