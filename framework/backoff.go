package framework

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is the redelivery delay policy for transient failures: the n-th
// failed delivery is redelivered after Initial·2^(n-1), capped at Max, with
// ±Jitter spread so that a burst of failures does not return in lockstep.
// The zero value is not used: subscriptions take Config.RetryInitial and
// Config.RetryMax unless WithBackoff overrides them.
type Backoff struct {
	// Initial is the delay after the first failed delivery.
	Initial time.Duration
	// Max caps the delay.
	Max time.Duration
	// Jitter is the random spread as a fraction of the delay (0.2 = ±20%).
	Jitter float64
}

// Delay returns the delay before redelivering after failed delivery n (1-based).
func (b Backoff) Delay(n uint64) time.Duration {
	d := b.Initial
	for i := uint64(1); i < n && d < b.Max; i++ {
		if d > b.Max/2 { // doubling would pass Max (or overflow)
			d = b.Max
			break
		}
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 {
		j := float64(d) + (rand.Float64()*2-1)*float64(d)*b.Jitter
		d = time.Duration(min(j, math.MaxInt64/2)) // a huge Max must not overflow
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}
