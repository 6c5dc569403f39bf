package framework

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// SubscribeOptions configures one subscription. A nil *SubscribeOptions,
// and every zero field, means the default, which comes from Config where
// Config has the setting.
//
//	framework.Subscribe(ctx, svc, OrderCreated, "inventory", reserveStock,
//		&framework.SubscribeOptions{Concurrency: 16, AckMode: framework.AckModeSync})
type SubscribeOptions struct {
	// Concurrency runs up to this many handlers at once (default
	// Config.Concurrency, at most 4096). At 1 messages are handled strictly
	// in stream order.
	Concurrency int

	// AckMode: with AckModeSync a handled message counts as done only once
	// the server confirms the ack (DoubleAck); AckModeAsync acks without
	// waiting. Default Config.AckMode.
	AckMode AckMode

	// AckWait is the consumer's ack wait (default Config.AckWait, at
	// least 100ms).
	AckWait time.Duration

	// MaxHandlerTime bounds how long one delivery's handler may run
	// (default Config.MaxHandlerTime). Until then a running handler's
	// message is kept alive with InProgress heartbeats; past it the
	// handler's context is cancelled (context.Cause wraps
	// ErrMaxHandlerTime), heartbeats stop, and the message is retried with
	// backoff (dead-lettered on its last delivery). A handler that ignores
	// its context and is still running a grace period later (a tenth of the
	// limit, 100ms to 5s) is abandoned: its delivery is settled without it
	// and a new worker takes its place; its goroutine runs on, counted in
	// SubscriptionStats.Abandoned. A negative value turns the limit off: a
	// handler that never returns then holds its worker and its message for
	// good.
	MaxHandlerTime time.Duration

	// MaxDeliver is how many deliveries a message gets before it is
	// dead-lettered (default Config.MaxDeliver).
	MaxDeliver int

	// MaxAckPending bounds un-acked messages across all instances of the
	// consumer (default: enough for 8 instances at this prefetch and
	// concurrency).
	MaxAckPending int

	// Prefetch fixes how many messages the client pulls ahead of its
	// handlers. A prefetched message waits up to about prefetch × handler
	// time / concurrency before a handler takes it, and its AckWait runs
	// meanwhile. Fixed or not, a pull holds at most 16 MiB of messages (one
	// message if the server's max payload is bigger).
	//
	// Zero (the default) makes the depth adapt: it starts at max(256,
	// 2×concurrency), or what 16 MiB holds of the stream's mean message
	// size if lower, and follows the measured handler time and payload
	// size, so that a buffered message waits at most a quarter of AckWait
	// for a worker, and the buffer holds at most 4096 messages (or
	// 2×concurrency if more). A resize replaces the pull subscription:
	// nothing is handed back, messages the server had in flight to the old
	// pull come back at once with their delivery count one higher, and at
	// concurrency 1 order is kept (the next pull starts once the server has
	// queued those for redelivery, ahead of newer messages; it waits at most
	// 250ms for that). Fixed, jetkit still measures handler time and logs a
	// warning naming a safe value when the bound is at risk.
	Prefetch int

	// RetryBackoff sets the redelivery delays after transient failures;
	// its zero fields take Config.RetryInitial, Config.RetryMax, ×2 and
	// ±20%.
	RetryBackoff Backoff

	// Middleware wraps this subscription's handler, inside the
	// service-wide middleware (Service.Use); the first is outermost.
	Middleware []Middleware

	// OrderedByKey handles the messages of one key one at a time, in
	// stream order, and messages of different keys in parallel (up to
	// Concurrency). The key is the last subject token: the key of a Keyed
	// topic. A failure holds its key, not the subscription: the key's later
	// messages wait while it is retried with backoff (in this process, so
	// nothing can overtake it), and once it succeeds or is dead-lettered
	// the key goes on with its next message. Messages waiting behind a busy
	// key are kept alive with InProgress; past a bound (a key, or all keys
	// together, holding too many) the pull waits. At shutdown what is held
	// is handed back key by key in order. See docs/ordering.md for where
	// the guarantee ends.
	OrderedByKey bool

	// Partitioned shares the subscription between the instances of the
	// service, partition by partition, on a stream declared with
	// StreamSpec.Partitions: each key's events are handled by one instance
	// at a time, in stream order (it implies OrderedByKey). Partitions move
	// when instances start, shut down or crash; see docs/partitions.md for
	// the guarantees and the time a move takes. Subscription.Partitions
	// lists the partitions an instance owns.
	//
	// With Subscribe it reads one keyed topic. With SubscribeHandler and a
	// filter whose last token is the key (orders.*.v1.*) it reads every
	// matching topic, and all the events of one key, whatever their topic,
	// are handled in order: the partition depends on the key alone.
	Partitioned bool

	// Ephemeral makes the subscription use a consumer of its own that no
	// other subscription shares and that is deleted when the subscription
	// stops (Subscription.Stop or Service.Shutdown): a fan-out reader, such
	// as a process pushing events to its websocket clients, in which every
	// instance gets every event. Pass "" as the durable name with it;
	// jetkit names the consumer (Subscription.Durable). Acks, retries and
	// dead letters work as for a durable consumer, but the position dies
	// with the consumer: what is unfinished at Stop is handed back to
	// nobody, and a new ephemeral subscription starts again from the
	// beginning of the stream (with DeliverNew, from what is published
	// after it starts). If the process dies without stopping it, the server
	// deletes the consumer once it has seen no pull and no ack for a while
	// (see docs/subscribing.md). Partitioned subscriptions cannot be
	// ephemeral.
	Ephemeral bool

	// DeliverNew makes a newly created consumer start with messages
	// published after it is created, instead of the whole stream.
	DeliverNew bool

	// Stream names the stream to consume; by default it is the stream that
	// stores the topic's subject.
	Stream string

	// AllowMissingEnvelope makes the subscription handle messages that
	// carry no CloudEvents envelope (no ce-* header, not structured mode),
	// as raw nats.go producers send them, instead of dead-lettering them:
	// the event id is the Nats-Msg-Id header or else the stream sequence,
	// the type is the topic's event type (the subject for
	// SubscribeHandler), the time is when the stream stored the message,
	// and Envelope.SpecVersion is empty. A message with an incomplete
	// envelope is still dead-lettered. Meant for migrating existing
	// producers; see docs/topics.md.
	AllowMissingEnvelope bool
}

