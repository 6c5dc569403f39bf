package framework

import (
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// reorderWindow puts back in stream order what a partition's previous
// owner left unacknowledged. The server redelivers those messages before
// any new one, but in the order their ack deadlines expired, which after a
// crash need not be stream order (a key's held messages were kept alive at
// different times). The new owner knows how many there are (the
// consumer's NumAckPending when it takes the partition): it holds the
// first redeliveries until it has them all, a first delivery arrives (the
// redeliveries are over), or a third of AckWait passes (they are not kept
// alive meanwhile), and then hands them to the key scheduler sorted by
// stream sequence.
type reorderWindow struct {
	mu    sync.Mutex
	want  int // redeliveries expected
	held  []jetstream.Msg
	open  bool
	timer *time.Timer
}

// newReorderWindow holds up to pending redeliveries; flush delivers them
// if they are not all there after wait.
func newReorderWindow(pending int, wait time.Duration, flush func([]jetstream.Msg)) *reorderWindow {
	w := &reorderWindow{want: pending, open: true}
	w.timer = time.AfterFunc(wait, func() {
		w.mu.Lock()
		ms := w.closeLocked()
		w.mu.Unlock()
		flush(ms)
	})
	return w
}

// offer returns what to deliver now, in stream order: nothing while the
// window holds m.
func (w *reorderWindow) offer(m jetstream.Msg) []jetstream.Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.open {
		return []jetstream.Msg{m}
	}
	w.held = append(w.held, m)
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 && len(w.held) < w.want {
		return nil
	}
	return w.closeLocked()
}

// close ends the window and returns what it held, in stream order.
func (w *reorderWindow) close() []jetstream.Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closeLocked()
}

func (w *reorderWindow) closeLocked() []jetstream.Msg {
	if !w.open {
		return nil
	}
	w.open = false
	w.timer.Stop()
	held := w.held
	w.held = nil
	slices.SortStableFunc(held, func(a, b jetstream.Msg) int {
		return compareSeq(streamSeq(a), streamSeq(b))
	})
	return held
}

func streamSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deliverPartition is deliver for a partition with a reorder window.
func (s *Subscription) deliverPartition(p *pull, m jetstream.Msg) {
	for _, m := range s.reorder.offer(m) {
		s.deliverOrdered(p, m)
	}
}

// handBackReordered hands back, at shutdown, what the window still holds
// (before the key scheduler's messages, which are all later).
func (s *Subscription) handBackReordered() {
	if s.reorder == nil {
		return
	}
	for _, m := range s.reorder.close() {
		s.handBack(m)
	}
}
