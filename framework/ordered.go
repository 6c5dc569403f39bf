package framework

import (
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
// What is held is bounded: perKeyHeld messages of one key, totalHeld of
// all keys. Past a bound the pull waits (the server keeps the rest),
// which pauses every key until the busy key's backlog shrinks.

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
}

// keyOrder is the per-key scheduler of an ordered subscription.
type keyOrder struct {
	perKeyHeld, totalHeld int

	mu     sync.Mutex
	keys   map[string]*keyQueue
	held   int           // messages queued behind their keys
	ready  []string      // keys whose next message may run now, each once, in turn
	closed bool          // shut down: nothing is held any more
	wake   chan struct{} // signalled when ready has a key
	room   chan struct{} // signalled when a held message leaves a queue
}

func newKeyOrder(totalHeld, perKeyHeld int) *keyOrder {
	return &keyOrder{
		perKeyHeld: perKeyHeld, totalHeld: totalHeld,
		keys: make(map[string]*keyQueue),
		wake: make(chan struct{}, 1),
		room: make(chan struct{}, 1),
	}
}

// addResult is what add did with a message.
type addResult uint8

const (
	queued addResult = iota // held behind its key, or ready
	full                    // a bound is reached: wait for room, then add again
	closed                  // shut down: hand the message back
)

// add queues m behind its key. With bounded, a full key or scheduler
// queues nothing and says so; the caller waits for room (the pull then
// waits too).
func (o *keyOrder) add(m jetstream.Msg, bounded bool) addResult {
	k := keyOf(m.Subject())
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return closed
	}
	q := o.keys[k]
	if bounded && q != nil && len(q.queue) >= o.perKeyHeld || bounded && o.held >= o.totalHeld {
		return full
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
	return queued
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
	q.busy = true
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
	if len(q.queue) == 0 {
		delete(o.keys, k)
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
	return out
}

// redelivered is a message retried in this process: its metadata counts
// the local deliveries on top of the server's, so MaxDeliver and
// Message.NumDelivered mean the same as for a message the server
// redelivers.
type redelivered struct {
	jetstream.Msg
	local uint64
}

func (r *redelivered) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := r.Msg.Metadata()
	if err != nil {
		return md, err
	}
	c := *md
	c.NumDelivered += r.local
	return &c, nil
}

// again wraps m for its next local delivery.
func again(m jetstream.Msg) jetstream.Msg {
	if r, ok := m.(*redelivered); ok {
		return &redelivered{Msg: r.Msg, local: r.local + 1}
	}
	return &redelivered{Msg: m, local: 1}
}

// Bounds of what an ordered subscription holds behind busy keys.
func orderedHeldTotal(concurrency int) int  { return autoPrefetchLimit(concurrency) }
func orderedHeldPerKey(concurrency int) int { return orderedHeldTotal(concurrency) / 4 }

// deliverOrdered is deliver for an ordered subscription: the message joins
// its key's queue, waiting for room past a bound. During shutdown or a
// resize it joins unbounded (it is in memory already): at shutdown it is
// then handed back after its key's earlier messages.
func (s *Subscription) deliverOrdered(p *pull, m jetstream.Msg) {
	bounded := true
	for {
		select {
		case <-s.stopping:
			bounded = false
		case <-p.retired:
			bounded = false
		default:
		}
		switch s.order.add(m, bounded) {
		case queued:
			return
		case closed:
			s.handBack(m)
			return
		}
		select {
		case <-s.order.room:
		case <-s.stopping:
		case <-p.retired:
		}
	}
}

// orderedWorker is a worker of an ordered subscription: it runs the next
// message of a ready key, and settles the key when the message is done.
func (s *Subscription) orderedWorker(slot *workerSlot) {
	for {
		select {
		case <-s.order.wake:
		case <-s.stopping:
			return
		}
		for !s.stopped() {
			m, ok := s.order.next()
			if !ok {
				break
			}
			st := s.process(slot, m)
			if st.Outcome == OutcomeRetried {
				if !s.order.retryLater(again(m), st.Delay) {
					s.handBack(m)
				}
				continue
			}
			s.order.done(m)
		}
	}
}
