package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// The ordered scenario compares jetkit with itself: OrderedByKey against
// the same subscription without it, and the keys of a backlog with one hot
// key against the same keys without it. Both columns are jetkit; the
// notes say which is which.

const (
	orderedKeys        = 1000
	orderedConcurrency = 16
	hotKey             = "hot"
)

// keyedBacklog creates a stream filled with n events over keys keys
// (subject.<key>, keys taking turns); with hot, every other event is of
// the key "hot" instead. It returns how many events are not hot.
func (e *env) keyedBacklog(ctx context.Context, what string, n, keys int, hot bool) (stream, subject string, others int, err error) {
	stream, subject, err = e.stream(ctx, what, backlogDuplicates)
	if err != nil {
		return "", "", 0, err
	}
	topic, err := framework.NewTopic[Event](subject, framework.Keyed())
	if err != nil {
		return "", "", 0, err
	}
	c, err := framework.Connect(ctx, e.config(), e.log)
	if err != nil {
		return "", "", 0, err
	}
	defer c.Close()
	for i := range n {
		key := "k" + strconv.Itoa(i%keys)
		if hot && i%2 == 0 {
			key = hotKey
		} else {
			others++
		}
		err := retryStalled(ctx, func() error {
			_, err := topic.PublishAsync(ctx, c, e.event(time.Now()), framework.WithKey(key))
			return err
		})
		if err != nil {
			return "", "", 0, fmt.Errorf("fill keyed backlog, message %d: %w", i, err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	if err := c.FlushAsync(fctx); err != nil {
		return "", "", 0, fmt.Errorf("fill keyed backlog: %w", err)
	}
	return stream, subject, others, nil
}

// keyedRun is one jetkit consume of a keyed backlog.
type keyedRun struct {
	stream, subject string
	ordered, sync   bool
	// count is how many messages not of the hot key end the run: the
	// rate is theirs.
	count int
	work  time.Duration // handler service time
}

// jetkitKeyedConsume subscribes to a keyed backlog and times the first
// delivery to the count-th handled message that is not of the hot key.
func (e *env) jetkitKeyedConsume(ctx context.Context, r keyedRun) (measurement, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	topic, err := framework.NewTopic[Event](r.subject, framework.Keyed())
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
	k := newCounter(r.count)
	var hot atomic.Int64
	opts := []framework.SubscribeOption{framework.FromStream(r.stream), framework.Concurrency(orderedConcurrency), framework.AckAsync()}
	if r.sync {
		opts[2] = framework.AckSync()
	}
	if r.ordered {
		opts = append(opts, framework.OrderedByKey())
	}
	cpu := startCPU()
	_, err = framework.Subscribe(ctx, svc, topic, durable, func(ctx context.Context, ev Event, m *framework.Message) error {
		k.begin()
		if r.work > 0 {
			time.Sleep(r.work)
		}
		if strings.HasSuffix(m.Subject, "."+hotKey) {
			hot.Add(1)
			return nil
		}
		k.settled()
		return nil
	}, e.subOpts(opts...)...)
	if err != nil {
		return measurement{}, fmt.Errorf("jetkit subscribe %s: %w", r.stream, err)
	}
	if err := k.wait(ctx, "jetkit keyed consume"); err != nil {
		return measurement{}, err
	}
	return cpu.measure(r.count+int(hot.Load()), k.rate()), nil
}

// ordered measures OrderedByKey's price over 1,000 keys at concurrency 16
// in both ack modes. (What a hot key costs the other keys is bounded by
// what a key may hold and park; TestOrderedByKeyHotKeyDoesNotHoldOthers
// shows the behaviour within those bounds.)
func (e *env) ordered(ctx context.Context, progress func(Result)) ([]Result, error) {
	n := e.opts.ConsumeCount
	stream, subject, _, err := e.keyedBacklog(ctx, "ordered", n, orderedKeys, false)
	if err != nil {
		return nil, err
	}
	defer e.deleteStream(stream)
	var out []Result
	for _, sync := range []bool{false, true} {
		count := n
		if sync {
			count = min(n, e.opts.consumeCount(true))
		}
		mode := "Ack"
		if sync {
			mode = "DoubleAck"
		}
		base := keyedRun{stream: stream, subject: subject, sync: sync, count: count}
		ordered := base
		ordered.ordered = true
		ms, err := e.compare(ctx, e.opts.Rounds,
			side{"unordered", func(ctx context.Context) (measurement, error) { return e.jetkitKeyedConsume(ctx, base) }},
			side{"ordered", func(ctx context.Context) (measurement, error) { return e.jetkitKeyedConsume(ctx, ordered) }})
		if err != nil {
			return out, err
		}
		r := throughputResult(ScenarioOrdered, fmt.Sprintf("%s c=%d", mode, orderedConcurrency), ms[0], ms[1], ratioAtLeast(0.85),
			fmt.Sprintf("both jetkit, %d keys: raw column without OrderedByKey, jetkit column with it", orderedKeys))
		progress(r)
		out = append(out, r)
	}

	return out, nil
}