type subOptions struct {
	concurrency  int
	ackMode      AckMode
	prefetch     int
	autoPrefetch bool // no Prefetch: sized from measurements (prefetch.go)
	ackWait      time.Duration
	// maxHandlerTime bounds one delivery's handler (handler_limit.go);
	// 0 after finish: no limit.
	maxHandlerTime time.Duration
	maxDeliver     int
	maxAckPending  int
	backoff        Backoff
	defaultBackoff Backoff // what zero fields of backoff take
	middleware     []Middleware
	stream         string
	deliverNew     bool
	orderedByKey   bool
	// allowMissingEnvelope and eventType: messages without an envelope
	// (content_mode.go); eventType is set by Subscribe to the topic's.
	allowMissingEnvelope bool
	eventType            string
	partitioned          bool          // Partitioned (partition.go)
	pinnedTTL            time.Duration // a partition's consumer: pinned with this PinnedTTL
	ephemeral            bool          // Ephemeral (subscribe_ephemeral.go)
	// owner is the subscribing service, recorded in the consumer's
	// metadata (DeleteConsumer checks it); set by subscribe.
	owner string
}

// subOptionsFrom is what a subscription of cfg's service runs with: the
// fields of user set, the defaults for the rest. finish validates it.
func subOptionsFrom(cfg Config, user *SubscribeOptions) subOptions {
	o := subOptions{
		concurrency:    cfg.Concurrency,
		ackMode:        cfg.AckMode,
		ackWait:        cfg.AckWait,
		maxHandlerTime: cfg.MaxHandlerTime,
		maxDeliver:     cfg.MaxDeliver,
		backoff:        redeliveryBackoff(cfg),
		defaultBackoff: redeliveryBackoff(cfg),
	}
	if user == nil {
		return o
	}
	u := *user
	o.concurrency = cmp.Or(u.Concurrency, o.concurrency)
	o.ackMode = cmp.Or(u.AckMode, o.ackMode)
	o.ackWait = cmp.Or(u.AckWait, o.ackWait)
	o.maxHandlerTime = cmp.Or(u.MaxHandlerTime, o.maxHandlerTime)
	o.maxDeliver = cmp.Or(u.MaxDeliver, o.maxDeliver)
	o.maxAckPending = u.MaxAckPending
	o.prefetch = u.Prefetch
	o.backoff = u.RetryBackoff // finish fills its zero fields from defaultBackoff
	o.middleware = slices.Clone(u.Middleware)
	o.orderedByKey = u.OrderedByKey || u.Partitioned
	o.partitioned = u.Partitioned
	o.ephemeral = u.Ephemeral
	o.deliverNew = u.DeliverNew
	o.stream = u.Stream
	o.allowMissingEnvelope = u.AllowMissingEnvelope
	return o
}

