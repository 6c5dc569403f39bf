package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
)

// publishSync: raw js.PublishMsg (waits for the PubAck) against jetkit
// Topic.Publish (envelope headers, JSON codec, waits for the PubAck).
func (e *env) publishSync(ctx context.Context) ([]Result, error) {
	return e.publish(ctx, ScenarioPublishSync, false, ratioAtLeast(0.95))
}

// publishAsync: raw PublishMsgAsync against jetkit Topic.PublishAsync,
// both bounded to the same number in flight, timed until every ack is in.
func (e *env) publishAsync(ctx context.Context) ([]Result, error) {
	return e.publish(ctx, ScenarioPublishAsync, true, ratioAtLeast(0.9))
}

// publish measures raw nats.go, raw nats.go sending the same headers as
// jetkit (CloudEvents and Nats-Msg-Id), and jetkit. The second row splits
// jetkit's cost into what the server pays for the headers and
// de-duplication and what the framework itself adds.
func (e *env) publish(ctx context.Context, scenario string, async bool, t *target) ([]Result, error) {
	ms, err := e.compare(ctx, e.opts.Rounds,
		side{"raw", func(ctx context.Context) (measurement, error) {
			return e.timedPublish(ctx, scenario+"-raw", e.rawPublisher(async, nil))
		}},
		side{"raw+headers", func(ctx context.Context) (measurement, error) {
			return e.timedPublish(ctx, scenario+"-rawh", e.rawPublisher(async, eventHeaders))
		}},
		side{"jetkit", func(ctx context.Context) (measurement, error) {
			return e.timedPublish(ctx, scenario+"-jetkit", e.jetkitPublisher(async))
		}})
	if err != nil {
		return nil, err
	}
	raw, rawH, jk := ms[0], ms[1], ms[2]
	return []Result{
		throughputResult(scenario, "vs raw", raw, jk, t, "raw: no headers"),
		throughputResult(scenario, "vs raw+headers", rawH, jk, nil, "raw with jetkit's CloudEvents headers and Nats-Msg-Id (server-side de-duplication)"),
	}, nil
}

// headerFunc builds the headers of one raw message; nil sends none.
type headerFunc func(subject string, sent time.Time) nats.Header

// rawPublisher publishes PublishCount messages with nats.go, with the
// headers headers builds (none when nil).
func (e *env) rawPublisher(async bool, headers headerFunc) func(context.Context, string, *stopwatch) error {
	return func(ctx context.Context, subject string, sw *stopwatch) error {
		nc, js, err := e.rawConn(ctx, "raw")
		if err != nil {
			return err
		}
		defer nc.Close()
		sw.start()
		for i := range e.opts.PublishCount {
			now := time.Now()
			msg := &nats.Msg{Subject: subject, Data: e.rawPayload(now)}
			if headers != nil {
				msg.Header = headers(subject, now)
			}
			if async {
				err = retryStalled(ctx, func() error {
					_, err := js.PublishMsgAsync(msg)
					return err
				})
			} else {
				_, err = js.PublishMsg(ctx, msg)
			}
			if err != nil {
				return fmt.Errorf("raw publish %d: %w", i, err)
			}
		}
		if !async {
			return nil
		}
		select {
		case <-js.PublishAsyncComplete():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("raw async publish: %d acks missing: %w", js.PublishAsyncPending(), ctx.Err())
		}
	}
}

// jetkitPublisher publishes PublishCount typed events with jetkit.
func (e *env) jetkitPublisher(async bool) func(context.Context, string, *stopwatch) error {
	return func(ctx context.Context, subject string, sw *stopwatch) error {
		return e.withTopic(ctx, subject, func(svc *framework.Service, topic *framework.Topic[Event]) error {
			sw.start()
			for i := range e.opts.PublishCount {
				var err error
				if async {
					err = retryStalled(ctx, func() error {
						_, err := topic.PublishAsync(ctx, svc, e.event(time.Now()))
						return err
					})
				} else {
					_, err = topic.Publish(ctx, svc, e.event(time.Now()))
				}
				if err != nil {
					return fmt.Errorf("jetkit publish %d: %w", i, err)
				}
			}
			if async {
				return svc.Conn().FlushAsync(ctx)
			}
			return nil
		})
	}
}

// timedPublish runs publish on a fresh stream and times it from
// sw.start (after connecting) until publish returns.
func (e *env) timedPublish(ctx context.Context, what string, publish func(ctx context.Context, subject string, sw *stopwatch) error) (measurement, error) {
	name, subject, err := e.stream(ctx, what, publishDuplicates)
	if err != nil {
		return measurement{}, err
	}
	defer e.deleteStream(name)
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	var sw stopwatch
	if err := publish(ctx, subject, &sw); err != nil {
		return measurement{}, err
	}
	n := e.opts.PublishCount
	return sw.cpu.measure(n, rate(n, sw.stop())), nil
}

// withTopic runs f with a fresh jetkit service and a topic on subject.
func (e *env) withTopic(ctx context.Context, subject string, f func(*framework.Service, *framework.Topic[Event]) error) error {
	topic, err := framework.NewTopic[Event](subject)
	if err != nil {
		return err
	}
	svc, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer stopService(svc)
	return f(svc, topic)
}

// retryStalled calls publish again while it fails because too many async
// publishes are outstanding: nats.go gives up after its stall wait (200 ms)
// rather than waiting, which a loaded server can exceed.
func retryStalled(ctx context.Context, publish func() error) error {
	for {
		err := publish()
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
			return err
		}
	}
}

// stopwatch times a run from start to stop.
type stopwatch struct {
	t0  time.Time
	cpu cpuMeter
}

func (s *stopwatch) start() { s.t0, s.cpu = time.Now(), startCPU() }

func (s *stopwatch) stop() time.Duration { return time.Since(s.t0) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
