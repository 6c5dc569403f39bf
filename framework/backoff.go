package framework

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is jetkit's one retry-delay vocabulary, used for redeliveries
// (SubscribeOptions.RetryBackoff, from Config.RetryInitial and RetryMax by default), for
// publish resends (PublishRetry.Backoff) and for in-process retries
// (middleware.RetryPolicy.Backoff). The n-th retry waits
// Initial·Multiplierⁿ⁻¹, capped at Max, spread by ±Jitter so that a burst of
// failures does not come back in lockstep.
//
// A zero field means the default of where the Backoff is used; a negative
// Jitter means none.
type Backoff struct {
	// Initial is the wait before the first retry.
	Initial time.Duration
	// Max caps the wait.
	Max time.Duration
	// Multiplier grows the wait after each retry; at least 1. Default 2.
	Multiplier float64
	// Jitter is the random spread as a fraction of the wait (0.2 = ±20%),
	// below 1; negative disables it.
	Jitter float64
}

// or fills b's zero fields from d.
func (b Backoff) or(d Backoff) Backoff {
	if b.Initial == 0 {
		b.Initial = d.Initial
	}
	if b.Max == 0 {
		b.Max = max(d.Max, b.Initial)
	}
	if b.Multiplier == 0 {
		b.Multiplier = d.Multiplier
	}
	if b.Multiplier == 0 {
		b.Multiplier = 2
	}
	if b.Jitter == 0 {
		b.Jitter = d.Jitter
	}
	return b
}

// validate reports what is wrong with b (after defaults), naming where it
// is used.
func (b Backoff) validate(where string) error {
	switch {
	case b.Initial <= 0:
		return fmt.Errorf("%s: Backoff.Initial %s must be positive", where, b.Initial)
	case b.Max < b.Initial:
		return fmt.Errorf("%s: Backoff.Max %s must be at least Initial %s", where, b.Max, b.Initial)
	case b.Multiplier < 1:
		return fmt.Errorf("%s: Backoff.Multiplier %g must be at least 1", where, b.Multiplier)
	case b.Jitter >= 1:
		return fmt.Errorf("%s: Backoff.Jitter %g must be below 1 (a fraction of the wait)", where, b.Jitter)
	}
	return nil
}

// Delay returns the wait before retry n (1-based): after the n-th failure.
func (b Backoff) Delay(n uint64) time.Duration {
	mult := b.Multiplier
	if mult == 0 {
		mult = 2
	}
	d := float64(b.Initial)
	for i := uint64(1); i < n && d < float64(b.Max); i++ {
		d *= mult
	}
	d = min(d, float64(b.Max))
	if b.Jitter > 0 {
		d += (rand.Float64()*2 - 1) * d * b.Jitter
	}
	if d > math.MaxInt64/2 { // a huge Max must not overflow
		d = math.MaxInt64 / 2
	}
	return max(time.Duration(d), time.Millisecond)
}
