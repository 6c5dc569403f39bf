package framework

import (
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
