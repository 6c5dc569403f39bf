package framework

// Micro-benchmarks of the per-message hot paths. Run them with
//
//	go test -run '^$' -bench . -benchmem ./framework/
//
// `jetkit bench` (package bench) measures the whole system against raw
// nats.go; these isolate jetkit's own cost per message and its allocations.

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// benchEvent is 128 bytes of JSON, the size `jetkit bench` uses.
type benchEvent struct {
	SentNs int64  `json:"t"`
	Pad    string `json:"p"`
}

func newBenchEvent() benchEvent {
	pad := make([]byte, 96)
	for i := range pad {
		pad[i] = 'x'
	}
	return benchEvent{SentNs: time.Now().UnixNano(), Pad: string(pad)}
}

func benchEnvelope() Envelope {
	return Envelope{ID: "2aQnC8kq4W5sTfR0bZ3Jx1", Type: "orders.created.v1", Source: "bench",
		SpecVersion: wire.SpecVersion, Time: time.Now(), ContentType: "application/json"}
}

// BenchmarkEnvelopeEncode writes the CloudEvents headers of one message.
func BenchmarkEnvelopeEncode(b *testing.B) {
	env := benchEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		h := make(nats.Header, 8)
		writeEnvelope(h, env)
	}
}

// BenchmarkEnvelopeDecode parses and checks the headers of a received
// message, as every delivery does.
func BenchmarkEnvelopeDecode(b *testing.B) {
	h := make(nats.Header, 8)
	writeEnvelope(h, benchEnvelope())
	h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseUntrusted(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPayloadDecode checks and decodes a 128-byte JSON payload with
// the default codec, as a typed subscription does.
func BenchmarkPayloadDecode(b *testing.B) {
	data, err := JSON.Marshal(newBenchEvent())
	if err != nil {
		b.Fatal(err)
	}
	env := benchEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		var ev benchEvent
		if err := decodeEvent(JSON, env, data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishMessage builds one outgoing message (id, envelope
// headers, trace context, JSON payload, size checks) without sending it.
func BenchmarkPublishMessage(b *testing.B) {
	c := benchConn(b)
	topic := MustNewTopic[benchEvent]("bench.created.v1")
	ev := newBenchEvent()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := topic.message(ctx, c, ev, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMiddlewareChain calls a handler through three pass-through
// middleware: the cost of composition itself.
func BenchmarkMiddlewareChain(b *testing.B) {
	pass := func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error { return next.Handle(ctx, m) })
	}
	h := chain(HandlerFunc(func(context.Context, *Message) error { return nil }), pass, pass, pass)
	m := &Message{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Handle(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatch runs one delivery through the dispatcher as a worker
// does: metadata, envelope, typed decode, handler, async ack. The message
// is an in-memory jetstream.Msg whose metadata is parsed from a real
// JetStream reply subject and whose ack is free, so only jetkit's own
// work is measured.
func BenchmarkDispatch(b *testing.B) {
	data, err := JSON.Marshal(newBenchEvent())
	if err != nil {
		b.Fatal(err)
	}
	h := make(nats.Header, 8)
	writeEnvelope(h, benchEnvelope())
	raw := &benchMsg{msg: &nats.Msg{Subject: "bench.created.v1", Data: data, Header: h,
		Reply: "$JS.ACK.BENCH.dispatch.1.42.42.1764230400000000000.0", Sub: &nats.Subscription{}}}
	typed := HandlerFunc(func(ctx context.Context, m *Message) error {
		var ev benchEvent
		return decodeEvent(JSON, m.Envelope, m.Data, &ev)
	})
	o := subOptionsFrom(DefaultConfig(), nil)
	if err := o.finish(); err != nil {
		b.Fatal(err)
	}
	s := &Subscription{log: slog.New(slog.NewTextHandler(io.Discard, nil)), stream: "BENCH", durable: "dispatch",
		opts: o, handler: typed, slots: make([]workerSlot, 1)}
	s.handlerCtx, s.cancelHandler = context.WithCancel(context.Background())
	defer s.cancelHandler()
	if _, err := s.message(raw); err != nil {
		b.Fatalf("the benchmark message does not parse: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.process(&s.slots[0], raw)
	}
	if got := s.Stats().Acked; got == 0 {
		b.Fatalf("acked %d messages; the dispatcher did not settle them", got)
	}
}

// benchMsg is a jetstream.Msg held in memory: settling it costs nothing.
type benchMsg struct{ msg *nats.Msg }

var _ jetstream.Msg = (*benchMsg)(nil)

func (m *benchMsg) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := m.msg.Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Consumer: md.Sequence.Consumer, Stream: md.Sequence.Stream},
		NumDelivered: md.NumDelivered, NumPending: md.NumPending, Timestamp: md.Timestamp,
		Stream: md.Stream, Consumer: md.Consumer, Domain: md.Domain,
	}, nil
}
func (m *benchMsg) Data() []byte                     { return m.msg.Data }
func (m *benchMsg) Headers() nats.Header             { return m.msg.Header }
func (m *benchMsg) Subject() string                  { return m.msg.Subject }
func (m *benchMsg) Reply() string                    { return m.msg.Reply }
func (m *benchMsg) Ack() error                       { return nil }
func (m *benchMsg) DoubleAck(context.Context) error  { return nil }
func (m *benchMsg) Nak() error                       { return nil }
func (m *benchMsg) NakWithDelay(time.Duration) error { return nil }
func (m *benchMsg) InProgress() error                { return nil }
func (m *benchMsg) Term() error                      { return nil }
func (m *benchMsg) TermWithReason(string) error      { return nil }

// benchConn connects to an embedded nats-server started for the benchmark
// (testenv imports this package, so it cannot be used here).
func benchConn(b *testing.B) *Conn {
	b.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: b.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("embedded nats-server not ready within 10s")
	}
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	cfg := DefaultConfig()
	cfg.ServiceName = "bench"
	cfg.URLs = []string{ns.ClientURL()}
	c, err := Connect(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}
