package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one span %q, got %d (all: %v)", name, len(found), spanNames(spans))
	}
	return found[0]
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if !ok {
			t.Errorf("span %q: attribute %s missing (have %v)", s.Name, k, s.Attributes)
			continue
		}
		if v.String() != attribute.StringValue(toString(w)).String() {
			t.Errorf("span %q: %s = %s, want %v", s.Name, k, v.String(), w)
		}
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

func wantChild(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.TraceID() != parent.SpanContext.TraceID() || child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("span %q: parent %s/%s, want %q %s/%s", child.Name, child.Parent.TraceID(), child.Parent.SpanID(),
			parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

func wantLink(t *testing.T, s tracetest.SpanStub, to trace.SpanContext) {
	t.Helper()
	for _, l := range s.Links {
		if l.SpanContext.TraceID() == to.TraceID() && l.SpanContext.SpanID() == to.SpanID() {
			return
		}
	}
	t.Errorf("span %q: no link to %s/%s (links %v)", s.Name, to.TraceID(), to.SpanID(), s.Links)
}

// One trace spans publish -> process -> publish -> process across two
// subscriptions, and the process span wraps the middleware.
func TestOneTraceAcrossTwoHops(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	seen := map[string]trace.SpanContext{} // what middleware and handlers saw
	record := func(key string, ctx context.Context) {
		mu.Lock()
		defer mu.Unlock()
		seen[key] = trace.SpanContextFromContext(ctx)
	}
	mw := func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			record("mw "+m.Consumer, ctx)
			return next.Handle(ctx, m)
		})
	}
	var stockID string
	_, err := framework.Subscribe(t.Context(), r.svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		record("inventory", ctx)
		ack, err := stockTopic.Publish(ctx, r.svc, stockReserved{OrderID: ev.ID})
		mu.Lock()
		stockID = ack.EventID
		mu.Unlock()
		return err
	}, &framework.SubscribeOptions{Middleware: []framework.Middleware{mw}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	_, err = framework.Subscribe(t.Context(), r.svc, stockTopic, "shipping", func(ctx context.Context, ev stockReserved, m *framework.Message) error {
		record("shipping", ctx)
		close(done)
		return nil
	}, &framework.SubscribeOptions{Middleware: []framework.Middleware{mw}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := orderTopic.Publish(context.Background(), r.svc, orderCreated{ID: "o-1", Qty: 2}, framework.WithKey("o-1"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("second hop not handled within 15s")
	}
	spans := r.waitSpans(t, 4)
	p1 := spanNamed(t, spans, "publish orders.created.v1")
	c1 := spanNamed(t, spans, "process orders.created.v1")
	p2 := spanNamed(t, spans, "publish stock.reserved.v1")
	c2 := spanNamed(t, spans, "process stock.reserved.v1")

	if p1.Parent.IsValid() {
		t.Errorf("first publish should start the trace, has parent %v", p1.Parent)
	}
	for _, s := range []tracetest.SpanStub{c1, p2, c2} {
		if s.SpanContext.TraceID() != p1.SpanContext.TraceID() {
			t.Errorf("span %q in trace %s, want %s", s.Name, s.SpanContext.TraceID(), p1.SpanContext.TraceID())
		}
	}
	wantChild(t, c1, p1)
	wantChild(t, p2, c1)
	wantChild(t, c2, p2)
	wantLink(t, c1, p1.SpanContext)
	wantLink(t, c2, p2.SpanContext)
	for _, s := range []tracetest.SpanStub{p1, p2} {
		if s.SpanKind != trace.SpanKindProducer {
			t.Errorf("span %q kind %v, want producer", s.Name, s.SpanKind)
		}
	}
	for _, s := range []tracetest.SpanStub{c1, c2} {
		if s.SpanKind != trace.SpanKindConsumer {
			t.Errorf("span %q kind %v, want consumer", s.Name, s.SpanKind)
		}
		if s.Status.Code == codes.Error {
			t.Errorf("span %q has error status %v", s.Name, s.Status)
		}
	}
	body, _ := json.Marshal(orderCreated{ID: "o-1", Qty: 2})
	wantAttrs(t, p1, map[string]any{
		"messaging.system": "nats", "messaging.operation.type": "send", "messaging.operation.name": "publish",
		"messaging.destination.name": "orders.created.v1.o-1", "messaging.destination.template": "orders.created.v1",
		"messaging.message.id": ack.EventID, "messaging.message.body.size": len(body),
	})
	wantAttrs(t, c1, map[string]any{
		"messaging.system": "nats", "messaging.operation.type": "process", "messaging.operation.name": "process",
		"messaging.destination.name": "orders.created.v1.o-1", "messaging.destination.template": "orders.created.v1",
		"messaging.consumer.group.name": "inventory", "messaging.message.id": ack.EventID,
		"messaging.message.body.size": len(body), "jetkit.delivery.count": 1, "jetkit.stream": "ORDERS",
		"jetkit.stream.sequence": ack.Sequence, "jetkit.outcome": "acked",
	})
	mu.Lock()
	wantStock := stockID
	mu.Unlock()
	wantAttrs(t, c2, map[string]any{
		"messaging.destination.name": "stock.reserved.v1", "messaging.consumer.group.name": "shipping",
		"messaging.message.id": wantStock, "jetkit.stream": "STOCK", "jetkit.outcome": "acked",
	})
	if _, ok := attrs(c2)["messaging.destination.template"]; ok {
		t.Errorf("unkeyed subject should have no destination template: %v", c2.Attributes)
	}

	// The process span is what middleware and handler see: it wraps the chain.
	mu.Lock()
	defer mu.Unlock()
	for key, want := range map[string]tracetest.SpanStub{"mw inventory": c1, "inventory": c1, "mw shipping": c2, "shipping": c2} {
		if got := seen[key]; got.SpanID() != want.SpanContext.SpanID() {
			t.Errorf("%s ran in span %s, want %q %s", key, got.SpanID(), want.Name, want.SpanContext.SpanID())
		}
	}
}

// A message published by a plain nats.go client with a lower-case
// traceparent header joins the producer's trace, and logs written through
// LogHandler carry the ids.
func TestRawClientTraceparentJoinsTrace(t *testing.T) {
	r := newRig(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := newJSONLogger(&logs, &logMu)
	handled := make(chan trace.SpanContext, 1)
	_, err := framework.Subscribe(t.Context(), r.svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		log.InfoContext(ctx, "reserving", "order", ev.ID)
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(r.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	msg := &nats.Msg{Subject: "orders.created.v1.raw-1", Data: []byte(`{"id":"raw-1","qty":1}`), Header: nats.Header{
		"traceparent":    []string{"00-" + traceID + "-" + parentID + "-01"},
		"ce-specversion": []string{"1.0"}, "ce-id": []string{"raw-1"}, "ce-type": []string{"orders.created.v1"},
		"ce-source": []string{"python-producer"}, "content-type": []string{"application/json"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	var inHandler trace.SpanContext
	select {
	case inHandler = <-handled:
	case <-time.After(15 * time.Second):
		t.Fatal("not handled within 15s")
	}
	spans := r.waitSpans(t, 1)
	c := spanNamed(t, spans, "process orders.created.v1")
	if c.SpanContext.TraceID().String() != traceID {
		t.Fatalf("process span trace %s, want the producer's %s", c.SpanContext.TraceID(), traceID)
	}
	if c.Parent.SpanID().String() != parentID || !c.Parent.IsRemote() {
		t.Fatalf("process span parent %s (remote %v), want remote %s", c.Parent.SpanID(), c.Parent.IsRemote(), parentID)
	}
	if len(c.Links) != 1 || c.Links[0].SpanContext.SpanID().String() != parentID {
		t.Fatalf("process span links %v, want one to %s", c.Links, parentID)
	}
	wantAttrs(t, c, map[string]any{"messaging.message.id": "raw-1", "messaging.consumer.group.name": "inventory"})
	if inHandler.SpanID() != c.SpanContext.SpanID() {
		t.Fatalf("handler ran in span %s, want the process span %s", inHandler.SpanID(), c.SpanContext.SpanID())
	}
	logMu.Lock()
	line := logs.String()
	logMu.Unlock()
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	if rec[telemetry.LogKeyTraceID] != traceID || rec[telemetry.LogKeySpanID] != c.SpanContext.SpanID().String() {
		t.Fatalf("log line lacks the trace ids: %s", line)
	}
}

// A failing handler records the error and the retry as span events; a
// permanent error records the dead-letter.
func TestFailuresAreSpanEvents(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	attempts := map[string]int{}
	_, err := framework.Subscribe(t.Context(), r.svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		mu.Lock()
		attempts[ev.ID]++
		n := attempts[ev.ID]
		mu.Unlock()
		switch {
		case ev.ID == "poison":
			return framework.Permanent(errors.New("qty must be positive"))
		case n == 1:
			return errors.New("inventory db unavailable")
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := orderTopic.Publish(ctx, r.svc, orderCreated{ID: "flaky", Qty: 1}, framework.WithKey("flaky")); err != nil {
		t.Fatal(err)
	}
	if _, err := orderTopic.Publish(ctx, r.svc, orderCreated{ID: "poison", Qty: -1}, framework.WithKey("poison")); err != nil {
		t.Fatal(err)
	}
	// 2 publish spans, 2 process spans for "flaky", 1 for "poison".
	spans := r.waitSpans(t, 5)
	var process []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "process orders.created.v1" {
			process = append(process, s)
		}
	}
	if len(process) != 3 {
		t.Fatalf("want 3 process spans, got %d: %v", len(process), spanNames(spans))
	}
	byOutcome := map[string]tracetest.SpanStub{}
	for _, s := range process {
		byOutcome[attrs(s)["jetkit.outcome"].AsString()] = s
	}
	retried, acked, dead := byOutcome["retried"], byOutcome["acked"], byOutcome["dead_lettered"]
	if retried.Name == "" || acked.Name == "" || dead.Name == "" {
		t.Fatalf("want one span per outcome retried/acked/dead_lettered, got %v", byOutcome)
	}

	if retried.Status.Code != codes.Error || retried.Status.Description != "inventory db unavailable" {
		t.Errorf("retried span status %v", retried.Status)
	}
	wantAttrs(t, retried, map[string]any{"error.type": "_OTHER", "jetkit.delivery.count": 1})
	wantEvent(t, retried, "exception", map[string]any{"exception.message": "inventory db unavailable"})
	wantEvent(t, retried, telemetry.EventRetry, map[string]any{"jetkit.delivery.count": 1, "jetkit.max_deliver": 5})
	if d := eventAttr(retried, telemetry.EventRetry, "jetkit.retry.delay_ms"); d.AsInt64() <= 0 {
		t.Errorf("retry event delay %v, want > 0", d.String())
	}

	if acked.Status.Code == codes.Error {
		t.Errorf("redelivery that succeeded has error status %v", acked.Status)
	}
	wantAttrs(t, acked, map[string]any{"jetkit.delivery.count": 2})
	if acked.Parent.SpanID() != retried.Parent.SpanID() {
		t.Errorf("both deliveries should be children of the same publish span: %s vs %s", acked.Parent.SpanID(), retried.Parent.SpanID())
	}

	wantAttrs(t, dead, map[string]any{"error.type": "permanent"})
	wantEvent(t, dead, telemetry.EventDeadLetter, map[string]any{"jetkit.dead_letter.reason": dlq.ReasonPermanent,
		"jetkit.dead_letter.subject": wire.DeadLetterSubject("ORDERS", "inventory")})
	if dead.Status.Code != codes.Error {
		t.Errorf("dead-lettered span status %v", dead.Status)
	}
}

func findEvent(s tracetest.SpanStub, name string) (sdktrace.Event, bool) {
	for _, e := range s.Events {
		if e.Name == name {
			return e, true
		}
	}
	return sdktrace.Event{}, false
}

func eventAttr(s tracetest.SpanStub, event, key string) attribute.Value {
	e, _ := findEvent(s, event)
	for _, kv := range e.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func wantEvent(t *testing.T, s tracetest.SpanStub, name string, want map[string]any) {
	t.Helper()
	if _, ok := findEvent(s, name); !ok {
		t.Errorf("span %q: no event %q (events %v)", s.Name, name, s.Events)
		return
	}
	for k, w := range want {
		if got := eventAttr(s, name, k); got.String() != toString(w) {
			t.Errorf("span %q event %q: %s = %q, want %v", s.Name, name, k, got.String(), w)
		}
	}
}

var _ = testenv.Eventually
