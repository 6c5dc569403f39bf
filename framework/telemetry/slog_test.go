package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

// lockedWriter serialises writes to a buffer shared with the test.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newJSONLogger(buf *bytes.Buffer, mu *sync.Mutex) *slog.Logger {
	return slog.New(telemetry.LogHandler(slog.NewJSONHandler(lockedWriter{mu, buf}, nil)))
}

func TestLogHandlerAddsIDsOnlyInsideSpans(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := newJSONLogger(&buf, &mu).With("service", "order")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")
	log.Info("no context")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", buf.String())
	}
	var recs [3]map[string]any
	for i, l := range lines {
		if err := json.Unmarshal(l, &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	sc := span.SpanContext()
	if recs[0]["trace_id"] != sc.TraceID().String() || recs[0]["span_id"] != sc.SpanID().String() || recs[0]["service"] != "order" {
		t.Fatalf("inside a span: %s", lines[0])
	}
	for _, r := range recs[1:] {
		if _, ok := r["trace_id"]; ok {
			t.Fatalf("outside a span the record must not carry ids: %v", r)
		}
	}
	if telemetry.LogHandler(telemetry.LogHandler(slog.NewTextHandler(io.Discard, nil))) == nil {
		t.Fatal("wrapping twice returned nil")
	}
}

// The framework's own log lines about a delivery (here the retry warning)
// carry the delivery's trace and span ids.
func TestFrameworkLogsCarryTheProcessSpan(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	r := newRigWith(t, []framework.Option{framework.WithLogger(newJSONLogger(&buf, &mu))})
	var calls atomic.Int32
	if _, err := framework.Subscribe(t.Context(), r.svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		if calls.Add(1) == 1 {
			return errors.New("not yet")
		}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := orderTopic.Publish(context.Background(), r.svc, orderCreated{ID: "o-1"}, framework.WithKey("o-1")); err != nil {
		t.Fatal(err)
	}
	spans := r.waitSpans(t, 3) // publish + two deliveries
	var retried tracetest.SpanStub
	for _, s := range spans {
		if attrs(s)["jetkit.outcome"].AsString() == "retried" {
			retried = s
		}
	}
	if retried.Name == "" {
		t.Fatalf("no retried process span among %v", spanNames(spans))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != "handler failed; will retry" {
			continue
		}
		if rec["trace_id"] != retried.SpanContext.TraceID().String() || rec["span_id"] != retried.SpanContext.SpanID().String() {
			t.Fatalf("retry warning %s does not carry the process span %s/%s", line, retried.SpanContext.TraceID(), retried.SpanContext.SpanID())
		}
		return
	}
	t.Fatalf("no retry warning logged:\n%s", buf.String())
}

// With ReplaceDurations the framework's durations read as text in JSON
// logs ("budget":"3s"), in groups too, not as nanoseconds.
func TestReplaceDurationsWritesText(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(lockedWriter{&mu, &buf},
		&slog.HandlerOptions{ReplaceAttr: telemetry.ReplaceDurations})))
	cfg := testenv.Start(t).Config("durations")
	cfg.ShutdownTimeout = 3 * time.Second
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := svc.Run(ctx); err != nil { // logs "shutting down" with its budget
		t.Fatal(err)
	}
	log.WithGroup("retry").Info("grouped", "pause", 1500*time.Microsecond, "attempts", 3)

	mu.Lock()
	defer mu.Unlock()
	var budget, pause any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec["msg"] {
		case "shutting down":
			budget = rec["budget"]
		case "grouped":
			if g, ok := rec["retry"].(map[string]any); ok {
				pause = g["pause"]
				if g["attempts"] != 3.0 {
					t.Errorf("attempts %v: other values must stay as they are", g["attempts"])
				}
			}
		}
	}
	if budget != "3s" || pause != "1.5ms" {
		t.Errorf(`budget %#v, pause %#v; want "3s" and "1.5ms" (log: %s)`, budget, pause, buf.String())
	}
}
