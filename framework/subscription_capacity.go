package framework

import "time"

// Concurrency is how many handlers the subscription runs at once. A
// Partitioned subscription runs Concurrency handlers per partition it
// owns: this is their total now.
func (s *Subscription) Concurrency() int {
	if s.group != nil {
		return s.opts.concurrency * len(s.Partitions())
	}
	return s.opts.concurrency
}

// AvgHandlerTime is the moving average (EWMA, weight 1/16) of the time a
// handler takes, middleware included; 0 before the first message. It
// starts from 0, so it reads low until some dozens of messages were
// handled: check Stats().Received before trusting it. The capacity package
// derives an instance's service rate from it: Concurrency / AvgHandlerTime.
// For a Partitioned subscription it is the mean over the partitions it
// owns that have handled a message.
func (s *Subscription) AvgHandlerTime() time.Duration {
	if s.group != nil {
		return s.group.avgHandlerTime()
	}
	return time.Duration(s.avgHandler.Load())
}

// Prefetch is how many messages the client pulls ahead of the handlers
// now: fixed by the Prefetch option, or adapted to the measured handler
// time and payload size (see Prefetch).
func (s *Subscription) Prefetch() int { return int(s.prefetch.Load()) }

// running counts the handlers running now and the age of the oldest, for
// the instance registrations (instances.go): the capacity estimator names
// an instance whose handlers hang.
func (s *Subscription) running(now time.Time) (n int, oldest time.Duration) {
	if s.group != nil {
		s.group.mu.Lock()
		parts := make([]*Subscription, 0, len(s.group.owned))
		for _, p := range s.group.owned {
			parts = append(parts, p)
		}
		s.group.mu.Unlock()
		for _, p := range parts {
			k, o := p.running(now)
			n, oldest = n+k, max(oldest, o)
		}
		return n, oldest
	}
	for i := range s.slots {
		slot := &s.slots[i]
		slot.mu.Lock()
		if slot.msg != nil && !slot.abandoned {
			n++
			oldest = max(oldest, now.Sub(slot.started))
		}
		slot.mu.Unlock()
	}
	return n, oldest
}
