package framework

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// reorderWindow puts back in stream order what a partition's previous
// owner left unacknowledged. The new owner knows how many messages are
// pending (the consumer's NumAckPending when it takes the partition).
// Until that many redeliveries have come back it holds every delivery,
// redeliveries and first deliveries alike, and then hands what it holds
// to the key scheduler sorted by stream sequence.
//
// Two things put the pending messages out of order. The server
// redelivers them in the order their ack deadlines expire, which after a
// crash need not be stream order (a key's held messages were kept alive
// at different times). And a message the previous owner was sent but
// never received — in flight when it stopped, or lost in a node failover
// — comes back only when its ack deadline expires, while the server sends
// newer messages meanwhile: let through, a newer message of its key would
// overtake it. So the window does not open on a first delivery; it closes
// when the redeliveries are all there, or after AckWait and a margin, by
// when every message the previous owner held is past its deadline (fewer
// come back when the previous owner's last acks landed after the count
// was read: then the consumer's own ack-pending count, polled every
// pendingCheck, equals what the window holds, and it closes). It keeps
// what it holds alive with InProgress meanwhile; what it can hold is
// bounded by the consumer's MaxAckPending.
type reorderWindow struct {
	mu      sync.Mutex
	want    int // redeliveries expected
	got     int // redeliveries held
	held    []jetstream.Msg
	open    bool
	timer   *time.Timer
	beat    *time.Ticker
	check   *time.Ticker
	quit    chan struct{}
	flush   func([]jetstream.Msg)
	pending func(context.Context) (int, error) // the consumer's NumAckPending now
}

// pendingCheck is how often an open window asks the server how many
// messages are pending.
const pendingCheck = 250 * time.Millisecond

// newReorderWindow holds deliveries until pending redeliveries are among
// them, or the consumer has nothing pending but what the window holds
// (pendingNow); flush delivers what it holds if neither happened after
// wait. Every beat it sends InProgress for what it holds.
func newReorderWindow(pending int, wait, beat time.Duration, pendingNow func(context.Context) (int, error), flush func([]jetstream.Msg)) *reorderWindow {
	w := &reorderWindow{want: pending, open: true, beat: time.NewTicker(beat), check: time.NewTicker(pendingCheck),
		quit: make(chan struct{}), flush: flush, pending: pendingNow}
	w.timer = time.AfterFunc(wait, w.closeAndFlush)
	go w.keepAlive()
	return w
}

// closeAndFlush ends the window and delivers what it held, in order.
func (w *reorderWindow) closeAndFlush() {
	w.mu.Lock()
	ms := w.closeLocked()
	w.mu.Unlock()
	if len(ms) > 0 {
		w.flush(ms)
	}
}

func (w *reorderWindow) keepAlive() {
	for {
		select {
		case <-w.quit:
			return
		case <-w.beat.C:
			w.mu.Lock()
			for _, m := range w.held {
				_ = m.InProgress() // a failure: the server redelivers it, which the window absorbs
			}
			w.mu.Unlock()
		case <-w.check.C:
			if w.pending == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n, err := w.pending(ctx)
			cancel()
			w.mu.Lock()
			done := err == nil && w.open && n <= len(w.held)
			w.mu.Unlock()
			if done { // nothing else pending: nothing older can come back
				w.closeAndFlush()
				return
			}
		}
	}
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
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		w.got++
	}
	if w.got < w.want {
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
	w.beat.Stop()
	w.check.Stop()
	close(w.quit)
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
