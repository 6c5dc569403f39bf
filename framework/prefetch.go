package framework

import (
	"sync/atomic"
	"time"
)

// Adaptive prefetch. Unless SubscribeOptions.Prefetch fixes it, a subscription sizes
// its pull from what it measures: fast handlers get a deep buffer (the
// throughput nats.go's Consume reaches only with large batches), slow
// handlers a shallow one, so that no buffered message outlives AckWait
// while it waits for a worker. Resizing restarts the pull (see resize);
// prefetchPolicy decides when. Every pull, fixed or adaptive, is also
// capped in bytes (pull_limits.go).
const (
	// autoPrefetchMax bounds the buffer for fast handlers. Beyond a few
	// thousand, deeper buffers stop paying on a 2-core machine (BENCHMARKS.md).
	autoPrefetchMax = 4096
	// autoPrefetchMaxBytes bounds the bytes a buffer may hold: the depth
	// from the mean message size, and every pull strictly (pullLimits).
	autoPrefetchMaxBytes = 16 << 20
	// prefetchWaitShare: a buffered message should wait for a worker at
	// most this share of AckWait (the rest is for its handler).
	prefetchWaitShare = 4
	// tuneEvery is how often the tuner looks at the measurements.
	tuneEvery = 100 * time.Millisecond
	// growAfter is how many deliveries a size must have seen before the
	// tuner trusts the handler time enough to grow the buffer. Shrinking
	// needs no such wait: it is the safe direction.
	growAfter = 64
)

// prefetchTuner is a subscription's adaptive-prefetch state.
type prefetchTuner struct {
	avgBytes atomic.Int64 // EWMA of payload size
	// handled and handledNs sum deliveries and their handler time since
	// the tuner's last look.
	handled   atomic.Int64
	handledNs atomic.Int64
	resizedAt atomic.Uint64 // Stats().Received when the current size was chosen
	// lastPending is the consumer's backlog (NumPending) as of the last
	// delivery: the buffer grows only for a backlog.
	lastPending atomic.Uint64
	// maxMsg is the largest message a pull may have to carry (the
	// server's max payload): every pull is capped in bytes for it.
	maxMsg   int64
	policy   prefetchPolicy // heartbeat loop only
	resizing atomic.Bool
	now      chan struct{} // wakes the tuner before its tick
}

// observe folds one handled delivery into the measurements.
func (t *prefetchTuner) observe(d time.Duration, size int) {
	ewma(&t.avgBytes, max(int64(size), 1))
	t.handledNs.Add(int64(d))
	t.handled.Add(1)
}

// initialAutoPrefetch is where an adaptive subscription starts, before
// anything is measured: deep enough for fast handlers to get going, and
// shallow enough that handlers up to ~100 ms do not let the first batch
// outlive a 30 s AckWait at concurrency 1. sizePull lowers it for large
// messages.
func initialAutoPrefetch(concurrency int) int { return max(256, 2*concurrency) }

// autoPrefetchLimit is the largest buffer an adaptive subscription grows to.
func autoPrefetchLimit(concurrency int) int { return max(autoPrefetchMax, 2*concurrency) }

// prefetchFor is the buffer depth for the measured mean handler time avg
// and mean payload size avgBytes: messages wait for a worker about
// depth × avg / concurrency, which is kept under AckWait / prefetchWaitShare,
// and the buffer's payloads under autoPrefetchMaxBytes. At least 1.
func prefetchFor(avg time.Duration, avgBytes int64, concurrency int, ackWait time.Duration) int {
	limit := autoPrefetchLimit(concurrency)
	depth := limit
	if avg > 0 {
		byTime := int64(concurrency) * int64(ackWait/prefetchWaitShare) / int64(avg)
		depth = int(min(int64(depth), byTime))
	}
	if avgBytes > 0 {
		depth = int(min(int64(depth), autoPrefetchMaxBytes/avgBytes))
	}
	return max(1, depth)
}

// tune feeds the policy one look and resizes the buffer when it says so.
// It runs in the heartbeat loop.
func (s *Subscription) tune() {
	// A resize under way works off the old buffer, which can take as long
	// as the handlers do: the heartbeat loop, which calls tune, must not
	// wait for it (its InProgress beats keep the running handlers'
	// messages alive; pullMissing does not wait either).
	if s.tuner.resizing.Load() {
		return
	}
	cur := int(s.prefetch.Load())
	received := s.stats.received.Load()
	if s.pullMissing() {
		s.resizeAsync(cur, received, false)
		return
	}
	if !s.opts.autoPrefetch {
		return
	}
	now := time.Now()
	want, urgent := s.tuner.policy.decide(tuneLook{
		now:         now,
		cur:         cur,
		handled:     s.tuner.handled.Swap(0),
		handlerTime: time.Duration(s.tuner.handledNs.Swap(0)),
		busy:        s.allBusyFor(now),
		avgBytes:    s.tuner.avgBytes.Load(),
		seen:        received - s.tuner.resizedAt.Load(),
		// Growing pays only when the server holds a backlog deeper than
		// the buffer: with messages arriving as they are published, a
		// deeper buffer changes nothing, and replacing the pull costs a
		// pause.
		backlog: s.tuner.lastPending.Load() > uint64(cur),
	})
	if want != cur {
		s.resizeAsync(want, received, urgent)
	}
}

// resizeAsync runs resize in its own goroutine, one at a time: handling
// the old buffer can take a while, and the heartbeat loop must go on.
func (s *Subscription) resizeAsync(prefetch int, received uint64, urgent bool) {
	if !s.tuner.resizing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.tuner.resizing.Store(false)
		s.resize(prefetch, received, urgent)
	}()
}

// tuneSoon asks the tuner to look now rather than at its next tick.
func (s *Subscription) tuneSoon() {
	select {
	case s.tuner.now <- struct{}{}:
	default:
	}
}

// allBusyFor is how long every worker has been running its current
// handler (the shortest of those times), or 0 when a worker is idle.
func (s *Subscription) allBusyFor(now time.Time) time.Duration {
	var least time.Duration
	for i := range s.slots {
		slot := &s.slots[i]
		slot.mu.Lock()
		busy, started := slot.msg != nil, slot.started
		slot.mu.Unlock()
		if !busy {
			return 0
		}
		if d := now.Sub(started); i == 0 || d < least {
			least = d
		}
	}
	return least
}
