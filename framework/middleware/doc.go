// Package middleware is jetkit's handler middleware: retry (with its
// per-attempt timeout), recover, idempotency and logging, one per file,
// each a func(framework.Handler) framework.Handler.
//
// # The fixed order
//
// Defaults returns the built-in middleware in the one order that is correct,
// outermost first:
//
//	Logging      one record per delivery: failures with event id, type,
//	             subject, stream sequence and attempt; success at debug
//	Idempotency  (optional) claim the event id in a KV bucket; skip events
//	             already done; one handler run per event id
//	Retry        in-process retries with backoff; each attempt gets its own
//	             deadline (RetryPolicy.AttemptTimeout) and its panics
//	             recovered into a *framework.PanicError with the stack, so
//	             a timeout or panic is retried like any error
//	your middleware (Service.Use, then SubscribeOptions.Middleware), then the handler
//
// Retry's is the one recover on this path (the dispatcher's own is only the
// net for chains without Retry). A panic in the handler unwinds through
// your own middleware up to Retry; if your middleware must see it as an
// error (metrics, tracing), end your own list with middleware.Recover().
//
// Install it service-wide:
//
//	svc.Use(middleware.Defaults(middleware.Options{Logger: log})...)
//
// # What cannot go wrong
//
// Dead-lettering is not a middleware in jetkit: the dispatcher decides after
// the whole chain has returned (retry later with NakWithDelay, or copy to
// the dead-letter stream and terminate). So a message can never be
// dead-lettered before Retry has run, whatever order you compose. Retry's
// zero values mean "use the default", never "no backoff". The per-attempt
// timeout is part of the retry policy (RetryPolicy.AttemptTimeout), not a
// middleware of its own, so attempts can never share one deadline; if you
// nest two Retry middlewares (attempts multiply), Retry logs a warning
// naming the fix the first time it sees it.
//
// # How many times a handler can run
//
// For one stream message the handler runs at most
// RetryPolicy.MaxAttempts × MaxDeliver times: MaxAttempts in-process
// attempts per delivery, and the framework redelivers with backoff until
// delivery number MaxDeliver, after which the message is dead-lettered.
// With the defaults (3 attempts, MaxDeliver 5) that is 15. Message.Attempt
// and Message.NumDelivered tell the handler where it is, and every retry is
// logged with both.
package middleware
