package bench

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
)

// latencies records publish-to-handler times of one run.
type latencies struct {
	ns   []int64
	next atomic.Int64
	done chan struct{}
}

func newLatencies(n int) *latencies {
	return &latencies{ns: make([]int64, n), done: make(chan struct{})}
}

func (l *latencies) record(sentNs int64) {
	d := time.Now().UnixNano() - sentNs
	i := l.next.Add(1) - 1
	if i < int64(len(l.ns)) {
		l.ns[i] = d
	}
	if i == int64(len(l.ns))-1 {
		close(l.done)
	}
}

func (l *latencies) wait(ctx context.Context, what string) error {
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %d of %d messages arrived: %w", what, l.next.Load(), len(l.ns), ctx.Err())
	}
}

// quantiles are p50, p90, p99 and p99.9 in milliseconds.
func (l *latencies) quantiles() [4]float64 {
	s := slices.Clone(l.ns)
	slices.Sort(s)
	var q [4]float64
	for i, p := range []float64{0.5, 0.9, 0.99, 0.999} {
		q[i] = float64(s[int(p*float64(len(s)-1))]) / 1e6
	}
	return q
}

// pace calls publish total times at rate per second, in 1 ms steps.
func pace(ctx context.Context, rate, total int, publish func() error) error {
	t0 := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < total {
		due := min(total, int(time.Since(t0).Seconds()*float64(rate))+1)
		for ; sent < due; sent++ {
			if err := publish(); err != nil {
				return fmt.Errorf("message %d: %w", sent, err)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// e2e publishes at a fixed rate while consuming, and reports the latency
// from publish to handler: raw PublishMsgAsync + Consume/Ack against jetkit
// PublishAsync + Subscribe (concurrency 1, async ack, bench middleware).
// A third run sends raw messages with jetkit's headers, which splits what
// the wire format costs the server (header parsing, Nats-Msg-Id
// de-duplication) from what the framework adds.
func (e *env) e2e(ctx context.Context) ([]Result, error) {
	total := max(1, int(e.opts.E2EDuration.Seconds()*float64(e.opts.Rate)))
	raw, err := e.rawE2E(ctx, total, false)
	if err != nil {
		return nil, err
	}
	rawH, err := e.rawE2E(ctx, total, true)
	if err != nil {
		return nil, err
	}
	jk, err := e.jetkitE2E(ctx, total)
	if err != nil {
		return nil, err
	}
	rq, hq, jq := raw.quantiles(), rawH.quantiles(), jk.quantiles()
	note := fmt.Sprintf("%d msgs at %d/s", total, e.opts.Rate)
	var out []Result
	for i, name := range []string{"p50", "p90", "p99", "p99.9"} {
		var t *target
		if name == "p99" {
			t = ratioAtMost(1.2)
		}
		out = append(out, newResult(ScenarioE2E, name, "ms", rq[i], jq[i], t, note))
	}
	out = append(out, newResult(ScenarioE2E, "p99 vs raw+headers", "ms", hq[2], jq[2], nil,
		"raw with jetkit's CloudEvents headers and Nats-Msg-Id (server-side de-duplication)"))
	return out, nil
}

func (e *env) rawE2E(ctx context.Context, total int, headers bool) (*latencies, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	what := "e2e-raw"
	if headers {
		what = "e2e-rawh"
	}
	stream, subject, err := e.stream(ctx, what, publishDuplicates)
	if err != nil {
		return nil, err
	}
	defer e.deleteStream(stream)
	nc, js, err := e.rawConn(ctx, "raw")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "raw_e2e", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy, FilterSubject: subject,
	})
	if err != nil {
		return nil, fmt.Errorf("raw consumer on %s: %w", stream, err)
	}
	l := newLatencies(total)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		l.record(rawSent(m.Data()))
		_ = m.Ack()
	})
	if err != nil {
		return nil, fmt.Errorf("raw consume %s: %w", stream, err)
	}
	defer cc.Stop()
	err = pace(ctx, e.opts.Rate, total, func() error {
		return retryStalled(ctx, func() error {
			now := time.Now()
			msg := &nats.Msg{Subject: subject, Data: e.rawPayload(now)}
			if headers {
				msg.Header = eventHeaders(subject, now)
			}
			_, err := js.PublishMsgAsync(msg)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("raw e2e publish: %w", err)
	}
	return l, l.wait(ctx, "raw e2e")
}

func (e *env) jetkitE2E(ctx context.Context, total int) (*latencies, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	stream, subject, err := e.stream(ctx, "e2e-jetkit", publishDuplicates)
	if err != nil {
		return nil, err
	}
	defer e.deleteStream(stream)
	topic, err := framework.NewTopic[Event](subject)
	if err != nil {
		return nil, err
	}
	svc, err := e.service(ctx)
	if err != nil {
		return nil, err
	}
	defer stopService(svc)
	l := newLatencies(total)
	_, err = framework.Subscribe(ctx, svc, topic, "jetkit_e2e", func(ctx context.Context, ev Event, m *framework.Message) error {
		l.record(ev.SentNs)
		return nil
	}, e.subOpts(framework.SubscribeOptions{Stream: stream, DeliverNew: true, Concurrency: 1, AckMode: framework.AckModeAsync}))
	if err != nil {
		return nil, fmt.Errorf("jetkit subscribe %s: %w", stream, err)
	}
	err = pace(ctx, e.opts.Rate, total, func() error {
		return retryStalled(ctx, func() error {
			_, err := topic.PublishAsync(ctx, svc, e.event(time.Now()))
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("jetkit e2e publish: %w", err)
	}
	return l, l.wait(ctx, "jetkit e2e")
}
