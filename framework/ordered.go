package framework

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework/internal/observe"
)

// Ordering by key (OrderedByKey). A subscription that orders by key
// handles the messages of one key one at a time, in the order it received
// them (stream order), while messages of different keys run in parallel on
// the subscription's workers. A message whose key is busy — its earlier
// message is being handled, or waits to be retried — is held in memory,
// kept alive with InProgress, until the key is free. A transient failure
// is retried in this process after its backoff instead of being handed
// back to the server with NakWithDelay, so no later message of the key
// can overtake it; other keys go on meanwhile.
//
// What is held is bounded. A key holding perKeyHeld messages is full: its
// later messages are parked — given back to the server with a delay — and
// the key's gate, the lowest parked stream sequence, admits only that
// message when it comes back, so parked messages rejoin the key in order
// and the other keys' messages keep flowing past a hot key. Parking counts
// as a delivery on the server; the scheduler remembers how often it parked
// each message and takes that off its delivery count. Past totalHeld
// messages of all keys the pull waits (the server keeps the rest).

// keyOf is the ordering key of a message: the last token of its subject
// (orders.created.v1.<key> for a Keyed topic).
func keyOf(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

// heldMsg is a message of an ordered subscription that is not with a
// worker: queued behind its key, or waiting for its retry.
type heldMsg struct {
	msg      jetstream.Msg
	lastBeat time.Time // last InProgress (or arrival)
}

// keyQueue is one key's state. A key is in keyOrder.keys while it has a
// message with a worker, waiting for a retry, or queued.
type keyQueue struct {
	queue    []heldMsg // in arrival order; queue[0] is next
	busy     bool      // a worker has the key's message, or it waits for a retry
	retrying *heldMsg  // the key's failed message, waiting for its backoff
	retry    *time.Timer
	// parked are the stream sequences of the key's messages given back
	// to the server because the key was full, ascending: parked[0] is the
	// gate, the only one of them the key admits next.
	parked []uint64
	// started is when a worker took the key's message; avg is the key's
	// mean handler time, for the parking delays.
	started time.Time
	avg     time.Duration
}

// idle reports whether the key holds nothing and may be forgotten.
func (q *keyQueue) idle() bool {
	return !q.busy && len(q.queue) == 0 && q.retrying == nil && len(q.parked) == 0
}

// keyOrder is the per-key scheduler of an ordered subscription.
type keyOrder struct {
	perKeyHeld, totalHeld int
	// parkBudget bounds the messages parked at once: they stay pending
	// on the server, and a consumer with MaxAckPending pending messages
	// gets nothing new, whatever its key.
	parkBudget int

	// parkFor is how long a parked message stays with the server, from
	// how many of its key's messages are ahead of it and how long one
	// takes (0: not measured yet).
	parkFor func(ahead int, each time.Duration) time.Duration

	mu     sync.Mutex
	keys   map[string]*keyQueue
	parks  map[uint64]uint64 // stream sequence -> times parked, until it is admitted
	held   int               // messages queued behind their keys
	ready  []string          // keys whose next message may run now, each once, in turn
	closed bool              // shut down: nothing is held any more
	wake   chan struct{}     // signalled when ready has a key
	room   chan struct{}     // signalled when a held message leaves a queue
}

func newKeyOrder(totalHeld, perKeyHeld, parkBudget int, parkFor func(ahead int, each time.Duration) time.Duration) *keyOrder {
	return &keyOrder{
		perKeyHeld: perKeyHeld, totalHeld: totalHeld, parkBudget: parkBudget, parkFor: parkFor,
		keys:  make(map[string]*keyQueue),
		parks: make(map[uint64]uint64),
		wake:  make(chan struct{}, 1),
		room:  make(chan struct{}, 1),
	}
}

// addResult is what add did with a message.
type addResult uint8

const (
	queued addResult = iota // held behind its key, or ready
	full                    // all keys together hold too much: wait for room, then add again
	park                    // behind its key's gate: give it back to the server for a while
	closed                  // shut down: hand the message back
)

// add queues m behind its key. With bounded, a scheduler holding
// totalHeld messages queues nothing and says full; the caller waits for
// room (the pull then waits too). A message behind its key's gate, or
// arriving when its key is full, is parked: the caller gives it back to
// the server for the returned delay. The message to use is returned: a
// parked message coming back is wrapped so that its delivery count leaves
// out its parkings.
//
// Parking stops at parkBudget messages: then add says full, unless force
// (the caller waited long enough: a gate may be stuck behind it in the
// client's buffer, so it parks this one past the budget).
func (o *keyOrder) add(m jetstream.Msg, bounded, force bool) (addResult, time.Duration, jetstream.Msg) {
	k := keyOf(m.Subject())
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return closed, 0, m
	}
	q := o.keys[k]
	if bounded && o.held >= o.totalHeld {
		return full, 0, m
	}
	if q != nil && (len(q.parked) > 0 || bounded && len(q.queue) >= o.perKeyHeld) {
		if md, err := m.Metadata(); err == nil {
			seq := md.Sequence.Stream
			switch {
			case len(q.parked) > 0 && seq == q.parked[0]: // the gate: admitted
				q.parked = q.parked[1:]
				if n := o.parks[seq]; n > 0 {
					delete(o.parks, seq)
					m = adjusted(m, -int64(n))
				}
			case len(q.parked) > 0 && seq < q.parked[0]: // older than every parked one: in order
			default: // behind the gate, or the key is full: park it
				i, found := slices.BinarySearch(q.parked, seq)
				if !found && len(o.parks) >= o.parkBudget && !force {
					return full, 0, m
				}
				if !found {
					q.parked = slices.Insert(q.parked, i, seq)
				}
				o.parks[seq]++
				// Back about when the key has worked off what is ahead.
				return park, o.parkFor(len(q.queue)+i+1, q.avg), m
			}
		}
	}
	if q == nil {
		q = &keyQueue{}
		o.keys[k] = q
	}
	q.queue = append(q.queue, heldMsg{msg: m, lastBeat: time.Now()})
	o.held++
	if !q.busy && len(q.queue) == 1 {
		o.pushReady(k)
	}
	return queued, 0, m
}

