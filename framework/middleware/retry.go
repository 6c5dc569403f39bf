package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// RetryPolicy is data: how often and how fast Retry tries a handler again
// inside one delivery before the message goes back to the broker. A zero
// field takes its default (never "no backoff"); see DefaultRetryPolicy.
type RetryPolicy struct {
	// Backoff paces the attempts: the wait before the second attempt is
	// Backoff.Initial, growing by Multiplier up to Max, spread by ±Jitter.
	// Zero fields take 100ms, 5s, ×2 and ±20% (a negative Jitter disables
	// it).
	Backoff framework.Backoff
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
		Backoff:     retryBackoff,
		MaxAttempts: 3,
		MaxElapsed:  30 * time.Second,
	}
}

// retryBackoff is what a RetryPolicy's zero Backoff fields take.
var retryBackoff = framework.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}

// withDefaults fills zero fields from DefaultRetryPolicy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	b := p.Backoff
	if b.Initial == 0 {
		b.Initial = d.Backoff.Initial
	}
	if b.Max == 0 {
		b.Max = max(d.Backoff.Max, b.Initial)
	}
	if b.Multiplier == 0 {
		b.Multiplier = d.Backoff.Multiplier
	}
	if b.Jitter == 0 {
		b.Jitter = d.Backoff.Jitter
	}
	p.Backoff = b
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
	b := p.Backoff
	if b.Initial < 0 {
		errs = append(errs, fmt.Errorf("Backoff.Initial %s: must not be negative", b.Initial))
	}
	if b.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("Backoff.Multiplier %g: must be at least 1", b.Multiplier))
	}
	if b.Max < b.Initial {
		errs = append(errs, fmt.Errorf("Backoff.Max %s: must be at least Backoff.Initial %s", b.Max, b.Initial))
	}
	if b.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("Backoff.Jitter %g: must be below 1 (a fraction of the wait)", b.Jitter))
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
//	framework.Subscribe(ctx, svc, orderCreated, "billing", charge,
//		&framework.SubscribeOptions{Middleware: []framework.Middleware{retry}})
//
// Retry panics if the policy is invalid (see Validate), like
// regexp.MustCompile: a broken policy is a programming error found at
// start-up.
func Retry(p RetryPolicy) framework.Middleware {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	p = p.withDefaults()
	var warnNested sync.Once
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			nested := ctx.Value(retryKey{}) != nil
			if p.MaxAttempts > 1 {
				if nested {
					warnNested.Do(func() {
						p.Logger.Warn("middleware.Retry nested in another Retry: attempts multiply; keep one Retry per subscription",
							"max_attempts", p.MaxAttempts, "stream", m.Stream, "consumer", m.Consumer)
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
		wait := p.Backoff.Delay(uint64(n))
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
