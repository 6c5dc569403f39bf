package framework

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/internal/wire"
)

// Publisher is what a Topic publishes through: a *Service or a *Conn.
type Publisher interface {
	publishConn() (*Conn, error)
}

func (c *Conn) publishConn() (*Conn, error) { return c, nil }

// PubAck is the server's acknowledgement of a stored event.
type PubAck struct {
	// EventID is the CloudEvents id (and Nats-Msg-Id) of the event.
	EventID string
	// Subject is the subject the event was published to.
	Subject string
	// Stream is the stream that stored it.
	Stream string
	// Sequence is its stream sequence.
	Sequence uint64
	// Duplicate is true when the server already had this event id inside
	// the stream's duplicates window and did not store it again.
	Duplicate bool
}

// PublishOption adjusts one publish.
type PublishOption func(*publishOptions)

type publishOptions struct {
	id      string
	key     string
	keySet  bool
	at      time.Time
	headers map[string]string
	retry   *PublishRetry // nil: the zero PublishRetry, the defaults (publish_retry.go)
}

// WithEventID sets the event id (default: a new unique id). Publishing the
// same id twice inside the stream's duplicates window stores it once.
func WithEventID(id string) PublishOption { return func(o *publishOptions) { o.id = id } }

// WithKey appends one validated token to the subject: orders.created.v1.<key>.
// An empty key is an error, not "no key". Only a topic declared Keyed takes
// a key, and it needs one on every publish.
func WithKey(key string) PublishOption {
	return func(o *publishOptions) { o.key, o.keySet = key, true }
}

// WithTime sets the event time (default: now).
func WithTime(t time.Time) PublishOption { return func(o *publishOptions) { o.at = t } }

// WithHeader adds an application header. Publish refuses (ErrInvalidHeader)
// a key that spells an envelope header in any case (ce-id, ce-type,
// ce-source, ce-specversion, ce-time, ce-datacontenttype, content-type,
// Nats-Msg-Id: use WithEventID, WithTime or the topic's codec), a value
// with CR or LF, and more headers than a subscriber accepts (wire.MaxHeaders,
// wire.MaxHeaderBytes).
func WithHeader(key, value string) PublishOption {
	return func(o *publishOptions) {
		if o.headers == nil {
			o.headers = map[string]string{}
		}
		o.headers[key] = value
	}
}

// Publish encodes ev, sends it and waits for the server to store it.
func (t *Topic[T]) Publish(ctx context.Context, p Publisher, ev T, opts ...PublishOption) (PubAck, error) {
	c, err := p.publishConn()
	if err != nil {
		return PubAck{}, fmt.Errorf("publish %s: %w", t.eventType, err)
	}
	o := applyPublishOptions(opts)
	var end observe.PublishEnd
	if c.observer != nil {
		ctx, end = c.observer.StartPublish(ctx, observe.PublishInfo{Subject: t.subject, EventType: t.eventType})
	}
	msg, env, err := t.message(ctx, c, ev, o)
	if err != nil {
		if end != nil {
			end(nil, err)
		}
		return PubAck{}, err
	}
	var ack *jetstream.PubAck
	if c.record == nil {
		perm := c.watchPublish(msg.Subject) // a refused publish fails now, naming the subject
		ack, err = c.publishRetrying(ctx, msg, o, perm)
		err = perm.explain(err)
		perm.done()
	} else {
		ack, err = c.recordPublish(msg)
	}
	if end != nil {
		end(msg, err)
	}
	if err != nil {
		return PubAck{}, publishError(t.eventType, env.ID, msg.Subject, err)
	}
	return PubAck{EventID: env.ID, Subject: msg.Subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// PublishAsync encodes ev and sends it without waiting; the returned future
// resolves when the server stores it. At most Config.PublishAsyncMaxPending
// publishes are outstanding; beyond that PublishAsync waits for room until
// ctx is done, then fails with ctx's error.
// Conn.FlushAsync waits for all of them and reports every failure.
func (t *Topic[T]) PublishAsync(ctx context.Context, p Publisher, ev T, opts ...PublishOption) (jetstream.PubAckFuture, error) {
	c, err := p.publishConn()
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", t.eventType, err)
	}
	var end observe.PublishEnd
	if c.observer != nil {
		ctx, end = c.observer.StartPublish(ctx, observe.PublishInfo{Subject: t.subject, EventType: t.eventType, Async: true})
	}
	msg, env, err := t.message(ctx, c, ev, applyPublishOptions(opts))
	if err != nil {
		if end != nil {
			end(nil, err)
		}
		return nil, err
	}
	var f jetstream.PubAckFuture
	if c.record == nil {
		f, err = c.JS.PublishMsgAsync(msg)
	} else {
		f, err = c.recordPublishAsync(msg)
	}
	if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		f, err = c.publishAsyncWaiting(ctx, msg)
	}
	if end != nil {
		end(msg, err)
	}
	if err != nil {
		return nil, publishError(t.eventType, env.ID, msg.Subject, err)
	}
	return f, nil
}

