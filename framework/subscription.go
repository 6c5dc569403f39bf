package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework/internal/observe"
)

// Subscription is one pull consumer (durable, or Ephemeral) feeding a
// bounded pool of handlers. Create it with Subscribe; Stop or the owning
// Service's Shutdown stops it.
type Subscription struct {
	conn     *Conn
	log      *slog.Logger
	stream   string
	durable  string
	subject  string // the topic's base subject, or the filter of SubscribeHandler
	filters  []string
	opts     subOptions
	handler  Handler
	consumer jetstream.Consumer
	obs      observe.SubscriptionObserver // nil: not observed (observer.go)

	pullMu   sync.Mutex // guards pull; held while resize replaces it
	pull     *pull      // the running Consume (pull.go); nil after a failed restart
	prefetch atomic.Int64

	work     chan jetstream.Msg
	stopping chan struct{} // closed when shutdown starts: stop taking work
	slots    []workerSlot
	workers  sync.WaitGroup
	hbDone   chan struct{}

	// handlerCtx is cancelled when the shutdown budget runs out.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc

	group *group // Partitioned: the consumer group (partition.go); nil otherwise
	// partGroup and partition name the group and the partition that this
	// subscription consumes, for one partition of a group ("" otherwise).
	partGroup string
	partition int

	reorder *reorderWindow // a partition taken over: its first redeliveries put in order (partition_reorder.go)

	order *keyOrder // OrderedByKey: the per-key scheduler (ordered.go); nil otherwise

	stats      subscriptionCounters
	avgHandler atomic.Int64  // EWMA of handler time in ns
	tuner      prefetchTuner // adaptive prefetch (prefetch.go)
	warnedAt   atomic.Int64
	stopOnce   sync.Once
	stopDone   chan struct{} // closed when stop has finished
	svc        *Service      // the owner, which Stop leaves
}

// workerSlot is what one worker is handling now, for heartbeats, for the
// handler time limit (handler_limit.go) and for handing work back at
// shutdown.
type workerSlot struct {
	mu        sync.Mutex
	msg       jetstream.Msg
	started   time.Time // when the handler took msg
	lastBeat  time.Time
	abandoned bool // handed back at shutdown

	// The handler time limit. ctx is the worker's handler context (a child
	// of handlerCtx), replaced once cancelled. m, lctx and end are the
	// delivery's, so that a handler abandoned past the limit can be
	// settled without it; gen changes when that happens, telling the
	// stuck goroutine, should it ever return, that the slot is no longer
	// its own.
	ctx      context.Context
	cancel   context.CancelCauseFunc
	gen      uint64
	m        *Message
	lctx     context.Context
	end      observe.ProcessEnd
	overran  bool      // ran past AckWait (warned once)
	expired  bool      // ran past MaxHandlerTime: ctx cancelled, no more heartbeats
	expireAt time.Time // when it expired

	// ackCtx bounds this worker's DoubleAck calls (the worker's goroutine
	// only): one context with a deadline, renewed when less than the
	// request timeout is left, instead of a timer armed for every ack.
	ackCtx    context.Context
	ackCancel context.CancelFunc
	ackUntil  time.Time
}

// ackContext is a context whose deadline is between timeout and
// 2×timeout from now.
func (w *workerSlot) ackContext(timeout time.Duration) context.Context {
	now := time.Now()
	if w.ackCtx == nil || now.Add(timeout).After(w.ackUntil) {
		if w.ackCancel != nil {
			w.ackCancel()
		}
		w.ackUntil = now.Add(2 * timeout)
		w.ackCtx, w.ackCancel = context.WithDeadline(context.Background(), w.ackUntil)
	}
	return w.ackCtx
}

// SubscriptionStats counts outcomes since the subscription started.
// published = Acked + DeadLettered (+ still pending) once work settles.
type SubscriptionStats struct {
	Received         uint64 // deliveries handed to a handler (or settled before one)
	Acked            uint64 // handled successfully and acked
	Retried          uint64 // transient failure: redelivery scheduled with backoff
	DeadLettered     uint64 // copied to the dead-letter stream and terminated
	HandedBack       uint64 // returned unfinished at shutdown (Nak, no delay)
	AckFailed        uint64 // ack could not be sent or confirmed: will be redelivered
	DeadLetterFailed uint64 // dead-letter publish failed: retried later, not lost
	InProgress       uint64 // InProgress heartbeats sent
	Overran          uint64 // deliveries whose handler ran longer than AckWait
	Abandoned        uint64 // handlers abandoned past MaxHandlerTime (their goroutines may still run)
	// Parked counts messages an OrderedByKey subscription gave back to the
	// server for a while because their key held too many already.
	Parked uint64
}

