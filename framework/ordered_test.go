package framework_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type keyedEvent struct {
	Key   string `json:"key"`
	Index int    `json:"index"`
}

var keyedEvents = framework.MustNewTopic[keyedEvent]("orders.step.v1", framework.Keyed())

// orderChecker checks that each key's events are handled in stream order,
// one at a time, with none skipped unless it was dead-lettered: a handler
// call for (key, i) must come when every earlier event of the key is
// settled, and no call of the key may be running.
type orderChecker struct {
	mu       sync.Mutex
	next     map[string]int  // the key's lowest unsettled index
	running  map[string]bool // a handler of the key is running
	done     int             // settled: succeeded or dead-lettered
	problems []string
	history  map[string][]string
}

func newOrderChecker() *orderChecker {
	return &orderChecker{next: map[string]int{}, running: map[string]bool{}, history: map[string][]string{}}
}

func (c *orderChecker) note(key, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.history[key] = append(c.history[key], what)
}

func (c *orderChecker) start(ev keyedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[ev.Key] {
		c.problem("key %s: event %d started while another of the key was running", ev.Key, ev.Index)
	}
	c.running[ev.Key] = true
	if want := c.next[ev.Key]; ev.Index != want {
		c.problem("key %s: event %d handled while %d is the next in order", ev.Key, ev.Index, want)
	}
}

// end records the end of a handler call; settled says the event will not
// be seen again (it succeeded, or failed permanently).
func (c *orderChecker) end(ev keyedEvent, settled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running[ev.Key] = false
	if settled && ev.Index == c.next[ev.Key] {
		c.next[ev.Key]++
		c.done++
	}
}

func (c *orderChecker) problem(format string, args ...any) {
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

func (c *orderChecker) settled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

func (c *orderChecker) check(t *testing.T, keys, perKey int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		t.Error(p)
	}
	for k := range keys {
		if got := c.next["k"+strconv.Itoa(k)]; got != perKey {
			t.Errorf("key k%d: %d of %d events settled", k, got, perKey)
		}
	}
}

func hashOf(key string, i int) uint32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", key, i)
	return h.Sum32()
}

