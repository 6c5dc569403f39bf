package framework

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPrefetchFor(t *testing.T) {
	cases := []struct {
		name        string
		avg         time.Duration
		bytes       int64
		concurrency int
		ackWait     time.Duration
		want        int
	}{
		{"fast handler: the message limit", 10 * time.Microsecond, 128, 1, 30 * time.Second, 4096},
		{"many workers raise the limit", 10 * time.Microsecond, 128, 4000, 30 * time.Second, 8000},
		{"5 ms handler: a quarter of AckWait", 5 * time.Millisecond, 128, 1, 30 * time.Second, 1500},
		{"concurrency spreads the wait", 5 * time.Millisecond, 128, 4, 30 * time.Second, 4096},
		{"handler longer than AckWait: one", time.Minute, 128, 1, 30 * time.Second, 1},
		{"1 MiB payloads: 16 MiB of buffer", 10 * time.Microsecond, 1 << 20, 1, 30 * time.Second, 16},
		{"nothing measured yet: the limit", 0, 0, 1, 30 * time.Second, 4096},
	}
	for _, c := range cases {
		if got := prefetchFor(c.avg, c.bytes, c.concurrency, c.ackWait); got != c.want {
			t.Errorf("%s: prefetchFor(%s, %d B, c=%d, %s) = %d, want %d", c.name, c.avg, c.bytes, c.concurrency, c.ackWait, got, c.want)
		}
	}
}

// Whatever the depth and the largest message, a pull holds at most
// autoPrefetchMaxBytes (or one message when a message is larger), and a
// request can always carry the largest message (else the consumer stalls).
func TestPullBudgetBoundsBytes(t *testing.T) {
	for _, maxMsg := range []int64{1 << 10, 64 << 10, 1 << 20, 8 << 20, 12 << 20, 64 << 20} {
		for _, depth := range []int{1, 2, 15, 16, 17, 256, 4096, 8192} {
			b := pullBudgetFor(depth, maxMsg)
			limit := max(int64(autoPrefetchMaxBytes), maxMsg+pullMsgOverhead)
			if got := b.worstCase(maxMsg); got > limit {
				t.Errorf("depth %d, max message %d B: up to %d B buffered, want at most %d", depth, maxMsg, got, limit)
			}
			if b.depth != depth {
				t.Errorf("depth %d, max message %d B: depth changed to %d", depth, maxMsg, b.depth)
			}
			if b.reqBytes != 0 && (b.reqBytes < maxMsg+pullMsgOverhead || b.threshold < 1) {
				t.Errorf("depth %d, max message %d B: request of %d B, threshold %d: the largest message cannot be pulled", depth, maxMsg, b.reqBytes, b.threshold)
			}
		}
	}
	if b := pullBudgetFor(4096, 0); b.reqBytes != 0 {
		t.Errorf("unknown message size: %+v, want the depth alone", b)
	}
}

// A fast handler measured on a loaded machine: most looks see thousands of
// ~10 µs deliveries, some include a scheduler stall of up to 400 ms, and
// the single worker is often caught mid-handler after a preemption. The
// policy grows once, to the limit, and stays there.
func TestPrefetchPolicyStableUnderNoise(t *testing.T) {
	p := prefetchPolicy{concurrency: 1, ackWait: 30 * time.Second}
	rng := rand.New(rand.NewPCG(1, 2))
	cur, resizes := 256, 0
	now := time.Unix(0, 0)
	var seen uint64
	for look := range 600 { // a minute of looks
		now = now.Add(tuneEvery)
		handled := int64(2000 + rng.IntN(6000))
		total := time.Duration(handled) * time.Duration(5+rng.IntN(20)) * time.Microsecond
		if rng.IntN(3) == 0 { // a stall inside one handler
			total += time.Duration(rng.IntN(400)) * time.Millisecond
		}
		var busy time.Duration
		if rng.IntN(2) == 0 { // caught mid-handler, perhaps preempted
			busy = time.Duration(rng.IntN(500)) * time.Millisecond
		}
		seen += uint64(handled)
		want, urgent := p.decide(tuneLook{now: now, cur: cur, handled: handled, handlerTime: total,
			busy: busy, avgBytes: 200, seen: seen, backlog: true})
		if want != cur {
			resizes++
			t.Logf("look %d: %d → %d (urgent %v, estimate %s)", look, cur, want, urgent, p.est)
			cur, seen = want, 0
		}
	}
	if resizes != 1 || cur != autoPrefetchMax {
		t.Errorf("%d resizes, ending at %d; want one, to %d", resizes, cur, autoPrefetchMax)
	}
}

// The policy still follows real changes: a handler that becomes slow
// shrinks the buffer within a few looks, and a hung one at once.
func TestPrefetchPolicyFollowsRealChanges(t *testing.T) {
	p := prefetchPolicy{concurrency: 1, ackWait: 30 * time.Second}
	now := time.Unix(0, 0)
	look := func(cur int, handled int64, each, busy time.Duration) (int, bool) {
		now = now.Add(tuneEvery)
		return p.decide(tuneLook{now: now, cur: cur, handled: handled, handlerTime: time.Duration(handled) * each,
			busy: busy, avgBytes: 200, seen: 1000, backlog: true})
	}
	if want, _ := look(256, 5000, 10*time.Microsecond, 0); want != autoPrefetchMax {
		t.Fatalf("fast handler: want %d, got %d", autoPrefetchMax, want)
	}
	// 20 ms per delivery: 4096 × 20 ms is far past AckWait/2: urgent.
	var shrunk int
	for i := range 10 {
		want, urgent := look(autoPrefetchMax, 5, 20*time.Millisecond, 0)
		if want != autoPrefetchMax {
			if !urgent || want > autoPrefetchMax/2 {
				t.Errorf("slow handler: shrink to %d (urgent %v)", want, urgent)
			}
			shrunk = i + 1
			break
		}
	}
	if shrunk == 0 || shrunk > 5 {
		t.Fatalf("slow handler: shrunk after %d looks, want within 5", shrunk)
	}
	// A hung handler: every worker busy past AckWait/8, nothing handled.
	p = prefetchPolicy{concurrency: 1, ackWait: 2 * time.Second}
	look(256, 5000, 10*time.Microsecond, 0)
	if want, urgent := look(256, 0, 0, 300*time.Millisecond); want >= 256 || !urgent {
		t.Errorf("hung handler: want %d (urgent %v), want an urgent shrink", want, urgent)
	}
}
