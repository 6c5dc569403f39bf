package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/framework"
)

// IdempotencyConfig configures the Idempotency middleware. Zero fields
// take the defaults named on each.
type IdempotencyConfig struct {
	// Bucket is the JetStream KV bucket holding the records. Default
	// "jetkit-idempotency". Services may share it: keys are per stream and
	// consumer.
	Bucket string
	// TTL is how long a processed event id is remembered; an event
	// re-published after that runs again. Default 24h. Must exceed Lease.
	TTL time.Duration
	// Lease is how long a claim on an event stays valid without being
	// renewed. A running handler renews it every Lease/3; if its process
	// dies, a redelivery takes the event over once the lease has run out.
	// Default 30s.
	Lease time.Duration
	// Replicas of the bucket's stream. Default the service's
	// Config.Replicas.
	Replicas int
	// Storage of the bucket. Default file.
	Storage jetstream.StorageType
	// Key derives the de-duplication key of a message. The default is the
	// stream, consumer and event id (Envelope.ID), so that every consumer
	// (fan-out) still gets each event once. An empty key runs the handler
	// without de-duplication. Any string is allowed: it is encoded into a
	// valid KV key.
	Key func(m *framework.Message) string
	// Logger receives take-overs and failures to record outcomes. Default
	// slog.Default().
	Logger *slog.Logger
}

// IdempotencyStats counts what the middleware did since it was created.
type IdempotencyStats struct {
	Ran      uint64 // handler runs after a successful claim
	Skipped  uint64 // deliveries of events already done: acked without running
	Waited   uint64 // deliveries that waited for another live claim to end
	TookOver uint64 // claims taken over after their lease ran out
	// Reclaimed counts claims of this instance left behind by an earlier
	// delivery (a claim stored although its write's answer was lost)
	// that a later delivery took back at once, without waiting for the
	// lease.
	Reclaimed uint64
}

// Idempotency runs a handler at most once per event id (within TTL), even
// when the same event is re-published under a different Nats-Msg-Id,
// redelivered after an ack was lost, or delivered to two instances at the
// same moment. Create it once per service with NewIdempotency.
//
// Each claim names its owner: this instance and the delivery. A claim
// write whose answer is lost (a timeout during a failover) is read back
// and, if stored, recognised as the delivery's own; a claim of this
// instance whose delivery is no longer running (its answer was lost and
// the read-back failed too) is taken back by the next delivery at once,
// instead of waiting for its lease as for another instance's.
//
// Per delivery it claims the key with a KV create (revision semantics:
// exactly one of two racing instances wins), runs the handler while
// renewing the claim's lease, then records the event as done, or deletes
// the claim if the handler failed so that a retry can claim it at once.
// A delivery that finds the event done is acked without running the
// handler; one that finds a live claim of another delivery waits (its
// message kept alive by the framework's InProgress heartbeats) until that
// claim is released, done or its lease runs out (a crashed owner).
type Idempotency struct {
	kv    jetstream.KeyValue
	cfg   IdempotencyConfig
	keyOf func(m *framework.Message) string
	// opTimeout bounds each KV call made outside the handler's context
	// (claim, renew, release, done), which must happen even during
	// shutdown: the service's Config.RequestTimeout.
	opTimeout time.Duration
	// instance prefixes the owner of every claim this Idempotency makes;
	// running holds the owners whose delivery is in progress here.
	instance string
	running  sync.Map // owner -> struct{}

	ran, skipped, waited, tookOver, reclaimed atomic.Uint64
}

const (
	stateProcessing = "processing"
	stateDone       = "done"
)

