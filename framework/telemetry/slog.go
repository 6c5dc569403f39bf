package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys added by LogHandler.
const (
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// LogHandler wraps next so that every record logged with a context holding
// a valid span carries trace_id and span_id, which lets a log back-end jump
// from a line to its trace:
//
//	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))
//	log.InfoContext(ctx, "reserved stock", "order", id) // ... "trace_id":"4bf9…","span_id":"00f0…"
//
// Use the *Context logging methods with the handler's ctx; records logged
// without a context (or outside a span) pass through unchanged. The IDs are
// added to the record, so inside a logger's WithGroup they land in that group.
func LogHandler(next slog.Handler) slog.Handler {
	if h, ok := next.(*logHandler); ok {
		return h
	}
	return &logHandler{next: next}
}

type logHandler struct{ next slog.Handler }

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String(LogKeyTraceID, sc.TraceID().String()), slog.String(LogKeySpanID, sc.SpanID().String()))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{next: h.next.WithAttrs(attrs)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{next: h.next.WithGroup(name)}
}

// ReplaceDurations is a slog.HandlerOptions.ReplaceAttr that writes
// time.Duration values as text ("20s", "1.5ms") instead of the integer
// nanoseconds slog's JSON handler writes, so that a log line reads
// "budget":"20s" rather than "budget":20000000000:
//
//	slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{ReplaceAttr: telemetry.ReplaceDurations})
func ReplaceDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
