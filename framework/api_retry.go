package framework

import (
	"context"
	"time"
)

// provisionBudget bounds provisioning (streams, consumers) when the caller's
// context has no deadline: long enough to ride out a stream or meta leader
// election in a cluster, short enough that a dead server fails start-up.
func (c *Conn) provisionBudget() time.Duration { return 6 * c.cfg.RequestTimeout }

// retryTransient runs op, giving each try the connection's RequestTimeout,
// and tries again after a short pause while the error is one that passes —
// a timeout, no responders, no stream leader yet, a reconnect (the same
// set as publish retries) — and ctx allows. A freshly created replicated
// stream, for one, does not answer until its group elects a leader.
func retryTransient[T any](ctx context.Context, c *Conn, what string, op func(ctx context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.provisionBudget())
		defer cancel()
	}
	pause := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		v, err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !transientError(err) {
			return v, err
		}
		c.log.Debug("JetStream API call not answered; trying again", "what", what, "attempt", attempt, "retry_in", pause, "error", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		pause = min(2*pause, 2*time.Second)
	}
}