// applyPublishOptions collects opts; nil when there are none, which every
// user of the result reads as the defaults. (A publishOptions handed to
// option funcs escapes to the heap: this skips that allocation on the
// usual publish without options.)
func applyPublishOptions(opts []PublishOption) *publishOptions {
	if len(opts) == 0 {
		return nil
	}
	o := new(publishOptions)
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// asyncStallSlice bounds one wait for room in the async window, so that a
// cancelled ctx is noticed within it.
const asyncStallSlice = 250 * time.Millisecond

// publishAsyncWaiting sends msg once the async window has room, waiting
// until ctx is done (nats.go alone gives up after a fixed stall).
func (c *Conn) publishAsyncWaiting(ctx context.Context, msg *nats.Msg) (jetstream.PubAckFuture, error) {
	for {
		wait := asyncStallSlice
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if ctx.Err() != nil || wait <= 0 {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("wait for room among %d pending async publishes: %w", c.JS.PublishAsyncPending(), cause)
		}
		f, err := c.JS.PublishMsgAsync(msg, jetstream.WithStallWait(wait))
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return f, err
		}
	}
}

func publishError(eventType, id, subject string, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) || isStreamMsgTooLarge(err) {
		err = fmt.Errorf("%w: %w", ErrMessageTooLarge, err)
	}
	if errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("publish %s event %s to %q: %w", eventType, id, subject, err)
}

// message builds the NATS message: subject, envelope headers, trace context
// and encoded payload. Nothing is sent if any part is invalid. o may be nil
// (no options).
func (t *Topic[T]) message(ctx context.Context, c *Conn, ev T, o *publishOptions) (*nats.Msg, Envelope, error) {
	if o == nil {
		o = &publishOptions{}
	}
	subject := t.subject
	switch {
	case o.keySet && !t.keyed:
		return nil, Envelope{}, fmt.Errorf("publish %s: %w: topic %s is not keyed; declare it with framework.Keyed() to publish with WithKey(%q), or drop WithKey",
			t.eventType, ErrInvalidSubject, t.subject, o.key)
	case t.keyed && !o.keySet:
		return nil, Envelope{}, fmt.Errorf("publish %s: %w: topic %s is keyed; publish with framework.WithKey(<key>)", t.eventType, ErrInvalidSubject, t.subject)
	case o.keySet:
		if err := wire.ValidateToken(o.key); err != nil {
			return nil, Envelope{}, fmt.Errorf("publish %s: key: %w", t.eventType, err)
		}
		subject += "." + o.key
	}
	env := Envelope{ID: o.id, Type: t.eventType, Source: c.cfg.ServiceName, Time: o.at, ContentType: t.codec.ContentType()}
	if env.ID == "" {
		env.ID = nuid.Next()
	} else if err := validateEventID(env.ID); err != nil {
		return nil, env, fmt.Errorf("publish %s: %w", t.eventType, err)
	}
	if len(env.Source) > wire.MaxEnvelopeValueLen {
		return nil, env, fmt.Errorf("publish %s: %w: the service name (ce-source) is %d bytes, over the %d (wire.MaxEnvelopeValueLen) a subscriber accepts; shorten SERVICE_NAME",
			t.eventType, ErrInvalidHeader, len(env.Source), wire.MaxEnvelopeValueLen)
	}
	if env.Time.IsZero() {
		env.Time = time.Now()
	}
	data, err := t.codec.Marshal(ev)
	if err != nil {
		return nil, env, fmt.Errorf("publish %s: encode %T with %s: %w", t.eventType, ev, t.codec.ContentType(), err)
	}
	if err := checkAppHeaders(o.headers); err != nil { // only with WithHeader (limits.go)
		return nil, env, fmt.Errorf("publish %s event %s: %w", t.eventType, env.ID, err)
	}
	h := make(nats.Header, 8+len(o.headers))
	for k, v := range o.headers {
		h[k] = []string{v}
	}
	writeEnvelope(h, env)
	c.propagator().Inject(ctx, observe.HeaderCarrier(h))
	msg := &nats.Msg{Subject: subject, Data: data, Header: h}
	if outgoingFits(c, msg) {
		return msg, env, nil
	}
	if err := checkOutgoing(c, msg, t.eventType, env.ID); err != nil { // headers count towards max_payload too (limits.go)
		return nil, env, err
	}
	return msg, env, nil
}