type subscriptionCounters struct {
	received, acked, retried, deadLettered, handedBack, ackFailed, deadLetterFailed, inProgress atomic.Uint64
	overran, abandoned, parked                                                                  atomic.Uint64
}

// Stats returns the outcome counters.
func (s *Subscription) Stats() SubscriptionStats {
	if s.group != nil {
		return s.group.stats()
	}
	c := &s.stats
	return SubscriptionStats{
		Received: c.received.Load(), Acked: c.acked.Load(), Retried: c.retried.Load(),
		DeadLettered: c.deadLettered.Load(), HandedBack: c.handedBack.Load(), AckFailed: c.ackFailed.Load(),
		DeadLetterFailed: c.deadLetterFailed.Load(), InProgress: c.inProgress.Load(),
		Overran: c.overran.Load(), Abandoned: c.abandoned.Load(), Parked: c.parked.Load(),
	}
}

// Stream is the stream consumed.
func (s *Subscription) Stream() string { return s.stream }

// Durable is the consumer's name: the durable name, or the name jetkit
// gave an Ephemeral subscription's consumer.
func (s *Subscription) Durable() string { return s.durable }

// Consumer is the JetStream consumer handle (for info and lag); nil for a
// Partitioned subscription, which has one consumer per partition.
func (s *Subscription) Consumer() jetstream.Consumer { return s.consumer }

func (s *Subscription) start() error {
	n := s.opts.concurrency
	s.work = make(chan jetstream.Msg)
	s.stopping = make(chan struct{})
	s.hbDone = make(chan struct{})
	s.tuner.now = make(chan struct{}, 1)
	s.tuner.policy = prefetchPolicy{concurrency: n, ackWait: s.opts.ackWait}
	s.slots = make([]workerSlot, n)
	s.handlerCtx, s.cancelHandler = context.WithCancel(context.Background())
	if s.opts.orderedByKey {
		total := min(orderedHeldTotal(n), orderedHoldLimit(n, s.opts.ackWait))
		s.order = newKeyOrder(total, min(orderedHeldPerKey(n), total), max(1, s.opts.maxAckPending/4), s.parkDelay)
	}
	for i := range s.slots {
		s.slots[i].ctx, s.slots[i].cancel = context.WithCancelCause(s.handlerCtx)
	}
	if s.conn.observer != nil {
		s.obs = s.conn.observer.Subscribed(s.subscriptionInfo())
	}
	for i := range n {
		s.workers.Add(1)
		go s.worker(&s.slots[i])
	}
	p, err := s.startPull(s.opts.prefetch)
	if err != nil {
		close(s.stopping)
		s.workers.Wait()
		s.cancelHandler()
		return err
	}
	s.pull = p
	go s.heartbeatLoop()
	return nil
}

func (s *Subscription) handBack(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		s.log.Warn("hand back failed; the message returns after AckWait", "subject", m.Subject(), "error", err)
	}
	s.stats.handedBack.Add(1)
}

func (s *Subscription) worker(slot *workerSlot) {
	if s.order != nil {
		s.orderedWorker(slot)
		return
	}
	for {
		select {
		case m := <-s.work:
			if _, live := s.process(slot, m); !live {
				// Abandoned past MaxHandlerTime: a new worker owns slot,
				// and this goroutine no longer counts in s.workers.
				return
			}
		case <-s.stopping:
			if slot.ackCancel != nil {
				slot.ackCancel()
			}
			s.workers.Done()
			return
		}
	}
}

