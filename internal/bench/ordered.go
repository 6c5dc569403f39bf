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
	// hotKeyWork is the handlers' service time in the hot-key row: with
	// no-op handlers on two cores the hot key's own events take the CPU
	// the others would use, whatever the scheduler does; with a service
	// time the row shows what ordering costs the others (the hot key has
	// one worker at a time).
	hotKeyWork = time.Millisecond
	// hotEvents is the most events of the hot key in the hot-key row's
	// backlog, and hotMaxAckPending the MaxAckPending of both its runs: a
	// key parks up to a quarter of it, here more than hotEvents. Past what
	// a key may hold and park, in-order reading must wait for the hot key
	// and the other keys slow to its pace (docs/ordering.md); the row
	// measures the others within that bound.
	hotEvents        = 4000
	hotMaxAckPending = 4 * (hotEvents + 1000)
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
	count         int
	work          time.Duration // handler service time
	maxAckPending int           // 0: the default
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
	opts := e.subOpts(framework.SubscribeOptions{Stream: r.stream, Concurrency: orderedConcurrency, AckMode: ackMode(r.sync),
		OrderedByKey: r.ordered, MaxAckPending: r.maxAckPending})
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
	}, opts)
	if err != nil {
		return measurement{}, fmt.Errorf("jetkit subscribe %s: %w", r.stream, err)
	}
	if err := k.wait(ctx, "jetkit keyed consume"); err != nil {
		return measurement{}, err
	}
	return cpu.measure(r.count+int(hot.Load()), k.rate()), nil
}

// ordered measures OrderedByKey's price over 1,000 keys at concurrency 16
// in both ack modes, and what a hot key (half the backlog, within what it
// may hold and park) costs the other keys.
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

	// The other keys' throughput: the same events over 999 keys, once
	// alone and once interleaved with as many events of one hot key.
	hotStream, hotSubject, others, err := e.keyedBacklog(ctx, "ordered-hot", min(n, 2*hotEvents), orderedKeys-1, true)
	if err != nil {
		return out, err
	}
	defer e.deleteStream(hotStream)
	coldStream, coldSubject, _, err := e.keyedBacklog(ctx, "ordered-cold", others, orderedKeys-1, false)
	if err != nil {
		return out, err
	}
	defer e.deleteStream(coldStream)
	cold := keyedRun{stream: coldStream, subject: coldSubject, ordered: true, count: others, work: hotKeyWork, maxAckPending: hotMaxAckPending}
	hot := cold
	hot.stream, hot.subject = hotStream, hotSubject
	ms, err := e.compare(ctx, e.opts.Rounds,
		side{"no hot key", func(ctx context.Context) (measurement, error) { return e.jetkitKeyedConsume(ctx, cold) }},
		side{"hot key", func(ctx context.Context) (measurement, error) { return e.jetkitKeyedConsume(ctx, hot) }})
	if err != nil {
		return out, err
	}
	r := throughputResult(ScenarioOrdered, "hot key 50%", ms[0], ms[1], ratioAtLeast(0.8),
		fmt.Sprintf("OrderedByKey c=%d, handlers take %s, MaxAckPending %d; rate of the %d other keys' %d events: raw column alone, jetkit column with as many events of one hot key interleaved (within what it may hold and park)",
			orderedConcurrency, hotKeyWork, hotMaxAckPending, orderedKeys-1, others))
	progress(r)
	out = append(out, r)
	return out, nil
}
