package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/jetkit/jetkit/framework"
)

// RetryPolicy is data: how often and how fast Retry tries a handler again
// inside one delivery before the message goes back to the broker. A zero
// field takes its default (never "no backoff"); see DefaultRetryPolicy.
type RetryPolicy struct {
	// InitialInterval is the wait before the second attempt. Default 100ms.
	InitialInterval time.Duration
	// Multiplier grows the wait after each attempt; at least 1. Default 2.
	Multiplier float64
	// MaxInterval caps the wait between attempts. Default 5s.
	MaxInterval time.Duration
	// Jitter spreads each wait randomly by ±Jitter of it, so that failures
	// of many messages do not retry in lockstep. Default 0.2; negative
	// disables jitter.
	Jitter float64
	// MaxAttempts is the number of attempts per delivery, the first one
	// included. Default 3; 1 disables in-process retry. The handler runs at
	// most MaxAttempts × MaxDeliver times per message in total.
	MaxAttempts int
	// MaxElapsed stops retrying when the next wait would end more than
	// MaxElapsed after the first attempt began. Default 30s; negative means
	// no limit (MaxAttempts still applies).
	MaxElapsed time.Duration
	// AttemptTimeout, if positive, gives every attempt a fresh deadline of
	// its own (see Timeout for what happens to a handler that ignores it).
	// Default 0: attempts are bounded only by the delivery's context.
	AttemptTimeout time.Duration
	// NonRetryable classifies errors that retrying cannot fix. They are
	// returned as framework.Permanent at once, so the message is
	// dead-lettered without further attempts or redeliveries. Errors that
	// are already permanent (framework.IsPermanent, decode failures) are
	// never retried whatever this says.
	NonRetryable func(error) bool
	// Logger receives one warning per retry. Default slog.Default().
	Logger *slog.Logger
}

// DefaultRetryPolicy is what a zero RetryPolicy means.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialInterval: 100 * time.Millisecond,
		Multiplier:      2,
		MaxInterval:     5 * time.Second,
		Jitter:          0.2,
		MaxAttempts:     3,
		MaxElapsed:      30 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultRetryPolicy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.InitialInterval == 0 {
		p.InitialInterval = d.InitialInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = max(d.MaxInterval, p.InitialInterval)
	}
	if p.Jitter == 0 {
		p.Jitter = d.Jitter
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = d.MaxElapsed
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return p
}

