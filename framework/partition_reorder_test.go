package framework

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework/internal/testhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// windowMsg is a delivery of stream sequence seq, delivered n times, whose
// InProgress calls are counted in beats.
func windowMsg(seq, n uint64, beats *atomic.Int64) jetstream.Msg {
	return &madeUpMsg{msg: &nats.Msg{Subject: "shops.step.v1.0.k1"}, d: testhook.Delivery{
		StreamSeq: seq, NumDelivered: n,
		InProgress: func() error { beats.Add(1); return nil },
	}}
}

func seqs(ms []jetstream.Msg) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, streamSeq(m))
	}
	return out
}

// A message the previous owner never received comes back only at its ack
// deadline, after newer first deliveries: the window holds those too and
// releases everything in stream order once the redelivery is there.
func TestReorderWindowHoldsFirstDeliveriesUntilTheRedeliveriesAreBack(t *testing.T) {
	var beats atomic.Int64
	flushed := make(chan []jetstream.Msg, 1)
	w := newReorderWindow(2, time.Hour, 5*time.Millisecond, nil, func(ms []jetstream.Msg) { flushed <- ms })
	for _, m := range []jetstream.Msg{windowMsg(7, 2, &beats), windowMsg(12, 1, &beats), windowMsg(13, 1, &beats)} {
		if out := w.offer(m); out != nil {
			t.Fatalf("offer(%d) released %v while a redelivery is missing", streamSeq(m), seqs(out))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for beats.Load() < 3 { // what it holds is kept alive
		if time.Now().After(deadline) {
			t.Fatalf("held messages got %d InProgress, want at least one each", beats.Load())
		}
		time.Sleep(time.Millisecond)
	}
	out := w.offer(windowMsg(5, 3, &beats)) // the lost one, back at its deadline
	if got, want := seqs(out), []uint64{5, 7, 12, 13}; !slices.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	if out := w.offer(windowMsg(14, 1, &beats)); !slices.Equal(seqs(out), []uint64{14}) {
		t.Fatalf("after the window closed, offer released %v, want [14]", seqs(out))
	}
	select {
	case ms := <-flushed:
		t.Fatalf("the timer flushed %v after the window closed", seqs(ms))
	default:
	}
}

// When fewer redeliveries come back than were pending (the previous
// owner's last acks landed late), the window flushes in order at its
// deadline.
func TestReorderWindowFlushesAtItsDeadline(t *testing.T) {
	var beats atomic.Int64
	flushed := make(chan []jetstream.Msg, 1)
	w := newReorderWindow(3, 20*time.Millisecond, time.Hour, nil, func(ms []jetstream.Msg) { flushed <- ms })
	w.offer(windowMsg(9, 1, &beats))
	w.offer(windowMsg(4, 2, &beats))
	expectFlush(t, flushed, []uint64{4, 9}, "the window did not flush at its deadline")
	if out := w.offer(windowMsg(10, 1, &beats)); !slices.Equal(seqs(out), []uint64{10}) {
		t.Fatalf("after the flush, offer released %v, want [10]", seqs(out))
	}
}

// When the previous owner's last acks land after the pending count was
// read, fewer redeliveries come back than expected: as soon as the
// consumer has nothing pending but what the window holds, it closes, in
// order, without waiting for its deadline.
func TestReorderWindowClosesWhenNothingElseIsPending(t *testing.T) {
	var beats atomic.Int64
	flushed := make(chan []jetstream.Msg, 1)
	var delivered atomic.Int64 // the server's ack-pending: only what was offered to the window
	w := newReorderWindow(3, time.Hour, time.Hour, func(context.Context) (int, error) {
		return int(delivered.Load()), nil
	}, func(ms []jetstream.Msg) { flushed <- ms })
	delivered.Add(2)
	if out := w.offer(windowMsg(9, 1, &beats)); out != nil {
		t.Fatalf("released %v at once", seqs(out))
	}
	w.offer(windowMsg(4, 2, &beats))
	expectFlush(t, flushed, []uint64{4, 9}, "the window stayed shut although nothing else was pending")
}

// expectFlush waits for the window's flush and checks it released want,
// in that order; it fails with why when nothing is flushed.
func expectFlush(t *testing.T, flushed <-chan []jetstream.Msg, want []uint64, why string) {
	t.Helper()
	select {
	case ms := <-flushed:
		if got := seqs(ms); !slices.Equal(got, want) {
			t.Fatalf("flushed %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(why)
	}
}
