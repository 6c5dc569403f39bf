package framework

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// pull is one nats.go Consume of the subscription's consumer with one
// buffer depth. A subscription has one at a time; resize replaces it.
type pull struct {
	cc       jetstream.ConsumeContext
	prefetch int
	// retired is closed when another pull replaces this one: what it
	// still delivers is held, not waited for (see retire).
	retired chan struct{}

	// held are messages delivered after shutdown began (handed back once
	// this pull is closed) or after retirement (handled in order, retire).
	heldMu     sync.Mutex
	held       []jetstream.Msg
	heldClosed bool
	delivering atomic.Int32 // Consume callbacks running now
}

// startPull starts consuming with a buffer of prefetch messages.
func (s *Subscription) startPull(prefetch int) (*pull, error) {
	p := &pull{prefetch: prefetch, retired: make(chan struct{})}
	opts := append(append(s.pullOptions(), pullLimits(prefetch, s.pullMsgBound())...), // capped in bytes too (pull_limits.go)
		jetstream.PullExpiry(consumePullExpiry), jetstream.PullHeartbeat(consumeHeartbeat), // failover.go
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				s.log.Warn("consume interrupted; resuming when possible", "error", err)
				return
			}
			s.log.Debug("consume notice", "error", err)
		}))
	cc, err := s.consumer.Consume(func(m jetstream.Msg) { s.deliver(p, m) }, opts...)
	if err != nil {
		return nil, fmt.Errorf("start consuming %s/%s: %w", s.stream, s.durable, err)
	}
	p.cc = cc
	s.prefetch.Store(int64(prefetch))
	return p, nil
}

// deliver is nats.go's Consume callback: it blocks until a worker is free,
// so at most Prefetch messages wait in the client.
func (s *Subscription) deliver(p *pull, m jetstream.Msg) {
	p.delivering.Add(1)
	defer p.delivering.Add(-1)
	if s.reorder != nil {
		s.deliverPartition(p, m)
		return
	}
	if s.order != nil {
		s.deliverOrdered(p, m)
		return
	}
	select {
	case <-s.stopping:
		s.holdBack(p, m)
		return
	case <-p.retired:
		s.holdBack(p, m)
		return
	default:
	}
	select {
	case s.work <- m:
	case <-s.stopping:
		s.holdBack(p, m)
	case <-p.retired:
		s.holdBack(p, m)
	}
}

// holdBack keeps a message received during shutdown (or by a retired
// pull) until its pull subscription is closed. A Nak sent while the pull
// subscription is still open is redelivered to this very subscription,
// which hands it back again: each round burns one of the message's
// deliveries (MaxDeliver).
func (s *Subscription) holdBack(p *pull, m jetstream.Msg) {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	if p.heldClosed {
		s.handBack(m)
		return
	}
	p.held = append(p.held, m)
}

// handBackHeld hands back what holdBack kept for p; later arrivals are
// handed back at once.
func (s *Subscription) handBackHeld(p *pull) {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	p.heldClosed = true
	for _, m := range p.held {
		s.handBack(m)
	}
	p.held = nil
}

// closePull drains p (nats.go delivers what it has buffered, then
// unsubscribes) and waits until it is closed, at most until ctx ends;
// then hands back what p held.
func (s *Subscription) closePull(ctx context.Context, p *pull) {
	drainPull(ctx, p)
	s.handBackHeld(p)
}

// drainPull drains p and waits, at most until ctx ends, until it is
// closed and no Consume callback of it is still running (nats.go reports
// a drained subscription closed while its last callback may still run).
func drainPull(ctx context.Context, p *pull) {
	p.cc.Drain()
	select {
	case <-p.cc.Closed():
	case <-ctx.Done():
		p.cc.Stop()
	}
	for p.delivering.Load() > 0 && ctx.Err() == nil {
		runtime.Gosched()
	}
}