// NewIdempotency creates or updates the KV bucket on svc's connection,
// with svc's replica count unless cfg says otherwise and riding out what
// passes in a cluster (Service.EnsureKeyValue), and returns the
// middleware's owner. Its KV calls are bounded by svc's
// Config.RequestTimeout.
//
//	idem, err := middleware.NewIdempotency(ctx, svc, middleware.IdempotencyConfig{TTL: 72 * time.Hour})
//	if err != nil {
//		return err
//	}
//	framework.Subscribe(ctx, svc, orderCreated, "billing", charge,
//		&framework.SubscribeOptions{Middleware: []framework.Middleware{idem.Middleware()}})
func NewIdempotency(ctx context.Context, svc *framework.Service, cfg IdempotencyConfig) (*Idempotency, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "jetkit-idempotency"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = svc.Config().Replicas
	}
	keyOf := defaultIdempotencyKey
	if user := cfg.Key; user != nil {
		keyOf = func(m *framework.Message) string {
			if raw := user(m); raw != "" {
				return keyToken(raw)
			}
			return ""
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Lease < 100*time.Millisecond || cfg.TTL <= cfg.Lease {
		return nil, fmt.Errorf("idempotency bucket %s: Lease %s must be at least 100ms and TTL %s longer than Lease", cfg.Bucket, cfg.Lease, cfg.TTL)
	}
	kv, err := svc.EnsureKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "jetkit idempotency records: event ids claimed or done",
		TTL:         cfg.TTL,
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update idempotency KV bucket %s (TTL %s): %w", cfg.Bucket, cfg.TTL, err)
	}
	return &Idempotency{kv: kv, cfg: cfg, keyOf: keyOf, opTimeout: svc.Config().RequestTimeout, instance: nuid.Next()}, nil
}

// Stats returns the counters.
func (i *Idempotency) Stats() IdempotencyStats {
	return IdempotencyStats{Ran: i.ran.Load(), Skipped: i.skipped.Load(), Waited: i.waited.Load(), TookOver: i.tookOver.Load(),
		Reclaimed: i.reclaimed.Load()}
}

// Bucket is the KV bucket, for inspection.
func (i *Idempotency) Bucket() jetstream.KeyValue { return i.kv }

// Middleware returns the middleware. Place it outside Retry (Defaults
// does), so that in-process retries happen under one claim.
func (i *Idempotency) Middleware() framework.Middleware {
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			return i.handle(ctx, next, m)
		})
	}
}

func (i *Idempotency) handle(ctx context.Context, next framework.Handler, m *framework.Message) error {
	key := i.keyOf(m)
	if key == "" {
		return next.Handle(ctx, m)
	}
	owner := i.instance + "." + nuid.Next()
	i.running.Store(owner, struct{}{})
	defer i.running.Delete(owner)
	claim := encodeRecord(record{State: stateProcessing, Owner: owner, LeaseMS: i.cfg.Lease.Milliseconds(),
		Subject: m.Subject, StreamSeq: m.StreamSeq})
	waited := false
	for {
		rev, err := i.claim(ctx, key, claim, owner, 0)
		if err == nil {
			return i.run(ctx, next, m, key, rev, claim, owner)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			// The claim may have been stored all the same: drop it once the
			// bucket answers, so that another instance need not wait out
			// its lease.
			go i.dropLostClaim(key, owner)
			return fmt.Errorf("idempotency: claim event %s in bucket %s: %w", m.Envelope.ID, i.cfg.Bucket, err)
		}
		e, err := i.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released or expired since the create: claim again
		}
		if err != nil {
			return fmt.Errorf("idempotency: read claim of event %s in bucket %s: %w", m.Envelope.ID, i.cfg.Bucket, err)
		}
		rec, err := decodeRecord(e.Value())
		if err != nil {
			return fmt.Errorf("idempotency: key %s in bucket %s: %w (delete the key if it is not jetkit's)", key, i.cfg.Bucket, err)
		}
		if rec.State == stateDone {
			i.skipped.Add(1)
			return nil
		}
		if i.orphaned(rec.Owner) {
			rev, err := i.claim(ctx, key, claim, owner, e.Revision())
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue // someone else moved first
			}
			if err != nil {
				return fmt.Errorf("idempotency: take back this instance's own claim of event %s: %w", m.Envelope.ID, err)
			}
			i.reclaimed.Add(1)
			i.cfg.Logger.Info("idempotency: took back this instance's claim left by an earlier delivery (its write's answer was lost); running the handler",
				"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "previous_owner_seq", rec.StreamSeq)
			return i.run(ctx, next, m, key, rev, claim, owner)
		}
		expiry := e.Created().Add(time.Duration(rec.LeaseMS) * time.Millisecond)
		if time.Now().After(expiry) {
			rev, err := i.claim(ctx, key, claim, owner, e.Revision())
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				continue // someone else moved first
			}
			if err != nil {
				return fmt.Errorf("idempotency: take over expired claim of event %s: %w", m.Envelope.ID, err)
			}
			i.tookOver.Add(1)
			i.cfg.Logger.Warn("idempotency: took over a claim whose lease ran out (its owner crashed or stalled); running the handler",
				"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "previous_owner_seq", rec.StreamSeq, "lease", i.cfg.Lease)
			return i.run(ctx, next, m, key, rev, claim, owner)
		}
		if !waited {
			waited = true
			i.waited.Add(1)
		}
		if err := i.waitChange(ctx, key, e.Revision(), expiry); err != nil {
			return fmt.Errorf("idempotency: waiting for another delivery of event %s to finish: %w", m.Envelope.ID, err)
		}
	}
}

