package framework

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// Subscribe consumes topic with the durable consumer named durable and
// runs h for each event. Services that each want every event use different
// durable names (fan-out); instances of one service use the same name and
// split the work (competing consumers). ctx bounds setting the
// subscription up (finding the stream, creating the consumer, the first
// pull); it then runs until the service shuts down.
//
//	framework.Subscribe(ctx, svc, OrderCreated, "inventory", reserveStock,
//		&framework.SubscribeOptions{Concurrency: 16})
//
// opts may be nil, for the defaults (see SubscribeOptions). A payload
// that does not decode into T, or an event of another type, is
// dead-lettered at once.
func Subscribe[T any](ctx context.Context, svc *Service, topic *Topic[T], durable string, h TypedHandler[T], opts *SubscribeOptions) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("subscribe %s as %q: nil handler", topic.subject, durable)
	}
	if !topic.keyed && opts != nil && (opts.OrderedByKey || opts.Partitioned) {
		return nil, fmt.Errorf("subscribe %s as %q: OrderedByKey needs a keyed topic (declare it with framework.Keyed()): an unkeyed topic has one subject, so all its events would share one key", topic.subject, durable)
	}
	inner := HandlerFunc(func(ctx context.Context, m *Message) error {
		ev, err := topic.Decode(m)
		if err != nil {
			return err
		}
		return h(ctx, ev, m)
	})
	o := subOptionsFrom(svc.cfg, opts)
	o.eventType = topic.eventType
	return svc.subscribe(ctx, topic.subject, topic.filters(), durable, inner, o)
}

// SubscribeHandler consumes filter (wildcards allowed) with an untyped
// Handler that reads Message.Data itself. opts may be nil.
func SubscribeHandler(ctx context.Context, svc *Service, filter, durable string, h Handler, opts *SubscribeOptions) (*Subscription, error) {
	if err := wire.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("subscribe as %q: %w", durable, err)
	}
	if h == nil {
		return nil, fmt.Errorf("subscribe %s as %q: nil handler", filter, durable)
	}
	return svc.subscribe(ctx, filter, []string{filter}, durable, h, subOptionsFrom(svc.cfg, opts))
}

