package framework

import (
	"context"
	"fmt"
	"time"
)

// A handler that never returns would keep its message alive with
// InProgress heartbeats forever and hold its worker: with one worker the
// subscription stalls, silently. The heartbeat loop therefore bounds each
// delivery by MaxHandlerTime: past it, the handler's context is cancelled
// (context.Cause is an error wrapping ErrMaxHandlerTime) and heartbeats
// stop. A handler that returns then is settled as usual, its error
// wrapping ErrMaxHandlerTime: retried with backoff, or dead-lettered on
// the last delivery. One still running a grace period later is abandoned:
// its delivery is settled the same way without it, and a new worker takes
// its slot, so the subscription keeps its concurrency. A goroutine cannot
// be killed in Go, so the stuck one runs on; should it ever return, it
// finds the slot no longer its own and ends, its result discarded. Every
// abandoned goroutine is counted (SubscriptionStats.Abandoned) and logged
// as an error. Handlers running past AckWait are counted
// (SubscriptionStats.Overran) and logged as a warning once each.

// limitGrace is how long past MaxHandlerTime a handler whose context was
// cancelled may take to return before it is abandoned: a tenth of the
// limit, between 100ms and 5s.
func limitGrace(limit time.Duration) time.Duration {
	return min(max(limit/10, 100*time.Millisecond), 5*time.Second)
}

// limitHandler warns about a handler running past AckWait, cancels one
// running past MaxHandlerTime and abandons one still running a grace
// period later. The heartbeat loop calls it with slot.mu held and a
// delivery in the slot.
func (s *Subscription) limitHandler(slot *workerSlot, now time.Time) {
	ran := now.Sub(slot.started)
	limit := s.opts.maxHandlerTime
	if !slot.overran && ran >= s.opts.ackWait {
		slot.overran = true
		s.stats.overran.Add(1)
		s.log.Warn("handler running longer than AckWait; its message is kept with InProgress heartbeats until MaxHandlerTime",
			"subject", slot.msg.Subject(), "running", ran.Round(time.Millisecond), "ack_wait", s.opts.ackWait, "max_handler_time", limitText(limit))
	}
	switch {
	case limit <= 0:
	case !slot.expired && ran >= limit:
		slot.expired, slot.expireAt = true, now
		slot.cancel(fmt.Errorf("%w (%s)", ErrMaxHandlerTime, limit))
		s.log.Warn("handler ran past MaxHandlerTime; its context is cancelled and the message will be retried",
			"subject", slot.msg.Subject(), "running", ran.Round(time.Millisecond), "max_handler_time", limit)
	case slot.expired && slot.m != nil && now.Sub(slot.expireAt) >= limitGrace(limit):
		s.abandon(slot, ran)
	}
}

func limitText(limit time.Duration) string {
	if limit <= 0 {
		return "off"
	}
	return limit.String()
}

// abandon settles the delivery of a handler that ignored its cancelled
// context, without it, and starts a new worker on slot. slot.mu is held.
func (s *Subscription) abandon(slot *workerSlot, ran time.Duration) {
	m, lctx, end := slot.m, slot.lctx, slot.end
	limit := s.opts.maxHandlerTime
	slot.gen++
	slot.msg, slot.m, slot.lctx, slot.end = nil, nil, nil, nil
	slot.ctx, slot.cancel = context.WithCancelCause(s.handlerCtx)
	n := s.stats.abandoned.Add(1)
	s.log.Error("handler ignored its cancelled context past MaxHandlerTime; abandoned (its goroutine keeps running: make the handler honour ctx), the message will be retried and a new worker takes its place",
		"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "delivery", m.NumDelivered,
		"running", ran.Round(time.Millisecond), "max_handler_time", limit, "abandoned_total", n)
	s.workers.Add(1) // the new worker
	go s.worker(slot)
	s.workers.Done() // the stuck goroutine no longer counts: shutdown does not wait for it
	err := fmt.Errorf("%w (%s): the handler ignored its cancelled context and was abandoned after %s", ErrMaxHandlerTime, limit, ran.Round(time.Millisecond))
	go func() {
		st := s.settle(lctx, nil, m, err)
		if end != nil {
			end(st)
		}
		if s.order != nil {
			s.settleKey(m.raw, st)
		}
	}()
}
