package framework

import (
	"math"
	"testing"
	"time"
)

// TestCrashLoopLimitDoesNotOverflow: MAX_DELIVER=9223372036854775807 made
// the limit wrap to 3, so a transiently failing message was dead-lettered
// on its 4th delivery.
func TestCrashLoopLimitDoesNotOverflow(t *testing.T) {
	for _, n := range []int{1, 5, math.MaxInt32, math.MaxInt / 2, math.MaxInt} {
		if got := crashLoopLimit(n); got < uint64(n) {
			t.Errorf("crashLoopLimit(%d) = %d, below MaxDeliver", n, got)
		}
	}
	if crashLoopLimit(5) != 15 {
		t.Errorf("crashLoopLimit(5) = %d, want 15", crashLoopLimit(5))
	}
}

// TestBackoffDelayWithHugeMax: doubling towards a huge RETRY_MAX must not
// overflow into a zero or negative delay.
func TestBackoffDelayWithHugeMax(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: math.MaxInt64, Jitter: 0.2}
	prev := time.Duration(0)
	for n := uint64(1); n <= 80; n++ {
		d := b.Delay(n)
		if d < time.Second/2 || (n > 2 && d < prev/4) {
			t.Fatalf("delay after failure %d = %s (previous %s): overflowed", n, d, prev)
		}
		prev = d
	}
}