// orphaned reports whether owner is a claim of this instance whose
// delivery is no longer running here.
func (i *Idempotency) orphaned(owner string) bool {
	if !strings.HasPrefix(owner, i.instance+".") {
		return false
	}
	_, live := i.running.Load(owner)
	return !live
}

// claim creates the key (last == 0) or replaces revision last with value,
// the claim of owner. The write is not cancelled with ctx: a claim the
// server stored while the caller stopped listening would be orphaned until
// its lease ran out, so it waits for the answer (bounded by the request
// timeout) and lets the handler see the cancelled ctx instead. When the
// answer is lost (a timeout, a failover), the key is read back: holding
// this very claim, the write was stored.
func (i *Idempotency) claim(ctx context.Context, key string, value []byte, owner string, last uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.opTimeout)
	var rev uint64
	var err error
	if last == 0 {
		rev, err = i.kv.Create(wctx, key, value)
	} else {
		rev, err = i.kv.Update(wctx, key, value, last)
	}
	cancel()
	if err == nil || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return rev, err
	}
	if rev, ok := i.ownRevision(key, owner); ok {
		return rev, nil // stored; only the answer was lost
	}
	return 0, err
}

// dropLostClaim deletes owner's claim of key, should a create whose
// answer was lost have stored it, now or later (a write in flight during
// an election may be stored after its caller gave up). It looks for up to
// a lease, and stops once the key holds anything else (a later delivery
// took the claim back, another owner's claim, the done record).
func (i *Idempotency) dropLostClaim(key, owner string) {
	deadline := time.Now().Add(i.cfg.Lease)
	for pause := 100 * time.Millisecond; time.Now().Before(deadline); pause = min(2*pause, 2*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), i.opTimeout)
		e, err := i.kv.Get(ctx, key)
		if err == nil {
			rec, derr := decodeRecord(e.Value())
			if derr != nil || rec.Owner != owner {
				cancel()
				return
			}
			if err = i.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err == nil {
				cancel()
				return
			}
		}
		cancel()
		time.Sleep(pause)
	}
}

// ownRevision reads key back after a write whose answer was lost: if it
// holds owner's claim, that is its revision.
func (i *Idempotency) ownRevision(key, owner string) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), i.opTimeout)
	defer cancel()
	e, err := i.kv.Get(ctx, key)
	if err != nil {
		return 0, false
	}
	rec, err := decodeRecord(e.Value())
	if err != nil || rec.State != stateProcessing || rec.Owner != owner {
		return 0, false
	}
	return e.Revision(), true
}

