package framework

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework/internal/testhook"
)

// The hooks of package frameworktest (see framework/internal/testhook).
func init() {
	testhook.NewMessage = func(msg *nats.Msg, d testhook.Delivery) (any, error) {
		raw := &madeUpMsg{msg: msg, d: d}
		m := &Message{Subject: msg.Subject, Data: msg.Data, Header: msg.Header, Stream: d.Stream, Consumer: d.Consumer,
			StreamSeq: d.StreamSeq, ConsumerSeq: d.ConsumerSeq, NumDelivered: d.NumDelivered, NumPending: d.NumPending,
			Timestamp: d.Timestamp, MaxDeliver: d.MaxDeliver, Attempt: 1, raw: raw}
		// The subscription's own reading: header limits and the envelope in
		// whichever content mode it came.
		return m, (&Subscription{}).readEnvelope(m)
	}
	testhook.Recording = func(source string, record testhook.Record) any {
		return &Conn{cfg: Config{ServiceName: source}, record: record}
	}
}

// recordPublish is Publish on a recording connection (frameworktest).
func (c *Conn) recordPublish(msg *nats.Msg) (*jetstream.PubAck, error) {
	stream, seq, err := c.record(msg)
	if err != nil {
		return nil, err
	}
	return &jetstream.PubAck{Stream: stream, Sequence: seq}, nil
}

// recordedFuture is the already resolved PubAckFuture of a recorded
// PublishAsync.
type recordedFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (c *Conn) recordPublishAsync(msg *nats.Msg) (jetstream.PubAckFuture, error) {
	f := &recordedFuture{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	if ack, err := c.recordPublish(msg); err != nil {
		f.err <- err
	} else {
		f.ok <- ack
	}
	return f, nil
}

func (f *recordedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *recordedFuture) Err() <-chan error            { return f.err }
func (f *recordedFuture) Msg() *nats.Msg               { return f.msg }

// madeUpMsg is a jetstream.Msg no server delivered (frameworktest): the
// framework settles messages itself, so a handler under test calling the
// settling methods through Message.Raw gets an error saying so.
type madeUpMsg struct {
	msg *nats.Msg
	d   testhook.Delivery
}

var errMadeUp = errSettle("frameworktest: handlers do not settle messages; return nil or an error instead")

type errSettle string

func (e errSettle) Error() string { return string(e) }

func (r *madeUpMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: r.d.StreamSeq, Consumer: r.d.ConsumerSeq},
		NumDelivered: r.d.NumDelivered, NumPending: r.d.NumPending, Timestamp: r.d.Timestamp,
		Stream: r.d.Stream, Consumer: r.d.Consumer,
	}, nil
}
func (r *madeUpMsg) Data() []byte                     { return r.msg.Data }
func (r *madeUpMsg) Headers() nats.Header             { return r.msg.Header }
func (r *madeUpMsg) Subject() string                  { return r.msg.Subject }
func (r *madeUpMsg) Reply() string                    { return "" }
func (r *madeUpMsg) Ack() error                       { return errMadeUp }
func (r *madeUpMsg) DoubleAck(context.Context) error  { return errMadeUp }
func (r *madeUpMsg) Nak() error                       { return errMadeUp }
func (r *madeUpMsg) NakWithDelay(time.Duration) error { return errMadeUp }
func (r *madeUpMsg) Term() error                      { return errMadeUp }
func (r *madeUpMsg) TermWithReason(string) error      { return errMadeUp }
func (r *madeUpMsg) InProgress() error {
	if r.d.InProgress != nil {
		return r.d.InProgress()
	}
	return nil
}

// recordingMaxPayload is the max_payload a recording connection checks
// publishes against: the server's default.
const recordingMaxPayload = 1 << 20

// maxPayload is the server's max_payload (the default on a recording
// connection, which has no server).
func (c *Conn) maxPayload() int64 {
	if c.NC == nil {
		return recordingMaxPayload
	}
	return c.NC.MaxPayload()
}
