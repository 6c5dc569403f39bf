package framework

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// provisionBudget bounds provisioning (streams, consumers, KV buckets) when
// the caller's context has no deadline: long enough to ride out a stream or
// meta leader election in a cluster, short enough that a dead server fails
// start-up.
func (c *Conn) provisionBudget() time.Duration { return 6 * c.cfg.RequestTimeout }

// jsErrNoSuitablePeers is "no suitable peers for placement": the meta
// leader does not (yet) count enough JetStream peers online to place the
// replicas, e.g. while a cluster starts or a node rejoins.
const jsErrNoSuitablePeers jetstream.ErrorCode = 10005

// provisionTransient reports whether a provisioning call failed for a
// reason that passes: anything transientError accepts, and a placement
// refused because peers are not (yet) online. A cluster too small for the
// replicas asked for fails the same way, for good; the provisioning budget
// bounds the wait, and the last error names the placement.
func provisionTransient(err error) bool {
	var apiErr *jetstream.APIError
	return transientError(err) || errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrNoSuitablePeers
}

// retryTransient runs op, giving each try the connection's RequestTimeout,
// and tries again after a short pause while the error is one that passes —
// a timeout, no responders, no stream leader yet, a reconnect (the same
// set as publish retries), peers not yet online for placement — and ctx
// allows. A freshly created replicated stream, for one, does not answer
// until its group elects a leader.
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
		if err == nil || ctx.Err() != nil || !provisionTransient(err) {
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
