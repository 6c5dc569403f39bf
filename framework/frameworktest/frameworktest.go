// Package frameworktest tests jetkit handlers without a NATS server, in
// the spirit of net/http/httptest.
//
// NewMessage builds the Message a subscription hands its handler for an
// event, exactly as Publish would encode it and a subscription decode it;
// Deliver runs a typed handler on it as Subscribe does. A Recorder is a
// framework.Publisher that keeps what a handler publishes, for assertions:
//
//	rec := frameworktest.NewRecorder()
//	h := inventory.NewHandler(rec.Publisher())
//	m, _ := frameworktest.NewMessage(events.OrderCreated, ev, framework.WithKey("o-1"))
//	err := frameworktest.Deliver(ctx, events.OrderCreated, h.Reserve, m)
//	reserved, _ := frameworktest.Events(rec, events.StockReserved)
//
// What the framework does around a handler — acks, retries with backoff,
// dead letters, heartbeats — needs a server; test it with testenv.
package frameworktest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/internal/testhook"
)

// Source is the ce-source of the events NewMessage and a Recorder build.
const Source = "frameworktest"

// NewMessage returns the first delivery of ev on topic, published with
// opts (a keyed topic needs framework.WithKey): subject, CloudEvents
// envelope, headers and payload as Publish makes them. Its delivery fields
// (NumDelivered, Attempt, StreamSeq, ...) describe a first delivery from
// stream "TEST" to consumer "test" and may be changed before use.
// Message.InProgress succeeds; the handler never settles a message itself.
//
// The error is the one Publish would return for ev and opts.
func NewMessage[T any](topic *framework.Topic[T], ev T, opts ...framework.PublishOption) (*framework.Message, error) {
	var sent *nats.Msg
	conn := testhook.Recording(Source, func(msg *nats.Msg) (string, uint64, error) {
		sent = msg
		return "TEST", 1, nil
	}).(*framework.Conn)
	if _, err := topic.Publish(context.Background(), conn, ev, opts...); err != nil {
		return nil, err
	}
	return FromNATS(sent)
}

// FromNATS returns the first delivery of msg, as a subscription would
// hand it to its handler: for messages built by hand, e.g. from another
// producer. The error is the one the subscription would dead-letter msg
// with (a missing or invalid envelope, too many headers); the Message is
// returned with it.
func FromNATS(msg *nats.Msg) (*framework.Message, error) {
	m, err := testhook.NewMessage(msg, testhook.Delivery{
		Stream: "TEST", Consumer: "test", StreamSeq: 1, ConsumerSeq: 1, NumDelivered: 1,
		Timestamp: time.Now(), MaxDeliver: framework.DefaultConfig().MaxDeliver,
	})
	return m.(*framework.Message), err
}

// Deliver runs h on m as a typed subscription to topic does: m's payload
// is decoded as the topic's event (a decode failure is returned without
// calling h, as the permanent error the subscription would dead-letter
// with), then h is called. A panic in h is not recovered.
func Deliver[T any](ctx context.Context, topic *framework.Topic[T], h framework.TypedHandler[T], m *framework.Message) error {
	ev, err := topic.Decode(m)
	if err != nil {
		return err
	}
	return h(ctx, ev, m)
}

// Published is one message a Recorder kept.
type Published struct {
	// Msg is the message as it would have been sent: subject, headers
	// (envelope and trace context included) and payload.
	Msg *nats.Msg
	// Envelope is its CloudEvents context.
	Envelope framework.Envelope
}

// Recorder records what is published through its Publisher instead of
// sending it. It is safe for concurrent use.
type Recorder struct {
	conn *framework.Conn

	mu   sync.Mutex
	msgs []Published
	err  error
}

// NewRecorder returns an empty Recorder; its events name Source as their
// producer.
func NewRecorder() *Recorder {
	r := &Recorder{}
	r.conn = testhook.Recording(Source, r.record).(*framework.Conn)
	return r
}

func (r *Recorder) record(msg *nats.Msg) (string, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return "", 0, r.err
	}
	m, err := FromNATS(msg)
	if err != nil {
		return "", 0, fmt.Errorf("frameworktest: published message is not a valid jetkit event: %w", err)
	}
	r.msgs = append(r.msgs, Published{Msg: msg, Envelope: m.Envelope})
	return "TEST", uint64(len(r.msgs)), nil
}

// Publisher is what the code under test publishes through, in place of a
// *framework.Service.
func (r *Recorder) Publisher() framework.Publisher { return r.conn }

// Fail makes every later publish fail with err (nil: succeed again), to
// test how a handler reacts to a publish that fails.
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Published returns what was published so far, in order.
func (r *Recorder) Published() []Published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Published(nil), r.msgs...)
}

// Events decodes the recorded events of topic's type, in the order they
// were published; events of other topics are skipped.
func Events[T any](r *Recorder, topic *framework.Topic[T]) ([]T, error) {
	var out []T
	for _, p := range r.Published() {
		if p.Envelope.Type != topic.EventType() {
			continue
		}
		m, err := FromNATS(p.Msg)
		if err != nil {
			return out, err
		}
		ev, err := topic.Decode(m)
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}