// process runs one delivery through the handler chain and settles it. It
// returns the settlement, and live false when the delivery was abandoned
// for running past MaxHandlerTime (handler_limit.go): it was settled
// without this worker, whose goroutine must then end without touching
// slot again.
func (s *Subscription) process(slot *workerSlot, raw jetstream.Msg) (_ observe.Settlement, live bool) {
	start := time.Now()
	slot.mu.Lock()
	slot.msg, slot.started, slot.lastBeat, slot.abandoned = raw, start, start, false
	slot.overran, slot.expired = false, false
	gen, hctx := slot.gen, slot.ctx
	slot.mu.Unlock()
	if n := s.stats.received.Add(1); s.opts.autoPrefetch && n == s.tuner.resizedAt.Load()+growAfter {
		s.tuneSoon() // enough samples to judge this size: do not wait for the tick
	}

	m, err := s.message(raw)
	s.tuner.lastPending.Store(m.NumPending)
	ctx, end := hctx, observe.ProcessEnd(nil)
	if s.obs != nil {
		ctx, end = s.obs.StartProcess(ctx, delivery(m))
	}
	if s.opts.maxHandlerTime > 0 {
		slot.mu.Lock()
		slot.m, slot.lctx, slot.end = m, ctx, end
		slot.mu.Unlock()
	}
	if err == nil {
		err = s.call(ctx, m)
	}
	s.observe(time.Since(start), len(raw.Data()))

	slot.mu.Lock()
	if slot.gen != gen { // abandoned past MaxHandlerTime and settled already
		slot.mu.Unlock()
		return observe.Settlement{}, false
	}
	abandoned, expired := slot.abandoned, slot.expired
	slot.msg, slot.m, slot.lctx, slot.end = nil, nil, nil, nil
	if expired { // its context was cancelled: the next delivery gets a fresh one
		slot.ctx, slot.cancel = context.WithCancelCause(s.handlerCtx)
	}
	slot.mu.Unlock()
	if abandoned { // shutdown handed it back already
		st := observe.Settlement{Outcome: observe.HandedBack, Err: err}
		if end != nil {
			end(st)
		}
		return st, true
	}
	if expired && err != nil {
		err = fmt.Errorf("%w (%s): %w", ErrMaxHandlerTime, s.opts.maxHandlerTime, err)
	}
	st := s.settle(ctx, slot, m, err)
	if end != nil {
		end(st)
	}
	return st, true
}

// message builds the Message; an error here skips the handler.
func (s *Subscription) message(raw jetstream.Msg) (*Message, error) {
	m := &Message{Subject: raw.Subject(), Data: raw.Data(), Header: raw.Headers(), Stream: s.stream,
		Consumer: s.durable, MaxDeliver: s.opts.maxDeliver, Attempt: 1, raw: raw}
	md, err := raw.Metadata()
	if err != nil {
		return m, Permanent(fmt.Errorf("%w: JetStream metadata: %w", ErrDecode, err))
	}
	m.StreamSeq, m.ConsumerSeq = md.Sequence.Stream, md.Sequence.Consumer
	m.NumDelivered, m.NumPending, m.Timestamp = md.NumDelivered, md.NumPending, md.Timestamp
	if limit := crashLoopLimit(s.opts.maxDeliver); m.NumDelivered > limit {
		return m, &maxDeliverError{delivered: m.NumDelivered, limit: s.opts.maxDeliver}
	}
	return m, s.readEnvelope(m) // header limits + envelope in its content mode (content_mode.go)
}

// crashLoopLimit is the delivery count past which a message is
// dead-lettered without running the handler. It is above MaxDeliver on
// purpose: messages handed back at shutdown (or redelivered after a lost
// ack) were delivered without failing, and a healthy message must not be
// dead-lettered by rolling restarts. A message that fails is dead-lettered
// on its first failing delivery at or past MaxDeliver (settle); this limit
// only stops a poison message that crashes the process before it can fail.
// It saturates rather than overflow for a huge MaxDeliver.
func crashLoopLimit(maxDeliver int) uint64 {
	if n := uint64(maxDeliver); n <= (math.MaxUint64-5)/2 {
		return 2*n + 5
	}
	return math.MaxUint64
}

type maxDeliverError struct {
	delivered uint64
	limit     int
}

// isMaxDeliver reports whether err is a *maxDeliverError. A helper, so that
// the errors.As target escapes only on the error path, not on every
// successful delivery (hot path).
func isMaxDeliver(err error) bool {
	var me *maxDeliverError
	return errors.As(err, &me)
}

func (e *maxDeliverError) Error() string {
	return fmt.Sprintf("delivered %d times, past the crash-loop limit %d for MaxDeliver %d (earlier deliveries crashed the process or could not be settled)",
		e.delivered, crashLoopLimit(e.limit), e.limit)
}

// call runs the handler chain, turning a panic into an error.
func (s *Subscription) call(ctx context.Context, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError(r)
		}
	}()
	return s.handler.Handle(ctx, m)
}

