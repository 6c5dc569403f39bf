package middleware

import (
	"log/slog"

	"github.com/jetkit/jetkit/framework"
)

// Options selects what Defaults builds.
type Options struct {
	// Logger for Logging and Retry; nil means slog.Default().
	Logger *slog.Logger
	// Retry is the in-process retry policy; the zero value is
	// DefaultRetryPolicy. Set Retry.AttemptTimeout for a per-attempt
	// deadline.
	Retry RetryPolicy
	// Idempotency, if not nil, de-duplicates by event id (NewIdempotency).
	Idempotency *Idempotency
}

// Defaults returns the built-in middleware in its fixed order, outermost
// first: Logging, Idempotency (if set), Retry (per-attempt timeout and
// panic recovery inside each attempt: the one recover on this path; a
// Recover inside it would never see a panic). See the package doc for why
// this order and no other.
//
//	svc, err := framework.New(ctx, cfg)
//	...
//	idem, err := middleware.NewIdempotency(ctx, svc, middleware.IdempotencyConfig{})
//	...
//	svc.Use(middleware.Defaults(middleware.Options{
//		Logger:      log,
//		Retry:       middleware.RetryPolicy{MaxAttempts: 4, AttemptTimeout: 10 * time.Second},
//		Idempotency: idem,
//	})...)
//
// Middleware you add with framework.Use runs inside this chain, so it
// cannot reorder it.
func Defaults(o Options) []framework.Middleware {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Retry.Logger == nil {
		o.Retry.Logger = o.Logger
	}
	chain := []framework.Middleware{Logging(o.Logger)}
	if o.Idempotency != nil {
		chain = append(chain, o.Idempotency.Middleware())
	}
	return append(chain, Retry(o.Retry))
}
