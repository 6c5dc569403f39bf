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

// publishSync: raw js.Publish (waits for the PubAck) against jetkit
// Topic.Publish (envelope headers, JSON codec, waits for the PubAck).
func (e *env) publishSync(ctx context.Context) (Result, error) {
	n := e.opts.PublishCount
	raw, err := e.timedPublish(ctx, "pub-sync-raw", func(ctx context.Context, subject string, sw *stopwatch) error {
		nc, js, err := e.rawConn(ctx, "raw")
		if err != nil {
			return err
		}
		defer nc.Close()
		sw.start()
		for i := range n {
			if _, err := js.Publish(ctx, subject, e.rawPayload(time.Now())); err != nil {
				return fmt.Errorf("raw publish %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	jk, err := e.timedPublish(ctx, "pub-sync-jetkit", func(ctx context.Context, subject string, sw *stopwatch) error {
		return e.withTopic(ctx, subject, func(svc *framework.Service, topic *framework.Topic[Event]) error {
			sw.start()
			for i := range n {
				if _, err := topic.Publish(ctx, svc, e.event(time.Now())); err != nil {
					return fmt.Errorf("jetkit publish %d: %w", i, err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return Result{}, err
	}
	return newResult(ScenarioPublishSync, "", "msgs/s", rate(n, raw), rate(n, jk), ratioAtLeast(0.95), ""), nil
}

// publishAsync: raw PublishMsgAsync against jetkit Topic.PublishAsync,
// both bounded to the same number in flight, timed until every ack is in.
func (e *env) publishAsync(ctx context.Context) (Result, error) {
	n := e.opts.PublishCount
	raw, err := e.timedPublish(ctx, "pub-async-raw", func(ctx context.Context, subject string, sw *stopwatch) error {
		nc, js, err := e.rawConn(ctx, "raw")
		if err != nil {
			return err
		}
		defer nc.Close()
		sw.start()
		for i := range n {
			err := retryStalled(ctx, func() error {
				_, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: e.rawPayload(time.Now())})
				return err
			})
			if err != nil {
				return fmt.Errorf("raw async publish %d: %w", i, err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("raw async publish: %d acks missing: %w", js.PublishAsyncPending(), ctx.Err())
		}
	})
	if err != nil {
		return Result{}, err
	}
	jk, err := e.timedPublish(ctx, "pub-async-jetkit", func(ctx context.Context, subject string, sw *stopwatch) error {
		return e.withTopic(ctx, subject, func(svc *framework.Service, topic *framework.Topic[Event]) error {
			sw.start()
			for i := range n {
				err := retryStalled(ctx, func() error {
					_, err := topic.PublishAsync(ctx, svc, e.event(time.Now()))
					return err
				})
				if err != nil {
					return fmt.Errorf("jetkit async publish %d: %w", i, err)
				}
			}
			return svc.Conn().FlushAsync(ctx)
		})
	})
	if err != nil {
		return Result{}, err
	}
	return newResult(ScenarioPublishAsync, "", "msgs/s", rate(n, raw), rate(n, jk), ratioAtLeast(0.9), ""), nil
}

// timedPublish runs publish on a fresh stream and times it from
// sw.start (after connecting) until publish returns.
func (e *env) timedPublish(ctx context.Context, what string, publish func(ctx context.Context, subject string, sw *stopwatch) error) (time.Duration, error) {
	name, subject, err := e.stream(ctx, what)
	if err != nil {
		return 0, err
	}
	defer e.deleteStream(name)
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	var sw stopwatch
	if err := publish(ctx, subject, &sw); err != nil {
		return 0, err
	}
	return sw.stop(), nil
}

// withTopic runs f with a fresh jetkit service and a topic on subject.
func (e *env) withTopic(ctx context.Context, subject string, f func(*framework.Service, *framework.Topic[Event]) error) error {
	topic, err := framework.NewTopicErr[Event](subject)
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
type stopwatch struct{ t0 time.Time }

func (s *stopwatch) start() { s.t0 = time.Now() }

func (s *stopwatch) stop() time.Duration { return time.Since(s.t0) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