// run calls the handler under the claim at rev and settles the claim.
func (i *Idempotency) run(ctx context.Context, next framework.Handler, m *framework.Message, key string, rev uint64, claim []byte, owner string) (err error) {
	i.ran.Add(1)
	stop := i.keepLease(key, rev, claim, owner, m)
	finished := false
	defer func() {
		latest := stop()
		if !finished || err != nil { // failed or panicking: free the event for a retry now
			i.release(key, latest, owner, m)
			return
		}
		i.markDone(key, latest, m)
	}()
	err = next.Handle(ctx, m)
	finished = true
	return err
}

// keepLease renews the claim every Lease/3 until the returned function is
// called; that function returns the claim's latest revision.
func (i *Idempotency) keepLease(key string, rev uint64, claim []byte, owner string, m *framework.Message) func() uint64 {
	stop := make(chan struct{})
	result := make(chan uint64, 1)
	go func() {
		t := time.NewTicker(i.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				result <- rev
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), i.opTimeout)
				nrev, err := i.kv.Update(ctx, key, claim, rev)
				cancel()
				if err != nil {
					if r, ok := i.ownRevision(key, owner); ok && r != rev {
						rev = r // stored; only the answer was lost
						continue
					}
					i.cfg.Logger.Warn("idempotency: could not renew the claim; if its lease runs out another delivery may run the handler too",
						"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "error", err)
					if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
						<-stop
						result <- rev
						return
					}
					continue
				}
				rev = nrev
			}
		}
	}()
	return func() uint64 { close(stop); return <-result }
}

// release deletes the claim at rev after a failure, so that a retry can
// claim the event at once. If the bucket does not answer, the claim is
// dropped in the background once it does (a redelivery here takes it
// back meanwhile: it is this instance's).
func (i *Idempotency) release(key string, rev uint64, owner string, m *framework.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), i.opTimeout)
	defer cancel()
	err := i.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	if framework.IsTransient(err) {
		go i.dropLostClaim(key, owner)
		return
	}
	i.cfg.Logger.Warn("idempotency: could not release the claim after a failure; a retry elsewhere waits until its lease runs out",
		"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "lease", i.cfg.Lease, "error", err)
}

// markDone records the event as done, replacing the claim at rev. The
// handler has succeeded: a done record that is not stored lets a
// redelivery (a lost ack) run it again, so a write that fails for a
// reason that passes (an election) is tried again for up to a lease, and
// one whose answer was lost is read back.
func (i *Idempotency) markDone(key string, rev uint64, m *framework.Message) {
	done := encodeRecord(record{State: stateDone, Subject: m.Subject, StreamSeq: m.StreamSeq, At: time.Now().UTC()})
	deadline := time.Now().Add(i.cfg.Lease)
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), i.opTimeout)
		_, err := i.kv.Update(ctx, key, done, rev)
		cancel()
		if err == nil || i.recordedDone(key, m) {
			return
		}
		if !framework.IsTransient(err) || time.Now().Add(pause).After(deadline) {
			i.cfg.Logger.Error("idempotency: handler succeeded but the event could not be recorded as done; a duplicate may run it again",
				"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "error", err)
			return
		}
		time.Sleep(pause)
	}
}

// recordedDone reports whether key holds the done record of m's message.
func (i *Idempotency) recordedDone(key string, m *framework.Message) bool {
	ctx, cancel := context.WithTimeout(context.Background(), i.opTimeout)
	defer cancel()
	e, err := i.kv.Get(ctx, key)
	if err != nil {
		return false
	}
	rec, err := decodeRecord(e.Value())
	return err == nil && rec.State == stateDone && rec.StreamSeq == m.StreamSeq
}

// waitChange blocks until the key's revision differs from rev, the lease
// expiry passes, or ctx ends.
func (i *Idempotency) waitChange(ctx context.Context, key string, rev uint64, expiry time.Time) error {
	w, err := i.kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watch key %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	t := time.NewTimer(time.Until(expiry) + 10*time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e != nil && e.Revision() != rev {
				return nil
			}
		}
	}
}