// outgoingFits is checkOutgoing's quick yes, in one pass over the headers:
// every key is printable ASCII without ':' (as strict as checkOutgoing's
// rule), the headers keep within wire.MaxHeaders and wire.MaxHeaderBytes, and
// headers and payload fit max_payload by an upper bound of the encoded
// size (headerSizeBound). When it says no, checkOutgoing decides and
// names the problem.
func outgoingFits(c *Conn, msg *nats.Msg) bool {
	n, values := 12+len(msg.Data), 0 // see headerSizeBound
	for k, vs := range msg.Header {
		values += len(vs)
		if k == "" {
			return false
		}
		for i := 0; i < len(k); i++ {
			if b := k[i]; b <= ' ' || b >= 0x7f || b == ':' {
				return false
			}
		}
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	if values > wire.MaxHeaders || n-12-len(msg.Data) > wire.MaxHeaderBytes { // as a subscriber counts them (scanHeaders)
		return false
	}
	max := c.maxPayload()
	return max <= 0 || int64(n) <= max
}

func validateEventID(id string) error {
	if len(id) > wire.MaxEnvelopeValueLen {
		return fmt.Errorf("%w: event id is %d bytes, over the %d (wire.MaxEnvelopeValueLen) a subscriber accepts", ErrInvalidHeader, len(id), wire.MaxEnvelopeValueLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("%w: event id %q: byte %d is not printable ASCII; ids travel in headers", ErrInvalidHeader, id, i)
		}
	}
	return nil
}

// FlushAsync waits until every async publish made on c so far is
// acknowledged or failed, bounded by ctx, and returns every failure since
// the previous FlushAsync (nil if all were stored).
func (c *Conn) FlushAsync(ctx context.Context) error {
	select {
	case <-c.JS.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("flush async publishes: %d still pending: %w", c.JS.PublishAsyncPending(), ctx.Err())
	}
	return c.asyncErrs.take()
}

// asyncErrors collects async publish failures until the next FlushAsync.
type asyncErrors struct {
	mu     sync.Mutex
	errs   []error
	missed int
}

const maxKeptAsyncErrors = 100

func (a *asyncErrors) record(_ jetstream.JetStream, msg *nats.Msg, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.errs) >= maxKeptAsyncErrors {
		a.missed++
		return
	}
	a.errs = append(a.errs, publishError(wire.HeaderValue(msg.Header, wire.HeaderType), wire.HeaderValue(msg.Header, wire.HeaderID), msg.Subject, err))
}

func (a *asyncErrors) take() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	errs := a.errs
	if a.missed > 0 {
		errs = append(errs, fmt.Errorf("and %d more async publish failures", a.missed))
	}
	a.errs, a.missed = nil, 0
	return errors.Join(errs...)
}