// pushReady makes k's next message runnable. Called with o.mu held, for a
// key that is not busy and has a queued message: such a key is in ready at
// most once.
func (o *keyOrder) pushReady(k string) {
	o.ready = append(o.ready, k)
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// next gives a worker the next message of the first ready key, marking
// the key busy; ok is false when no key is ready. Keys take turns: a hot
// key goes to the back of the line after each of its messages.
func (o *keyOrder) next() (m jetstream.Msg, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ready) == 0 {
		return nil, false
	}
	k := o.ready[0]
	o.ready[0] = ""
	o.ready = o.ready[1:]
	if len(o.ready) > 0 { // another worker may take the next key
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
	q := o.keys[k]
	m = q.queue[0].msg
	q.queue[0] = heldMsg{}
	q.queue = q.queue[1:]
	q.busy, q.started = true, time.Now()
	o.held--
	select {
	case o.room <- struct{}{}:
	default:
	}
	return m, true
}

// done frees the key of m, whose delivery is settled: its next message, if
// any, becomes ready.
func (o *keyOrder) done(m jetstream.Msg) {
	k := keyOf(m.Subject())
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.keys[k]
	if q == nil {
		return
	}
	q.busy = false
	if d := time.Since(q.started); q.avg == 0 {
		q.avg = d
	} else {
		q.avg += (d - q.avg) / 8
	}
	if len(q.queue) == 0 {
		if q.idle() {
			delete(o.keys, k)
		}
		return
	}
	o.pushReady(k)
}

// retryLater keeps m, which failed transiently, with its key busy, and
// puts it at the head of the key's queue after delay. It returns false
// after shutdown: the caller hands m back.
func (o *keyOrder) retryLater(m jetstream.Msg, delay time.Duration) bool {
	k := keyOf(m.Subject())
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	q := o.keys[k]
	if q == nil {
		q = &keyQueue{busy: true}
		o.keys[k] = q
	}
	h := &heldMsg{msg: m, lastBeat: time.Now()}
	q.retrying = h
	q.retry = time.AfterFunc(delay, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if q.retrying != h {
			return // handed back at shutdown
		}
		q.retrying, q.retry = nil, nil
		q.queue = append([]heldMsg{*h}, q.queue...)
		o.held++
		q.busy = false
		o.pushReady(k)
	})
	return true
}

// beat sends InProgress for every held message whose last one is older
// than after, so that none is redelivered while its key is busy.
func (o *keyOrder) beat(now time.Time, after time.Duration) (sent int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := func(h *heldMsg) {
		if now.Sub(h.lastBeat) >= after {
			if h.msg.InProgress() == nil {
				sent++
			}
			h.lastBeat = now
		}
	}
	for _, q := range o.keys {
		if q.retrying != nil {
			keep(q.retrying)
		}
		for i := range q.queue {
			keep(&q.queue[i])
		}
	}
	return sent
}

// close returns every held message, key by key in stream order (a key's
// retry first, then its queue), and empties the scheduler for good: at
// shutdown they are handed back in this order, after the messages the
// workers had, so the next owner of a key receives its messages in order.
func (o *keyOrder) close() []jetstream.Msg {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.ready = nil
	var out []jetstream.Msg
	for k, q := range o.keys {
		if q.retrying != nil {
			q.retry.Stop()
			out = append(out, q.retrying.msg)
			q.retrying, q.retry = nil, nil
		}
		for _, h := range q.queue {
			out = append(out, h.msg)
		}
		o.held -= len(q.queue)
		delete(o.keys, k)
	}
	clear(o.parks)
	return out
}

