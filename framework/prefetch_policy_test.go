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