// Validate reports every problem with the policy at once (after defaults
// are applied to zero fields).
func (p RetryPolicy) Validate() error {
	p = p.withDefaults()
	var errs []error
	if p.InitialInterval < 0 {
		errs = append(errs, fmt.Errorf("InitialInterval %s: must not be negative", p.InitialInterval))
	}
	if p.Multiplier < 1 {
		//lint:ignore ST1005 the message starts with the field it names
		errs = append(errs, fmt.Errorf("Multiplier %g: must be at least 1", p.Multiplier))
	}
	if p.MaxInterval < p.InitialInterval {
		errs = append(errs, fmt.Errorf("MaxInterval %s: must be at least InitialInterval %s", p.MaxInterval, p.InitialInterval))
	}
	if p.Jitter >= 1 {
		//lint:ignore ST1005 the message starts with the field it names
		errs = append(errs, fmt.Errorf("Jitter %g: must be below 1 (a fraction of the wait)", p.Jitter))
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d: must be at least 1", p.MaxAttempts))
	}
	if p.AttemptTimeout < 0 {
		errs = append(errs, fmt.Errorf("AttemptTimeout %s: must not be negative", p.AttemptTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("middleware.RetryPolicy: %w", err)
	}
	return nil
}

// retryKey marks a context as inside Retry, so that a nested Retry can warn
// that attempts multiply.
type retryKey struct{}

// Retry runs the handler again, in process, when it fails with a transient
// error: up to MaxAttempts attempts with exponential backoff and jitter
// between them, each attempt with its own deadline when AttemptTimeout is
// set and with panics recovered. It increments Message.Attempt before each
// retry and logs every retry with the event id, type, subject, stream
// sequence, delivery and attempt. When the attempts are used up the last
// error goes to the dispatcher, which redelivers with backoff or
// dead-letters on the last delivery.
//
// Permanent errors (framework.Permanent, decode failures) and errors
// NonRetryable accepts are not retried. Retry stops at once when the
// delivery's context ends (shutdown), so a shutdown never waits for a
// backoff.
//
//	retry := middleware.Retry(middleware.RetryPolicy{
//		MaxAttempts:    4,
//		AttemptTimeout: 5 * time.Second,
//		NonRetryable:   func(err error) bool { return errors.Is(err, ErrUnknownCustomer) },
//	})
//	framework.Subscribe(ctx, svc, orderCreated, "billing", charge, framework.Wrap(retry))
//
// Retry panics if the policy is invalid (see Validate), like
// regexp.MustCompile: a broken policy is a programming error found at
// start-up.
func Retry(p RetryPolicy) framework.Middleware {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	p = p.withDefaults()
	var warnTimeout, warnNested sync.Once
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			nested := ctx.Value(retryKey{}) != nil
			if p.MaxAttempts > 1 {
				if nested {
					warnNested.Do(func() {
						p.Logger.Warn("middleware.Retry nested in another Retry: attempts multiply; keep one Retry per subscription",
							"max_attempts", p.MaxAttempts, "stream", m.Stream, "consumer", m.Consumer)
					})
				} else if d, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
					// Only the outermost Retry reports an outer Timeout.
					warnTimeout.Do(func() {
						p.Logger.Warn("middleware.Timeout wraps middleware.Retry: all attempts share one deadline, so after a timeout the remaining attempts fail at once; set RetryPolicy.AttemptTimeout instead, or put Timeout inside Retry",
							"timeout", d, "max_attempts", p.MaxAttempts, "stream", m.Stream, "consumer", m.Consumer)
					})
				}
			}
			if !nested {
				ctx = context.WithValue(ctx, retryKey{}, true)
			}
			return p.run(ctx, next, m)
		})
	}
}

// run is the retry loop for one delivery.
func (p RetryPolicy) run(ctx context.Context, next framework.Handler, m *framework.Message) error {
	start := time.Now()
	var b *backoff.ExponentialBackOff // built on the first failure: success allocates nothing
	for n := 1; ; n++ {
		err := callWithTimeout(ctx, next, m, p.AttemptTimeout)
		switch {
		case err == nil:
			return nil
		case framework.IsPermanent(err):
			return err
		case p.NonRetryable != nil && p.NonRetryable(err):
			return framework.Permanent(err)
		case ctx.Err() != nil: // shutdown or an outer deadline: no point in waiting
			return err
		case n >= p.MaxAttempts:
			return attemptsError(n, err)
		}
		if b == nil {
			b = &backoff.ExponentialBackOff{InitialInterval: p.InitialInterval, RandomizationFactor: max(p.Jitter, 0),
				Multiplier: p.Multiplier, MaxInterval: p.MaxInterval}
			b.Reset()
		}
		wait := b.NextBackOff()
		if p.MaxElapsed > 0 && time.Since(start)+wait > p.MaxElapsed {
			return fmt.Errorf("retry budget MaxElapsed %s used up after %d attempt(s): %w", p.MaxElapsed, n, err)
		}
		p.Logger.Warn("handler failed; retrying in process", "event_id", m.Envelope.ID, "type", m.Envelope.Type,
			"subject", m.Subject, "stream_seq", m.StreamSeq, "delivery", m.NumDelivered, "max_deliver", m.MaxDeliver,
			"attempt", m.Attempt, "max_attempts", p.MaxAttempts, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		m.Attempt++
	}
}

func attemptsError(n int, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("%d in-process attempts failed, last: %w", n, err)
}
