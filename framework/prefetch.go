package framework

import (
	"sync/atomic"
	"time"
)

// Adaptive prefetch. Unless Prefetch(n) fixes it, a subscription sizes
// its pull from what it measures: fast handlers get a deep buffer (the
// throughput nats.go's Consume reaches only with large batches), slow
// handlers a shallow one, so that no buffered message outlives AckWait
// while it waits for a worker. Resizing restarts the pull (see resize).
const (
	// autoPrefetchMax bounds the buffer for fast handlers. Beyond a few
	// thousand, deeper buffers stop paying on a 2-core machine (BENCHMARKS.md).
	autoPrefetchMax = 4096
	// autoPrefetchMaxBytes bounds the payload bytes a buffer of that depth
	// may hold, from the measured mean payload size.
	autoPrefetchMaxBytes = 16 << 20
	// prefetchWaitShare: a buffered message should wait for a worker at
	// most this share of AckWait (the rest is for its handler).
	prefetchWaitShare = 4
	// tuneEvery is how often the tuner looks at the measurements.
	tuneEvery = 100 * time.Millisecond
	// growAfter is how many deliveries a size must have seen before the
	// tuner trusts the handler average enough to grow the buffer. Shrinking
	// needs no such wait: it is the safe direction.
	growAfter = 64
)

// prefetchTuner is a subscription's adaptive-prefetch state.
type prefetchTuner struct {
	avgBytes  atomic.Int64  // EWMA of payload size
	resizedAt atomic.Uint64 // Stats().Received when the current size was chosen
	// lastPending is the consumer's backlog (NumPending) as of the last
	// delivery: the buffer grows only for a backlog.
	lastPending atomic.Uint64
	shrinkSeen  bool // the last look called for a shrink (heartbeat loop only)
	resizing    atomic.Bool
	now         chan struct{} // wakes the tuner before its tick
}

// initialAutoPrefetch is where an adaptive subscription starts, before
// anything is measured: deep enough for fast handlers to get going, and
// shallow enough that handlers up to ~100 ms do not let the first batch
// outlive a 30 s AckWait at concurrency 1.
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

// tune resizes an adaptive subscription's buffer when the measured
// handler time or payload size calls for one at most half as deep as the
// current one, or at least twice as deep while the consumer has a backlog
// deeper than the buffer.
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
		s.resizeAsync(cur, received)
		return
	}
	if !s.opts.autoPrefetch {
		return
	}
	seen := received - s.tuner.resizedAt.Load()
	// The average moves only when handlers finish; handlers that are
	// all still running put a floor under it (a stuck handler at
	// concurrency 1 holds up the whole buffer long before it returns).
	avg := max(time.Duration(s.avgHandler.Load()), s.allBusyFor(time.Now()))
	if seen == 0 || avg == 0 {
		return
	}
	want := prefetchFor(avg, s.tuner.avgBytes.Load(), s.opts.concurrency, s.opts.ackWait)
	shrink := want*2 <= cur
	// A shrink needs two looks in a row: one stalled handler (a GC pause,
	// a busy machine) lifts the average for a moment only, and a resize
	// pauses consuming while the old buffer is worked off.
	wasShrink := s.tuner.shrinkSeen
	s.tuner.shrinkSeen = shrink
	// Growing pays only when the server holds a backlog deeper than the
	// buffer: with messages arriving as they are published, a deeper
	// buffer changes nothing, and replacing the pull costs a pause.
	backlog := s.tuner.lastPending.Load() > uint64(cur)
	switch {
	case shrink && wasShrink:
	case want >= 2*cur && seen >= growAfter && backlog:
	default:
		return
	}
	s.tuner.shrinkSeen = false
	s.resizeAsync(want, received)
}

// resizeAsync runs resize in its own goroutine, one at a time: handling
// the old buffer can take a while, and the heartbeat loop must go on.
func (s *Subscription) resizeAsync(prefetch int, received uint64) {
	if !s.tuner.resizing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.tuner.resizing.Store(false)
		s.resize(prefetch, received)
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