func (o *subOptions) finish() error {
	var p []string
	if o.ephemeral && o.partitioned {
		p = append(p, "Ephemeral with Partitioned: a partition's consumer must outlive one process (it is pinned to an instance and taken over when that instance stops); use a durable name")
	}
	if o.concurrency < 1 || o.concurrency > 4096 {
		p = append(p, fmt.Sprintf("Concurrency %d: must be between 1 and 4096", o.concurrency))
	}
	if o.ackMode != AckModeAsync && o.ackMode != AckModeSync {
		p = append(p, fmt.Sprintf("AckMode %q: expected async or sync", o.ackMode))
	}
	if o.prefetch == 0 {
		// An ordered subscription keeps one pull: replacing it (a resize)
		// can strand messages in flight to the old one, which the server
		// redelivers behind later messages of their keys. Its buffer does
		// not need to adapt: what waits behind a busy key is kept alive.
		o.autoPrefetch = !o.orderedByKey
		o.prefetch = initialAutoPrefetch(o.concurrency)
		if o.orderedByKey && o.ackWait > 0 {
			o.prefetch = min(o.prefetch, orderedHoldLimit(o.concurrency, o.ackWait))
		}
	}
	if o.prefetch < 1 {
		p = append(p, fmt.Sprintf("Prefetch %d: must be at least 1", o.prefetch))
	}
	if o.ackWait < 100*time.Millisecond {
		p = append(p, fmt.Sprintf("AckWait %s: must be at least 100ms", o.ackWait))
	}
	switch {
	case o.maxHandlerTime < 0:
		o.maxHandlerTime = 0 // off
	case o.maxHandlerTime == 0:
		p = append(p, "MaxHandlerTime 0: must be positive, or negative to turn the limit off")
	case o.maxHandlerTime < 100*time.Millisecond:
		p = append(p, fmt.Sprintf("MaxHandlerTime %s: must be at least 100ms (negative turns the limit off)", o.maxHandlerTime))
	}
	if o.maxDeliver < 1 {
		p = append(p, fmt.Sprintf("MaxDeliver %d: must be at least 1", o.maxDeliver))
	}
	o.backoff = o.backoff.or(o.defaultBackoff)
	if err := o.backoff.validate("RetryBackoff"); err != nil {
		p = append(p, err.Error())
	}
	if o.maxAckPending == 0 {
		depth := o.prefetch
		if o.autoPrefetch {
			depth = autoPrefetchLimit(o.concurrency)
		}
		o.maxAckPending = max(1000, 8*(depth+o.concurrency))
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

// redeliveryBackoff is the default redelivery delay of cfg's subscriptions.
func redeliveryBackoff(cfg Config) Backoff {
	return Backoff{Initial: cfg.RetryInitial, Max: cfg.RetryMax, Multiplier: 2, Jitter: 0.2}
}