// settle decides the outcome of a delivery (docs/design.md, section 2). lctx is the
// delivery's context: log lines about it carry its trace span.
func (s *Subscription) settle(lctx context.Context, slot *workerSlot, m *Message, err error) observe.Settlement {
	raw := m.raw
	switch {
	case err == nil:
		return s.ack(lctx, slot, m)
	case s.handlerCtx.Err() != nil:
		s.handBack(raw)
		return observe.Settlement{Outcome: observe.HandedBack, Err: err}
	case IsPermanent(err) || isMaxDeliver(err) || m.NumDelivered >= uint64(s.opts.maxDeliver):
		return s.deadLetter(lctx, m, err)
	default:
		delay := s.opts.backoff.Delay(m.NumDelivered)
		var nerr error
		if s.order == nil {
			nerr = raw.NakWithDelay(delay)
		} // else the worker retries it here after delay, holding its key (ordered.go)
		if nerr != nil {
			s.log.WarnContext(lctx, "nak failed; the message returns after AckWait", "subject", m.Subject, "error", nerr)
		}
		s.stats.retried.Add(1)
		s.log.WarnContext(lctx, "handler failed; will retry", "event_id", m.Envelope.ID, "type", m.Envelope.Type,
			"subject", m.Subject, "stream_seq", m.StreamSeq, "delivery", m.NumDelivered,
			"max_deliver", s.opts.maxDeliver, "retry_in", delay, "error", err)
		return observe.Settlement{Outcome: observe.Retried, Err: err, Delay: delay, SettleErr: nerr}
	}
}

