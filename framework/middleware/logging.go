package middleware

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// Logging writes one structured record per delivery when the chain inside
// it returns: an error at Warn (Error for a panic, with its stack, or for
// a failure that will be dead-lettered), success only at Debug. Every
// record carries the event id, type, subject, stream sequence, delivery
// number, in-process attempt and duration. Put it outermost, so it sees
// the outcome after Retry and Idempotency:
//
//	svc.Use(middleware.Logging(log), middleware.Retry(middleware.RetryPolicy{}))
//
// The dispatcher separately logs what it does with a failed message
// (retry later, dead-letter); Logging adds the handler's view: how long it
// ran, which attempt failed and the panic stack. A nil logger means
// slog.Default().
func Logging(log *slog.Logger) framework.Middleware {
	if log == nil {
		log = slog.Default()
	}
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			start := time.Now()
			err := next.Handle(ctx, m)
			logOutcome(ctx, log, m, err, time.Since(start))
			return err
		})
	}
}

func logOutcome(ctx context.Context, log *slog.Logger, m *framework.Message, err error, took time.Duration) {
	level, msg := slog.LevelDebug, "handled"
	var pe *framework.PanicError
	if err != nil {
		pe = panicOf(err)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		level, msg = slog.LevelWarn, "handler interrupted (shutdown); the message is handed back"
	case pe != nil:
		level, msg = slog.LevelError, "handler panicked"
	case framework.IsPermanent(err):
		level, msg = slog.LevelError, "handler failed permanently; dead-lettering"
	case m.MaxDeliver > 0 && m.NumDelivered >= uint64(m.MaxDeliver):
		level, msg = slog.LevelError, "handler failed on the last delivery; dead-lettering"
	default:
		level, msg = slog.LevelWarn, "handler failed; the message will be redelivered"
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("event_id", m.Envelope.ID), slog.String("type", m.Envelope.Type),
		slog.String("subject", m.Subject), slog.String("stream", m.Stream), slog.String("consumer", m.Consumer),
		slog.Uint64("stream_seq", m.StreamSeq), slog.Uint64("delivery", m.NumDelivered),
		slog.Int("max_deliver", m.MaxDeliver), slog.Int("attempt", m.Attempt), slog.Duration("took", took),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if pe != nil {
		attrs = append(attrs, slog.String("stack", string(pe.Stack)))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

// panicOf returns the *framework.PanicError err carries, or nil. A helper
// so that the errors.As target escapes to the heap only on the error path.
func panicOf(err error) *framework.PanicError {
	var pe *framework.PanicError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}
