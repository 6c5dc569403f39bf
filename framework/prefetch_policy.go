package framework

import (
	"slices"
	"time"
)

// prefetchPolicy decides when an adaptive subscription's buffer changes
// depth. It is fed one look at a time (tuneEvery) and reaches a fixed
// point for a steady handler, however noisy its timings:
//
//   - the handler time it judges by is the median of the last estLooks
//     looks' means (handler time / deliveries): a stall, a GC pause or a
//     preempted handler lifts one look's mean, not the median, while a
//     handler that really became slower moves it within a few looks;
//   - how long every worker has been busy counts only once it reaches
//     AckWait/stuckShare: a hung handler, not a descheduled goroutine;
//   - the depth changes only when the right one is at most half or at
//     least twice the current one;
//   - a shrink that is not urgent needs two looks in a row, and a change
//     that reverses the previous one waits resizeCoolDown after it.
//
// Urgent is a shrink for a buffer whose last message would wait 3/4 of
// AckWait or more, or behind a hung handler: it happens at once.
type prefetchPolicy struct {
	concurrency int
	ackWait     time.Duration

	means       [estLooks]time.Duration // the last looks' means, a ring
	nMeans      int                     // looks measured so far
	est         time.Duration           // their median; 0 until measured
	shrinkVotes int                     // looks in a row that called for a shrink
	lastResize  time.Time               // zero: never resized
	grew        bool                    // the last resize grew the buffer
}

// tuneLook is what the tuner measured since its previous look.
type tuneLook struct {
	now         time.Time
	cur         int           // current depth
	handled     int64         // deliveries handled since the previous look
	handlerTime time.Duration // their total handler time
	busy        time.Duration // how long every worker has been busy (0: one is idle)
	avgBytes    int64         // mean payload size
	seen        uint64        // deliveries at the current depth
	backlog     bool          // the server holds more than the buffer
}

const (
	// stuckShare: every worker busy for AckWait/stuckShare means a handler
	// is hung (or very slow), and that time counts as the handler time.
	stuckShare = 8
	// resizeCoolDown is how long after a resize one in the other
	// direction waits (an urgent shrink does not).
	resizeCoolDown = 2 * time.Second
	// estLooks is how many looks' mean handler times the estimate is the
	// median of.
	estLooks = 5
)

// decide returns the depth to resize to (cur: no change) and whether the
// change is an urgent shrink.
func (p *prefetchPolicy) decide(l tuneLook) (want int, urgent bool) {
	if l.handled > 0 {
		p.means[p.nMeans%estLooks] = max(l.handlerTime/time.Duration(l.handled), 1)
		p.nMeans++
		p.est = median(p.means[:min(p.nMeans, estLooks)])
	}
	h := p.est
	stuck := l.busy >= p.ackWait/stuckShare
	if stuck {
		h = max(h, l.busy)
	}
	if h <= 0 || l.cur < 1 {
		return l.cur, false
	}
	want = prefetchFor(h, l.avgBytes, p.concurrency, p.ackWait)
	reverses := func(grow bool) bool {
		return !p.lastResize.IsZero() && p.grew != grow && l.now.Sub(p.lastResize) < resizeCoolDown
	}
	switch {
	case want*2 <= l.cur:
		wait := time.Duration(l.cur) * h / time.Duration(p.concurrency)
		urgent = stuck || wait >= p.ackWait*3/4
		p.shrinkVotes++
		if !urgent && (p.shrinkVotes < 2 || reverses(false)) {
			return l.cur, false
		}
	case want >= 2*l.cur && l.seen >= growAfter && l.backlog:
		p.shrinkVotes = 0
		if reverses(true) {
			return l.cur, false
		}
	default:
		p.shrinkVotes = 0
		return l.cur, false
	}
	p.shrinkVotes = 0
	p.grew, p.lastResize = want > l.cur, l.now
	return want, urgent
}

// median of ds (the upper one of an even count); ds is not changed.
func median(ds []time.Duration) time.Duration {
	var buf [estLooks]time.Duration
	sorted := append(buf[:0], ds...)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