func (s *Subscription) ack(lctx context.Context, slot *workerSlot, m *Message) observe.Settlement {
	var err error
	if s.opts.ackMode == AckModeSync {
		err = m.raw.DoubleAck(slot.ackContext(s.conn.cfg.RequestTimeout))
	} else {
		err = m.raw.Ack()
	}
	if err != nil {
		s.stats.ackFailed.Add(1)
		s.log.WarnContext(lctx, "ack failed; the message will be redelivered", "event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "error", err)
		return observe.Settlement{Outcome: observe.AckFailed, SettleErr: err}
	}
	s.stats.acked.Add(1)
	if s.log.Enabled(lctx, slog.LevelDebug) {
		s.log.DebugContext(lctx, "handled", "event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq)
	}
	return observe.Settlement{Outcome: observe.Acked}
}

// observe folds a handler time and a payload size into the moving
// averages the prefetch tuner reads.
func (s *Subscription) observe(d time.Duration, size int) {
	ewma(&s.avgHandler, max(int64(d), 1))
	s.tuner.observe(d, size)
}

// ewma folds v into the moving average a (weight 1/16). Lock-free and
// approximate: a lost update between workers only delays the average.
// The first sample seeds it.
func ewma(a *atomic.Int64, v int64) {
	old := a.Load()
	if old == 0 {
		a.Store(v)
		return
	}
	a.Store(old + (v-old)/16)
}

// heartbeatLoop sends InProgress for handlers running long, so their
// messages are not redelivered to another worker, until MaxHandlerTime
// (handler_limit.go), and checks the prefetch.
func (s *Subscription) heartbeatLoop() {
	defer close(s.hbDone)
	every := s.opts.ackWait / 4
	if s.opts.maxHandlerTime > 0 {
		every = min(every, limitGrace(s.opts.maxHandlerTime))
	}
	every = max(every, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var tuneC <-chan time.Time // nil: fixed prefetch
	if s.opts.autoPrefetch {
		tt := time.NewTicker(tuneEvery)
		defer tt.Stop()
		tuneC = tt.C
	}
	for {
		select {
		case <-s.stopping:
			return
		case now := <-t.C:
			s.beat(now, s.opts.ackWait/3)
			if s.order != nil {
				s.stats.inProgress.Add(uint64(s.order.beat(now, s.opts.ackWait/3)))
			}
			s.checkPrefetch(now)
		case <-tuneC:
			s.tune()
		case <-s.tuner.now:
			s.tune()
		}
	}
}

func (s *Subscription) beat(now time.Time, after time.Duration) {
	for i := range s.slots {
		slot := &s.slots[i]
		slot.mu.Lock()
		if slot.msg != nil && !slot.abandoned {
			s.limitHandler(slot, now)
		}
		if slot.msg != nil && !slot.abandoned && !slot.expired && now.Sub(slot.lastBeat) >= after {
			if err := slot.msg.InProgress(); err == nil {
				s.stats.inProgress.Add(1)
			}
			slot.lastBeat = now
		}
		slot.mu.Unlock()
	}
}

// checkPrefetch warns when a fixed Prefetch lets buffered messages wait
// past half of AckWait (an adaptive one resizes itself instead).
func (s *Subscription) checkPrefetch(now time.Time) {
	if s.opts.autoPrefetch {
		return
	}
	avg := time.Duration(s.avgHandler.Load())
	wait := avg * time.Duration(s.opts.prefetch) / time.Duration(s.opts.concurrency)
	if avg == 0 || wait < s.opts.ackWait/2 {
		return
	}
	last := s.warnedAt.Load()
	if last != 0 && now.UnixNano()-last < int64(time.Minute) {
		return
	}
	s.warnedAt.Store(now.UnixNano())
	safe := max(1, int(time.Duration(s.opts.concurrency)*s.opts.ackWait/(3*avg)))
	s.log.Warn("prefetch too large for this handler: buffered messages may outlive AckWait and be redelivered",
		"stream", s.stream, "consumer", s.durable, "avg_handler", avg, "prefetch", s.opts.prefetch,
		"concurrency", s.opts.concurrency, "ack_wait", s.opts.ackWait, "suggest_prefetch", safe)
}

// Stop stops this subscription alone, as Service.Shutdown stops every
// subscription: it stops pulling, hands back what is buffered, lets the
// running handlers finish until ctx ends, then hands back what they hold
// (Nak, so another instance takes it at once). The durable consumer stays
// on the server with its position; subscribing again resumes it
// (Service.DeleteConsumer removes it). An Ephemeral subscription's
// consumer is deleted. Stop returns once every message the subscription
// received is settled, and may be called more than once.
func (s *Subscription) Stop(ctx context.Context) {
	s.stop(ctx)
	if s.svc != nil {
		s.svc.untrack(s)
	}
}

// stop shuts the subscription down within ctx: stop pulling, hand back
// what is buffered, let handlers finish, and when ctx ends cancel them and
// hand back what they hold. It returns once every message it received is
// settled.
func (s *Subscription) stop(ctx context.Context) {
	s.stopOnce.Do(func() {
		if s.group != nil {
			s.group.stop(ctx)
		} else {
			s.shutdown(ctx)
			s.deleteEphemeral(ctx) // subscribe_ephemeral.go
		}
		close(s.stopDone)
	})
	<-s.stopDone
}

// handlerUnwindGrace bounds the wait for cancelled handlers to return
// after the shutdown budget ran out.
const handlerUnwindGrace = 2 * time.Second

func (s *Subscription) shutdown(ctx context.Context) {
	close(s.stopping)
	// Drain delivers what nats.go has buffered to deliver, which holds it
	// back because stopping is closed; it is handed back once the
	// subscription is closed and the server can no longer send it here.
	// A resize in progress finishes first (it starts no new pull now).
	// The drain is not cut short by a small shutdown budget: stopping it
	// drops what nats.go still buffers, which then returns only after
	// AckWait (and, ordered by key, behind later messages of its key).
	// It hands nothing to handlers, so it is quick.
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), s.conn.cfg.RequestTimeout)
	s.pullMu.Lock()
	if s.pull != nil {
		s.closePull(drainCtx, s.pull)
		s.pull = nil
	}
	s.pullMu.Unlock()
	if s.order != nil {
		// Let the server drop the closed pull's request before anything is
		// handed back: a redelivery it tries on that stale request fails
		// and goes to the back of its redelivery queue, behind later
		// messages of its key. Asking for the consumer's info makes the
		// server check its pull requests for interest.
		if _, err := s.consumer.Info(drainCtx); err != nil {
			s.log.Debug("consumer info before hand-back failed", "error", err)
		}
	}
	cancelDrain()
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Budget spent: cancel handlers. Those that return within a short
		// grace settle as usual (a success is acked, anything else handed
		// back), and what their middleware does on the way out (e.g.
		// releasing an idempotency claim) reaches the server before the
		// connection drains. Whatever is still running then is handed
		// back, so another instance can take it at once.
		s.cancelHandler()
		unwind := time.NewTimer(handlerUnwindGrace)
		select {
		case <-done:
		case <-unwind.C:
		}
		unwind.Stop()
		for i := range s.slots {
			slot := &s.slots[i]
			slot.mu.Lock()
			if slot.msg != nil && !slot.abandoned {
				slot.abandoned = true
				s.handBack(slot.msg)
			}
			slot.mu.Unlock()
		}
	}
	<-s.hbDone
	s.handBackReordered()
	if s.order != nil { // after the workers' messages: each key in order
		for _, m := range s.order.close() {
			s.handBack(m)
		}
	}
	s.cancelHandler()
	if s.obs != nil {
		s.obs.Stopped()
	}
}