// redelivered is a message whose delivery count the scheduler corrects:
// a retry in this process counts as a delivery the server did not make,
// and a parking as one the handler never saw. So MaxDeliver and
// Message.NumDelivered mean the same as for a message the server
// redelivers after a failure.
type redelivered struct {
	jetstream.Msg
	adjust int64
}

func (r *redelivered) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := r.Msg.Metadata()
	if err != nil {
		return md, err
	}
	c := *md
	c.NumDelivered = uint64(max(1, int64(c.NumDelivered)+r.adjust))
	return &c, nil
}

// adjusted wraps m with its delivery count moved by d.
func adjusted(m jetstream.Msg, d int64) jetstream.Msg {
	if r, ok := m.(*redelivered); ok {
		return &redelivered{Msg: r.Msg, adjust: r.adjust + d}
	}
	return &redelivered{Msg: m, adjust: d}
}

// again wraps m for its next local delivery.
func again(m jetstream.Msg) jetstream.Msg { return adjusted(m, 1) }

// orderedBeatsPerSecond bounds the InProgress heartbeats an ordered
// subscription sends for the messages it holds behind busy keys: each
// held message is kept alive every AckWait/3, so with a short AckWait a
// deep buffer would flood the server with acks (with AckWait 150 ms and
// 4,096 held, 80,000 a second stalled the whole consumer in a load test).
const orderedBeatsPerSecond = 500

// orderedHoldLimit is the most an ordered subscription holds (and its
// default pull buffer): what orderedBeatsPerSecond keeps alive, at least
// two per worker.
func orderedHoldLimit(concurrency int, ackWait time.Duration) int {
	return max(2*concurrency, int(orderedBeatsPerSecond*ackWait.Seconds()/3))
}

// Bounds of what an ordered subscription holds behind busy keys.
func orderedHeldTotal(concurrency int) int  { return autoPrefetchLimit(concurrency) }
func orderedHeldPerKey(concurrency int) int { return max(64, orderedHeldTotal(concurrency)/16) }

// parkDelay is how long a message parked behind a full key stays with the
// server: about the time the key needs for the ahead messages before it,
// each taking the key's measured time (else the subscription's), between
// minPark and a third of AckWait.
func (s *Subscription) parkDelay(ahead int, each time.Duration) time.Duration {
	if each <= 0 {
		each = time.Duration(s.avgHandler.Load())
	}
	d := time.Duration(ahead) * each
	return min(max(d, minPark), s.opts.ackWait/3)
}

// minPark is the shortest parking: a parked message should not come back
// before its key had time to move.
const minPark = 50 * time.Millisecond

// deliverOrdered is deliver for an ordered subscription: the message joins
// its key's queue, is parked behind its key's gate, or waits for room past
// the scheduler's bound. During shutdown or a resize it joins unbounded
// (it is in memory already): at shutdown it is then handed back after its
// key's earlier messages.
func (s *Subscription) deliverOrdered(p *pull, m jetstream.Msg) {
	bounded, force := true, false
	for {
		select {
		case <-s.stopping:
			bounded = false
		case <-p.retired:
			bounded = false
		default:
		}
		res, delay, msg := s.order.add(m, bounded, force)
		switch res {
		case queued:
			return
		case park:
			if err := msg.NakWithDelay(delay); err != nil {
				s.log.Warn("parking a message of a full key failed; it returns after AckWait", "subject", msg.Subject(), "error", err)
			}
			s.stats.parked.Add(1)
			return
		case closed:
			s.handBack(msg)
			return
		}
		wait := time.NewTimer(minPark)
		select {
		case <-s.order.room:
		case <-wait.C:
			force = true
		case <-s.stopping:
		case <-p.retired:
		}
		wait.Stop()
	}
}

// orderedWorker is a worker of an ordered subscription: it runs the next
// message of a ready key, and settles the key when the message is done. It
// follows worker's protocol: at shutdown it counts itself out of
// s.workers; abandoned past MaxHandlerTime it ends without touching slot
// (abandon settles the key, and a new worker has the slot).
func (s *Subscription) orderedWorker(slot *workerSlot) {
	for {
		select {
		case <-s.order.wake:
		case <-s.stopping:
			if slot.ackCancel != nil {
				slot.ackCancel()
			}
			s.workers.Done()
			return
		}
		for !s.stopped() {
			m, ok := s.order.next()
			if !ok {
				break
			}
			st, live := s.process(slot, m)
			if !live {
				return
			}
			s.settleKey(m, st)
		}
	}
}

// settleKey lets the key of m go on once its delivery is settled as st: a
// transient failure holds the key while m waits for its retry here; any
// other outcome frees it.
func (s *Subscription) settleKey(m jetstream.Msg, st observe.Settlement) {
	if st.Outcome == observe.Retried {
		if !s.order.retryLater(again(m), st.Delay) {
			s.handBack(m)
		}
		return
	}
	s.order.done(m)
}