// resize replaces the pull with one of depth prefetch (see retire) and
// must not run in the heartbeat loop: it can take as long as handling the
// old buffer. urgent: the policy found the old buffer at risk (logged).
func (s *Subscription) resize(prefetch int, received uint64, urgent bool) {
	s.pullMu.Lock()
	defer s.pullMu.Unlock()
	old := s.pull
	if s.stopped() || (old != nil && old.prefetch == prefetch) {
		return
	}
	from := 0
	if old != nil {
		from = old.prefetch
		s.retire(old, prefetch < old.prefetch)
		s.pull = nil
		if s.opts.concurrency == 1 {
			s.awaitStrandedDeliveries()
		}
	}
	if s.stopped() {
		return // shutdown has begun: no new pull
	}
	p, err := s.startPull(prefetch)
	if err != nil {
		// s.pull stays nil and the tuner tries again on its next tick:
		// consuming must not stop for good because one restart failed.
		s.log.Warn("restarting the pull failed; retrying", "prefetch", prefetch, "error", err)
		return
	}
	s.pull = p
	// The next look judges the new size by its own deliveries, not by
	// what the old pull held and the workers handled since the decision.
	s.tuner.resizedAt.Store(max(received, s.stats.received.Load()))
	s.log.Debug("prefetch resized", "from", from, "to", prefetch, "urgent", urgent,
		"avg_handler", time.Duration(s.avgHandler.Load()), "avg_bytes", s.tuner.avgBytes.Load())
}

// retire stops old and hands what it had buffered to the workers, in
// order, before the caller starts the next pull: at concurrency 1 stream
// order is kept across a resize. (Handing the buffer back with Nak would
// not keep it: the server may requeue a Nak'd message behind later ones
// while the old pull request is still registered.) While they wait for a
// worker, the buffered messages are kept alive with InProgress, at once
// when shrinking (the buffer was too deep for the handlers) and every
// third of AckWait after that. At shutdown the rest is handed back.
func (s *Subscription) retire(old *pull, shrinking bool) {
	close(old.retired) // deliver now only holds messages: the drain is quick
	ctx, cancel := context.WithTimeout(context.Background(), s.conn.cfg.RequestTimeout)
	drainPull(ctx, old)
	cancel()
	old.heldMu.Lock()
	held := old.held
	old.held, old.heldClosed = nil, true // a straggler is handed back
	old.heldMu.Unlock()
	keepAlive := func(ms []jetstream.Msg) {
		for _, m := range ms {
			if m.InProgress() == nil {
				s.stats.inProgress.Add(1)
			}
		}
	}
	if shrinking {
		keepAlive(held)
	}
	t := time.NewTicker(max(s.opts.ackWait/3, 10*time.Millisecond))
	defer t.Stop()
	for i := 0; i < len(held); {
		select {
		case s.work <- held[i]:
			i++
		case <-t.C:
			keepAlive(held[i:])
		case <-s.stopping:
			for _, m := range held[i:] {
				s.handBack(m)
			}
			return
		}
	}
}

// strandedWait bounds how long a resize at concurrency 1 waits for the
// server to settle what it sent to the retired pull.
const strandedWait = 250 * time.Millisecond

// awaitStrandedDeliveries runs between retiring a pull and starting the
// next at concurrency 1, where stream order is kept. A message the server
// sent to the old pull just as that pull unsubscribed never reaches the
// client; the server notices nobody received it and queues it for
// immediate redelivery, ahead of newer messages, but only if that happens
// before the next pull's request is served: otherwise the newer messages
// overtake it. So it waits, for at most strandedWait, until the server
// has no delivery outstanding beyond what the worker holds now (with
// other instances sharing the consumer, theirs count too, and the wait
// runs its full length).
func (s *Subscription) awaitStrandedDeliveries() {
	ctx, cancel := context.WithTimeout(context.Background(), strandedWait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := s.consumer.Info(ctx)
		if err != nil {
			return
		}
		if held, _ := s.running(time.Now()); info.NumAckPending <= held {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		}
	}
}

// pullMissing reports whether a failed restart left the subscription
// without a pull.
func (s *Subscription) pullMissing() bool {
	// Never wait (the heartbeat loop asks): whoever holds the lock, a
	// resize or shutdown, is dealing with the pull already.
	if !s.pullMu.TryLock() {
		return false
	}
	defer s.pullMu.Unlock()
	return s.pull == nil && !s.stopped()
}

func (s *Subscription) stopped() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}
