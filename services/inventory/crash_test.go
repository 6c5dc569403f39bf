package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/testenv"
)

// crashingKV stores a write and then reports a failure, once, at the
// crashAt-th write after arming: exactly what a process dying between two
// steps of the saga looks like to the next attempt.
//
// With stale set it also answers every second Get of a key that has
// changed since the previous Get with that previous, older version: what
// a KV read served by a lagging replica looks like (direct get).
type crashingKV struct {
	jetstream.KeyValue
	writes  *atomic.Int64
	crashAt *atomic.Int64
	crashed *atomic.Bool
	stale   *staleReads
}

type staleReads struct {
	mu     sync.Mutex
	last   map[string]jetstream.KeyValueEntry
	n      int
	served atomic.Int64
}

func (c crashingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := c.KeyValue.Get(ctx, key)
	if err != nil || c.stale == nil {
		return e, err
	}
	st := c.stale
	st.mu.Lock()
	defer st.mu.Unlock()
	k := c.Bucket() + "/" + key
	prev := st.last[k]
	st.last[k] = e
	if prev != nil && prev.Revision() < e.Revision() {
		st.n++
		if st.n%2 == 0 {
			st.served.Add(1)
			return prev, nil
		}
	}
	return e, nil
}

func (c crashingKV) after(rev uint64, err error) (uint64, error) {
	if err != nil {
		return rev, err
	}
	if c.writes.Add(1) == c.crashAt.Load() {
		c.crashed.Store(true)
		return rev, errors.New("injected crash after a stored write")
	}
	return rev, nil
}

func (c crashingKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	return c.after(c.KeyValue.Update(ctx, key, value, last))
}

func (c crashingKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return c.after(c.KeyValue.Create(ctx, key, value, opts...))
}

type crashRig struct {
	t       *testing.T
	svc     *framework.Service
	inv     *Service
	writes  atomic.Int64
	crashAt atomic.Int64
	crashed atomic.Bool
	stale   *staleReads
}

func newCrashRig(t *testing.T, withStale bool) *crashRig {
	t.Helper()
	srv := testenv.Start(t)
	cfg := srv.Config("inventory")
	cfg.RetryInitial = 10 * time.Millisecond
	cfg.RetryMax = 50 * time.Millisecond
	cfg.MaxDeliver = 50
	svc := testenv.NewService(t, cfg)
	r := &crashRig{t: t, svc: svc}
	if withStale {
		r.stale = &staleReads{last: map[string]jetstream.KeyValueEntry{}}
	}
	wrap := func(kv jetstream.KeyValue) jetstream.KeyValue {
		return crashingKV{KeyValue: kv, writes: &r.writes, crashAt: &r.crashAt, crashed: &r.crashed, stale: r.stale}
	}
	var err error
	r.inv, err = newService(context.Background(), svc, wrap, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *crashRig) state(orderID string) string {
	e, err := r.inv.reservations.Get(context.Background(), orderID)
	if err != nil {
		return ""
	}
	var res reservation
	_ = json.Unmarshal(e.Value(), &res)
	return res.State
}

func (r *crashRig) waitState(orderID, want string) {
	r.t.Helper()
	testenv.Eventually(r.t, 20*time.Second, "reservation "+orderID+" "+want, func() bool { return r.state(orderID) == want })
}

// expectStock checks a SKU, read past the test's wrappers.
func (r *crashRig) expectStock(sku string, want int) {
	r.t.Helper()
	kv, err := r.svc.Conn().JS.KeyValue(context.Background(), StockBucket)
	if err != nil {
		r.t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), sku)
	if err != nil {
		r.t.Fatal(err)
	}
	var rec stockRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		r.t.Fatal(err)
	}
	if rec.Available != want || len(rec.Holds) != 0 {
		r.t.Errorf("%s: %+v, want available %d and no markers left", sku, rec, want)
	}
}

// TestCrashBetweenAnyTwoWrites runs a reservation and its cancellation,
// and a rejected reservation, crashing once after the n-th stored write,
// for every n: the redelivery must finish the work without reserving or
// releasing anything twice.
func TestCrashBetweenAnyTwoWrites(t *testing.T) {
	runScenarios(t, newCrashRig(t, false), true)
}

// TestStaleReads runs the same scenarios while half the reads of a changed
// key return its previous version, as a lagging replica answering a
// direct get would: decisions taken on a read must still come out right.
func TestStaleReads(t *testing.T) {
	r := newCrashRig(t, true)
	runScenarios(t, r, false)
	if r.stale.served.Load() == 0 {
		t.Fatal("no stale read was served; the test did not test anything")
	}
	t.Logf("%d stale reads served", r.stale.served.Load())
}

// runScenarios runs a reservation and its cancellation, and a rejected
// reservation; with crashes, once per write n, crashing after the n-th
// stored write, until a run no longer reaches write n; without, 20 times.
func runScenarios(t *testing.T, r *crashRig, crashes bool) {
	ctx := context.Background()
	for n := int64(1); ; n++ {
		a, b, c := fmt.Sprintf("a-%d", n), fmt.Sprintf("b-%d", n), fmt.Sprintf("c-%d", n)
		r.crashAt.Store(0)
		for _, sku := range []string{a, b, c} {
			if _, err := r.inv.SetStock(ctx, sku, 10); err != nil {
				t.Fatal(err)
			}
		}
		r.writes.Store(0)
		r.crashed.Store(false)
		if crashes {
			r.crashAt.Store(n)
		}

		// Reserved, then cancelled.
		ok := fmt.Sprintf("ok-%d", n)
		publish(t, r.svc, events.OrderCreatedTopic, events.OrderCreated{OrderID: ok, Items: []events.Line{{SKU: a, Qty: 3}, {SKU: b, Qty: 4}}}, ok)
		r.waitState(ok, stateReserved)
		testenv.WaitConsumerIdle(t, r.svc.Conn().JS, events.OrdersStream.Name, Durable, 10*time.Second)
		r.expectStock(a, 7)
		r.expectStock(b, 6)
		publish(t, r.svc, events.OrderCancelledTopic, events.OrderCancelled{OrderID: ok}, ok)
		r.waitState(ok, stateReleased)
		testenv.WaitConsumerIdle(t, r.svc.Conn().JS, events.OrdersStream.Name, Durable, 10*time.Second)
		r.expectStock(a, 10)
		r.expectStock(b, 10)

		// Rejected: a and b are held, then c is short and they are given back.
		bad := fmt.Sprintf("bad-%d", n)
		publish(t, r.svc, events.OrderCreatedTopic, events.OrderCreated{OrderID: bad, Items: []events.Line{{SKU: a, Qty: 2}, {SKU: b, Qty: 2}, {SKU: c, Qty: 11}}}, bad)
		r.waitState(bad, stateRejected)
		testenv.WaitConsumerIdle(t, r.svc.Conn().JS, events.OrdersStream.Name, Durable, 10*time.Second)
		r.expectStock(a, 10)
		r.expectStock(b, 10)
		r.expectStock(c, 10)

		if t.Failed() {
			t.Fatalf("run %d (crash after write %d: %v) broke the invariant", n, n, crashes)
		}
		if !crashes && n == 20 {
			return
		}
		if crashes && !r.crashed.Load() {
			t.Logf("covered a crash after each of the %d writes of the scenario", n-1)
			return
		}
	}
}

func publish[T any](t *testing.T, svc *framework.Service, topic *framework.Topic[T], ev T, key string) {
	t.Helper()
	if _, err := topic.Publish(context.Background(), svc, ev, framework.WithKey(key)); err != nil {
		t.Fatal(err)
	}
}
