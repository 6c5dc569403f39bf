package framework

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/internal/wire"
)

// Instance registrations. While a service has subscriptions, it keeps one
// key per subscription fresh in the KV bucket jetkit_instances
// (<stream>.<durable>.<instance id>, refreshed every wire.InstanceBeat)
// with the instance's concurrency and handler time, and deletes it when
// the subscription stops. The capacity estimator reads them to know how
// many instances read a consumer and how fast each works, which JetStream
// does not tell (docs/capacity.md). Registration is best effort: a service
// that may not use the bucket logs it once and runs on.
type registry struct {
	svc *Service
	id  string

	start sync.Once
	quit  chan struct{}
	done  chan struct{}

	kv      jetstream.KeyValue // bound on the first beat that reaches it
	off     bool               // refused by permissions: stopped for good
	warned  time.Time          // last warning, at most one a minute
	written map[string]bool    // keys this instance wrote and has not deleted
}

func newRegistry(svc *Service) *registry {
	return &registry{svc: svc, id: nuid.Next(), quit: make(chan struct{}), done: make(chan struct{}), written: map[string]bool{}}
}

// run starts the beats, once; the first is now.
func (r *registry) run() {
	r.start.Do(func() { go r.loop() })
}

func (r *registry) loop() {
	defer close(r.done)
	t := time.NewTicker(wire.InstanceBeat)
	defer t.Stop()
	for {
		r.beat()
		select {
		case <-r.quit:
			return
		case <-t.C:
		}
	}
}

// stop ends the beats and deletes this instance's keys.
func (r *registry) stop() {
	started := true
	r.start.Do(func() { started = false }) // no beat starts from now on
	if !started {
		return
	}
	close(r.quit)
	<-r.done
	if r.kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.svc.cfg.RequestTimeout)
	defer cancel()
	for k := range r.written {
		_ = r.kv.Delete(ctx, k) // best effort: the key expires otherwise
	}
}

// beat writes the registration of every subscription and deletes those
// of subscriptions that stopped.
func (r *registry) beat() {
	if r.off {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.svc.cfg.RequestTimeout)
	defer cancel()
	if r.kv == nil {
		kv, err := r.bind(ctx)
		if err != nil {
			r.problem(err)
			return
		}
		r.kv = kv
	}
	// The puts' own subjects are watched, so that a refused put is this
	// registry's and fails it at once, not a concurrent call's.
	ctx, perm := r.svc.conn.watchPermissions(ctx, "$KV."+wire.InstanceBucket+".")
	defer perm.done()
	live := map[string]bool{}
	now := time.Now()
	for _, sub := range r.svc.Subscriptions() {
		key := wire.InstanceKeyPrefix(sub.Stream(), sub.Durable()) + r.id
		running, oldest := sub.running(now)
		val, _ := json.Marshal(wire.InstanceRecord{
			Service: r.svc.cfg.ServiceName, Concurrency: sub.Concurrency(),
			AvgHandlerNS: int64(sub.AvgHandlerTime()), Received: sub.Stats().Received,
			Running: running, OldestRunningNS: int64(oldest),
		})
		live[key] = true
		if _, err := r.kv.Put(ctx, key, val); err != nil {
			r.problem(perm.explain(err))
			if r.off {
				return
			}
			continue
		}
		r.written[key] = true
	}
	for k := range r.written {
		if !live[k] {
			if err := r.kv.Delete(ctx, k); err == nil {
				delete(r.written, k)
			}
		}
	}
}

// bind finds the bucket or creates it. Services never update it: its
// configuration is the first creator's (or the operator's).
func (r *registry) bind(ctx context.Context) (jetstream.KeyValue, error) {
	c := r.svc.conn
	// Its own subjects only: a refusal here is the registry's, never that
	// of a Subscribe running beside it (permission.go routes a violation to
	// the call watching its subject most specifically).
	ctx, perm := c.watchPermissions(ctx, "$JS.API.STREAM.INFO.KV_"+wire.InstanceBucket, "$JS.API.STREAM.CREATE.KV_"+wire.InstanceBucket)
	kv, err := c.bindKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: wire.InstanceBucket, Description: "jetkit instance registrations (capacity estimator)",
		TTL: wire.InstanceTTL, History: 1, Storage: jetstream.MemoryStorage, Replicas: r.svc.cfg.Replicas,
		MaxValueSize: wire.InstanceRecordMax,
	})
	err = perm.explain(err)
	perm.done()
	return kv, err
}

// bindKeyValue finds the bucket cfg names, or creates it with cfg. It
// never updates an existing bucket: a bucket shared by services (instance
// registrations, partition membership) keeps its first creator's (or the
// operator's) configuration, so no service needs the right to change it.
func (c *Conn) bindKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := c.JS.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = c.JS.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = c.JS.KeyValue(ctx, cfg.Bucket)
		}
	}
	return kv, err
}

// problem logs a failed registration: once for good when permissions
// refuse it, else at most once a minute.
func (r *registry) problem(err error) {
	if asPermissionError(err) != nil {
		r.off = true
		r.svc.log.Warn("instance registration refused by permissions; the capacity estimator will not count this instance (grant it the KV bucket "+wire.InstanceBucket+", see docs/capacity.md)", "error", err)
		return
	}
	if time.Since(r.warned) >= time.Minute {
		r.warned = time.Now()
		r.svc.log.Warn("instance registration failed; retrying", "bucket", wire.InstanceBucket, "error", err)
	}
}
