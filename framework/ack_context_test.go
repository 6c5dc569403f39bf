package framework

import (
	"testing"
	"time"
)

// A worker's ack context always leaves at least the request timeout, at
// most twice it, and is reused until it would leave less.
func TestWorkerAckContextDeadline(t *testing.T) {
	const timeout = 50 * time.Millisecond
	var w workerSlot
	defer func() { w.ackCancel() }()
	check := func(when string) {
		t.Helper()
		dl, ok := w.ackContext(timeout).Deadline()
		left := time.Until(dl)
		if !ok || left < timeout-5*time.Millisecond || left > 2*timeout {
			t.Fatalf("%s: deadline %v away (set %v); want between %v and %v", when, left, ok, timeout, 2*timeout)
		}
	}
	check("first ack")
	first := w.ackCtx
	check("next ack")
	if w.ackCtx != first {
		t.Fatal("a fresh context was made while the first one still left more than the timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Until(w.ackUntil) >= timeout && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // let the clock move past the renewal point
	}
	check("after the renewal point")
	if w.ackCtx == first || first.Err() == nil {
		t.Fatal("the context was not renewed, or the old one not released, once less than the timeout was left")
	}
}
