package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/jetkit/jetkit/framework/telemetry"
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