// subscribe creates the subscription. subject labels it (logs, metrics,
// span names): the topic's base subject, or an untyped filter.
func (svc *Service) subscribe(ctx context.Context, subject string, filters []string, durable string, h Handler, o subOptions) (_ *Subscription, err error) {
	o.owner = svc.cfg.ServiceName
	if durable, err = consumerName(svc.cfg.ServiceName, durable, o.ephemeral); err != nil {
		return nil, fmt.Errorf("subscribe %v: %w", filters, err)
	}
	if err := o.finish(); err != nil {
		return nil, fmt.Errorf("subscribe %v as %q: %w", filters, durable, err)
	}
	stopCtx, err := svc.beginSubscribe()
	if err != nil {
		return nil, fmt.Errorf("subscribe %v as %q: %w", filters, durable, err)
	}
	defer svc.starting.Done()
	ctx, cancel := context.WithTimeout(ctx, svc.conn.provisionBudget())
	defer cancel()
	defer context.AfterFunc(stopCtx, cancel)() // Shutdown ends the set-up too
	defer func() {                             // Shutdown began while this was being set up
		if err != nil && stopCtx.Err() != nil && !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("subscribe %v as %q: %w (%w)", filters, durable, ErrClosed, err)
		}
	}()
	ctx, perm := svc.conn.watchPermissions(ctx, svc.conn.jsPrefixes()...) // a refused API call fails now, naming the subject
	defer func() { err = perm.explain(err); perm.done() }()
	stream := o.stream
	if stream == "" {
		name, err := retryTransient(ctx, svc.conn, "stream of "+filters[0], func(ctx context.Context) (string, error) {
			return svc.conn.JS.StreamNameBySubject(ctx, filters[0])
		})
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("subscribe %s as %q: no stream stores this subject; its owner, the service that publishes it, declares it with EnsureStream: start that service first (or declare the stream here with StreamSpec.Owner naming it): %w", filters[0], durable, err)
		case err != nil:
			return nil, fmt.Errorf("subscribe %s as %q: look up the stream that stores this subject: %w", filters[0], durable, err)
		}
		stream = name
	}
	mws := append(svc.serviceMiddleware(), o.middleware...)
	var s *Subscription
	if o.partitioned {
		if s, err = svc.startPartitioned(ctx, stream, subject, durable, chain(h, mws...), o); err != nil {
			return nil, err
		}
		s.svc = svc
	} else {
		cons, err := ensureConsumer(ctx, svc.conn, stream, durable, filters, o)
		if err != nil {
			return nil, err
		}
		s = &Subscription{
			conn: svc.conn, stream: stream, durable: durable, subject: subject, filters: filters, opts: o,
			handler: chain(h, mws...), consumer: cons, svc: svc, stopDone: make(chan struct{}),
			log: svc.log.With("stream", stream, "consumer", durable),
		}
		s.sizePull(ctx) // the first pull's depth and byte cap (pull_limits.go)
		if err := s.start(); err != nil {
			s.deleteEphemeral(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	stopNow := func() {
		stopCtx, stopCancel := context.WithTimeout(context.Background(), svc.cfg.RequestTimeout)
		defer stopCancel()
		s.stop(stopCtx)
	}
	if err := perm.confirm(ctx); err != nil { // e.g. the first pull request was refused
		stopNow()
		return nil, fmt.Errorf("subscribe %v as %q: %w", filters, durable, err)
	}
	if !svc.track(s) {
		stopNow()
		return nil, fmt.Errorf("subscribe %v as %q: %w", filters, durable, ErrClosed)
	}
	s.log.Info("subscribed", "filters", filters, "concurrency", o.concurrency, "ack_mode", string(o.ackMode), "prefetch", s.opts.prefetch)
	svc.warnIfMatchesNothing(ctx, s)
	return s, nil
}

// ensureConsumer creates or updates the pull consumer (durable, or an
// Ephemeral subscription's), refusing changes JetStream cannot make in
// place. A durable's metadata records the service that created it, its
// owner (DeleteConsumer); another service subscribing with the same
// name does not take it over.
func ensureConsumer(ctx context.Context, c *Conn, stream, durable string, filters []string, o subOptions) (jetstream.Consumer, error) {
	want := jetstream.ConsumerConfig{
		Durable:        durable,
		Description:    "jetkit consumer " + durable,
		Metadata:       map[string]string{ownerMetadataKey: o.owner},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.ackWait,
		MaxDeliver:     -1, // jetkit enforces MaxDeliver itself so nothing is dropped unseen
		MaxAckPending:  o.maxAckPending,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	pinConsumer(&want, o) // a partition of a Partitioned subscription (partition.go)
	if o.deliverNew {
		want.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if o.ephemeral { // a fresh name: nothing to compare with (subscribe_ephemeral.go)
		ephemeralConfig(&want, o.owner)
		return createConsumer(ctx, c, stream, want, filters)
	}
	existing, err := retryTransient(ctx, c, "consumer "+stream+"/"+durable, func(ctx context.Context) (jetstream.Consumer, error) {
		return c.JS.Consumer(ctx, stream, durable)
	})
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return nil, fmt.Errorf("look up consumer %s/%s: %w", stream, durable, err)
	default:
		have := existing.CachedInfo().Config
		if err := compareImmutable("consumer "+stream+"/"+durable, []immutableField{
			{"DeliverPolicy", have.DeliverPolicy.String(), want.DeliverPolicy.String()},
			{"AckPolicy", have.AckPolicy.String(), want.AckPolicy.String()},
		}); err != nil {
			return nil, err
		}
		want.Metadata = keepMetadata(have.Metadata, o.owner)
	}
	return createConsumer(ctx, c, stream, want, filters)
}

// createConsumer creates the consumer, or updates it to want.
func createConsumer(ctx context.Context, c *Conn, stream string, want jetstream.ConsumerConfig, filters []string) (jetstream.Consumer, error) {
	name := cmp.Or(want.Durable, want.Name)
	cons, err := retryTransient(ctx, c, "consumer "+stream+"/"+name, func(ctx context.Context) (jetstream.Consumer, error) {
		return c.JS.CreateOrUpdateConsumer(ctx, stream, want)
	})
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s/%s (filters %v): %w", stream, name, filters, err)
	}
	return cons, nil
}