// publishKeyed publishes perKey events for each of keys keys, interleaved
// (k0/0, k1/0, ..., k0/1, ...), and waits for their acks.
func publishKeyed(t *testing.T, svc *framework.Service, keys, perKey int) {
	t.Helper()
	for i := range perKey {
		for k := range keys {
			key := "k" + strconv.Itoa(k)
			if _, err := keyedEvents.PublishAsync(context.Background(), svc, keyedEvent{Key: key, Index: i}, framework.WithKey(key)); err != nil {
				t.Fatalf("publish %s/%d: %v", key, i, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := svc.Conn().FlushAsync(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// 1,000 keys × 20 events at Concurrency(16), 10% of first deliveries
// failing and a few events failing for good: each key's events run one at
// a time in stream order, a dead-lettered event lets its key go on, and
// the counts reconcile.
func TestOrderedByKeyKeepsEachKeysOrderThroughFailures(t *testing.T) {
	const keys, perKey = 1000, 20
	srv := testenv.Start(t)
	svc := newService(t, srv, "ordered")
	check := newOrderChecker()
	sub, err := framework.Subscribe(t.Context(), svc, keyedEvents, "ordered", func(ctx context.Context, ev keyedEvent, m *framework.Message) error {
		check.start(ev)
		switch {
		case ev.Index == 7 && keyNum(ev.Key)%100 == 0:
			check.end(ev, true)
			return framework.Permanent(errors.New("refused for good"))
		case m.NumDelivered == 1 && hashOf(ev.Key, ev.Index)%10 == 0:
			check.end(ev, false)
			return errors.New("first delivery fails")
		}
		check.end(ev, true)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 16, OrderedByKey: true})
	if err != nil {
		t.Fatal(err)
	}
	publishKeyed(t, svc, keys, perKey)
	if err := testenv.WaitFor(context.Background(), 120*time.Second, func() bool { return check.settled() == keys*perKey }); err != nil {
		t.Fatalf("%d of %d events settled; stats %+v; problems %v", check.settled(), keys*perKey, sub.Stats(), check.problems)
	}
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "ordered", 30*time.Second)
	check.check(t, keys, perKey)
	st := sub.Stats()
	const wantDead = (keys + 99) / 100 // event 7 of every hundredth key
	if st.Acked+st.DeadLettered != keys*perKey || st.DeadLettered != uint64(wantDead) {
		t.Fatalf("acked %d + dead-lettered %d, want %d in all with %d dead-lettered (stats %+v)", st.Acked, st.DeadLettered, keys*perKey, wantDead, st)
	}
	if st.Retried == 0 {
		t.Fatal("no failure was retried: the test did not exercise retries")
	}
}

func keyNum(key string) int {
	n, _ := strconv.Atoi(key[1:])
	return n
}

// A shutdown in the middle hands back what the instance held, key by key
// in order, and the next owner of the durable goes on in order: no event
// of a key runs before an earlier one, none is lost. Sync acks.
func TestOrderedByKeyHandBackKeepsOrderForTheNextOwner(t *testing.T) {
	const keys, perKey = 20, 40
	srv := testenv.Start(t)
	check := newOrderChecker()
	handler := func(ctx context.Context, ev keyedEvent, m *framework.Message) error {
		check.note(ev.Key, fmt.Sprintf("%d/d%d/seq%d/%s", ev.Index, m.NumDelivered, m.StreamSeq, m.Consumer))
		check.start(ev)
		if hashOf(ev.Key, ev.Index)%7 == 0 && m.NumDelivered == 1 {
			check.end(ev, false)
			return errors.New("first delivery fails")
		}
		select { // work that takes a moment, so that shutdown finds work in flight
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			check.end(ev, false)
			return ctx.Err()
		}
		check.end(ev, true)
		return nil
	}
	opts := &framework.SubscribeOptions{Concurrency: 4, OrderedByKey: true, AckMode: framework.AckModeSync}
	first := newService(t, srv, "first")
	if _, err := framework.Subscribe(t.Context(), first, keyedEvents, "owner", handler, opts); err != nil {
		t.Fatal(err)
	}
	publishKeyed(t, first, keys, perKey)
	testenv.Eventually(t, 30*time.Second, "a quarter handled", func() bool { return check.settled() >= keys*perKey/4 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = first.Shutdown(ctx)
	if n := check.settled(); n == keys*perKey {
		t.Fatal("everything was handled before the shutdown; nothing was handed back")
	}

	second := newService(t, srv, "second")
	if _, err := framework.Subscribe(t.Context(), second, keyedEvents, "owner", handler, opts); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitFor(context.Background(), 60*time.Second, func() bool { return check.settled() == keys*perKey }); err != nil {
		for k, h := range check.history {
			if check.next[k] != perKey {
				t.Logf("%s: %v", k, h)
			}
		}
		t.Fatalf("%d of %d events settled; problems %v", check.settled(), keys*perKey, check.problems)
	}
	testenv.WaitConsumerIdle(t, second.Conn().JS, "ORDERS", "owner", 30*time.Second)
	check.check(t, keys, perKey)
}

// A key whose event keeps failing holds only itself: the other keys'
// events are all handled while it is still being retried, and it ends
// dead-lettered, after which its next event runs.
func TestOrderedByKeyFailingKeyDoesNotHoldOthers(t *testing.T) {
	const keys, perKey = 50, 10
	srv := testenv.Start(t)
	svc := newService(t, srv, "stuck", func(c *framework.Config) {
		c.MaxDeliver = 4
		c.RetryInitial = 300 * time.Millisecond
		c.RetryMax = 300 * time.Millisecond
	})
	check := newOrderChecker()
	var mu sync.Mutex
	var othersDoneAt, stuckDeadAt time.Time
	sub, err := framework.Subscribe(t.Context(), svc, keyedEvents, "stuck", func(ctx context.Context, ev keyedEvent, m *framework.Message) error {
		check.start(ev)
		if ev.Key == "k0" && ev.Index == 0 {
			if m.NumDelivered >= 4 {
				mu.Lock()
				stuckDeadAt = time.Now()
				mu.Unlock()
			}
			check.end(ev, m.NumDelivered >= 4) // the last delivery's failure dead-letters it
			return errors.New("k0's first event always fails")
		}
		check.end(ev, true)
		if check.settled() == (keys-1)*perKey { // every other key, and k0's dead letter not yet
			mu.Lock()
			if othersDoneAt.IsZero() {
				othersDoneAt = time.Now()
			}
			mu.Unlock()
		}
		return nil
	}, &framework.SubscribeOptions{Concurrency: 8, OrderedByKey: true})
	if err != nil {
		t.Fatal(err)
	}
	publishKeyed(t, svc, keys, perKey)
	if err := testenv.WaitFor(context.Background(), 60*time.Second, func() bool { return check.settled() == keys*perKey }); err != nil {
		t.Fatalf("%d of %d events settled; problems %v", check.settled(), keys*perKey, check.problems)
	}
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "stuck", 30*time.Second)
	check.check(t, keys, perKey)
	if st := sub.Stats(); st.DeadLettered != 1 || st.Acked != keys*perKey-1 || st.Retried != 3 {
		t.Fatalf("stats %+v: want 1 dead-lettered after 3 retries, the rest acked", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if othersDoneAt.IsZero() || !othersDoneAt.Before(stuckDeadAt) {
		t.Fatalf("the other keys finished at %v, k0's event was dead-lettered at %v: the failing key held the others", othersDoneAt, stuckDeadAt)
	}
}

// A hot key with more messages than a key may hold does not hold the
// others: its excess is parked with the server and rejoins the key in
// order, while the other keys' events all finish before it does.
func TestOrderedByKeyHotKeyDoesNotHoldOthers(t *testing.T) {
	const hotEvents, coldKeys, coldEvents = 1200, 20, 30
	srv := testenv.Start(t)
	svc := newService(t, srv, "hot")
	check := newOrderChecker()
	var mu sync.Mutex
	var coldDone, hotDone int
	var coldDoneAt, hotDoneAt time.Time
	sub, err := framework.Subscribe(t.Context(), svc, keyedEvents, "hot", func(ctx context.Context, ev keyedEvent, m *framework.Message) error {
		check.start(ev)
		if ev.Key == "hot" {
			time.Sleep(time.Millisecond) // the hot key's handler takes a moment
		}
		check.end(ev, true)
		mu.Lock()
		defer mu.Unlock()
		if ev.Key == "hot" {
			if hotDone++; hotDone == hotEvents {
				hotDoneAt = time.Now()
			}
		} else if coldDone++; coldDone == coldKeys*coldEvents {
			coldDoneAt = time.Now()
		}
		return nil
	}, &framework.SubscribeOptions{Concurrency: 8, OrderedByKey: true})
	if err != nil {
		t.Fatal(err)
	}
	// The hot key's events first, then the others: they are behind it in
	// the stream.
	for i := range hotEvents {
		if _, err := keyedEvents.PublishAsync(context.Background(), svc, keyedEvent{Key: "hot", Index: i}, framework.WithKey("hot")); err != nil {
			t.Fatal(err)
		}
	}
	publishKeyed(t, svc, coldKeys, coldEvents)
	total := hotEvents + coldKeys*coldEvents
	if err := testenv.WaitFor(context.Background(), 60*time.Second, func() bool { return check.settled() == total }); err != nil {
		t.Fatalf("%d of %d events settled; stats %+v; problems %v", check.settled(), total, sub.Stats(), check.problems)
	}
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "hot", 30*time.Second)
	check.check(t, coldKeys, coldEvents)
	if n := check.next["hot"]; n != hotEvents {
		t.Errorf("hot key: %d of %d events settled in order", n, hotEvents)
	}
	st := sub.Stats()
	if st.Acked != uint64(total) || st.DeadLettered != 0 {
		t.Fatalf("stats %+v: want all %d acked", st, total)
	}
	if st.Parked == 0 {
		t.Fatal("nothing was parked: the hot key never filled")
	}
	mu.Lock()
	defer mu.Unlock()
	if !coldDoneAt.Before(hotDoneAt) {
		t.Fatalf("the other keys finished at %v, after the hot key (%v): the hot key held them", coldDoneAt, hotDoneAt)
	}
	t.Logf("parked %d times; the other keys finished %v before the hot key", st.Parked, hotDoneAt.Sub(coldDoneAt).Round(time.Millisecond))
}
