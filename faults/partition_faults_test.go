package faults_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// step is one event of a keyed sequence: the Index-th event of Key.
type step struct {
	Key   string `json:"key"`
	Index int    `json:"index"`
}

const shopPartitions = 4

var (
	shopsStream = framework.StreamSpec{Name: "SHOPS", Subjects: []string{"shops.>"}, Partitions: shopPartitions}
	shopStep    = framework.MustNewTopic[step]("shops.step.v1", framework.Keyed())
)

// keyLedger checks per-key order across instances: a key's events take
// effect one at a time, in index order, each once. A redelivery of an
// event that already took effect (its ack lost with the crashed node) is
// skipped, as a service's idempotent write would; an event handled ahead
// of an earlier one of its key, or while another of its key runs, is a
// violation.
type keyLedger struct {
	mu       sync.Mutex
	next     map[string]int
	running  map[string]bool
	done     int
	dups     int
	problems []string
}

func newKeyLedger() *keyLedger {
	return &keyLedger{next: map[string]int{}, running: map[string]bool{}}
}

// begin reports whether ev is to take effect now (false: a duplicate).
func (l *keyLedger) begin(ev step) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch next := l.next[ev.Key]; {
	case ev.Index < next:
		l.dups++
		return false
	case ev.Index > next && len(l.problems) < 20:
		l.problems = append(l.problems, fmt.Sprintf("key %s: event %d handled while %d is the next in order", ev.Key, ev.Index, next))
	}
	if l.running[ev.Key] && len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf("key %s: event %d started while another of the key was running", ev.Key, ev.Index))
	}
	l.running[ev.Key] = true
	return true
}

func (l *keyLedger) end(ev step) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[ev.Key] = false
	if ev.Index == l.next[ev.Key] {
		l.next[ev.Key]++
		l.done++
	}
}

func (l *keyLedger) settled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

// TestPartitionedConsumptionSurvivesStreamLeaderCrash runs a partitioned
// consumer group of two instances over a stream replicated on a 3-node
// cluster and crashes the node leading the stream mid-consumption. Every
// key's events take effect in order, each once; nothing is lost or
// dead-lettered; every partition is owned again afterwards.
func TestPartitionedConsumptionSurvivesStreamLeaderCrash(t *testing.T) {
	const keys, perKey = 40, 25
	start := time.Now()
	cl := testenv.StartCluster(t, 3)
	w := newWorld(t)
	led := newKeyLedger()
	handler := func(ctx context.Context, ev step, m *framework.Message) error {
		if !led.begin(ev) {
			return nil
		}
		time.Sleep(2 * time.Millisecond) // simulated work
		led.end(ev)
		return nil
	}
	var subs []*framework.Subscription
	for range 2 {
		svc := w.service(faultConfig(cl.Config("shopper"))) // two instances of one service
		if _, err := svc.EnsureStream(t.Context(), shopsStream); err != nil {
			t.Fatalf("EnsureStream: %v", err)
		}
		sub, err := framework.Subscribe(t.Context(), svc, shopStep, "shoppers", handler,
			&framework.SubscribeOptions{Partitioned: true, Concurrency: 4, AckMode: framework.AckModeSync})
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		subs = append(subs, sub)
	}
	owned := func() int { return len(subs[0].Partitions()) + len(subs[1].Partitions()) }
	testenv.Eventually(t, settleTimeout, "the two instances own every partition", func() bool {
		return owned() == shopPartitions && len(subs[0].Partitions()) > 0 && len(subs[1].Partitions()) > 0
	})
	pub := w.service(faultConfig(cl.Config("shop-publisher")))
	if _, err := pub.EnsureStream(t.Context(), shopsStream); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	t.Logf("%s setup", time.Since(start).Round(time.Millisecond))

	// Publish in the background, key by key interleaved, each event with a
	// fixed id so that a resend after the crash is de-duplicated.
	var pubErr error
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range perKey {
			for k := range keys {
				key := "k" + strconv.Itoa(k)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				_, err := shopStep.Publish(ctx, pub, step{Key: key, Index: i}, framework.WithKey(key), framework.WithEventID(fmt.Sprintf("%s-%d", key, i)))
				cancel()
				if err != nil {
					pubErr = fmt.Errorf("publish %s/%d: %w", key, i, err)
					return
				}
			}
		}
	}()
	testenv.Eventually(t, settleTimeout, "a third handled", func() bool { return led.settled() >= keys*perKey/3 })
	leader := cl.StreamLeader(shopsStream.Name)
	cl.Crash(leader)
	crashed := time.Now()
	t.Logf("%s crashed the stream leader, node %d (settled %d)", time.Since(start).Round(time.Millisecond), leader, led.settled())
	if _, err := cl.WaitStreamLeader(settleTimeout, shopsStream.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-published:
	case <-time.After(3 * settleTimeout):
		t.Fatal("publisher still running")
	}
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	if err := testenv.WaitFor(context.Background(), 2*settleTimeout, func() bool { return led.settled() == keys*perKey }); err != nil {
		diagnoseShops(t, pub, led)
		t.Fatalf("%d of %d events took effect; problems %v", led.settled(), keys*perKey, led.problems)
	}
	t.Logf("all %d events took effect %v after the crash; %d duplicate deliveries skipped", keys*perKey, time.Since(crashed).Round(time.Millisecond), led.dups)

	led.mu.Lock()
	for _, p := range led.problems {
		t.Error(p)
	}
	for k := range keys {
		if n := led.next["k"+strconv.Itoa(k)]; n != perKey {
			t.Errorf("key k%d: %d of %d events took effect in order", k, n, perKey)
		}
	}
	led.mu.Unlock()
	if err := testenv.WaitFor(context.Background(), settleTimeout, func() bool { return owned() == shopPartitions }); err != nil {
		t.Errorf("the instances own %d of %d partitions after the crash", owned(), shopPartitions)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if stored := streamMsgs(t, ctx, pub.Conn().JS, shopsStream.Name); stored != keys*perKey {
		t.Errorf("SHOPS stores %d messages, want %d: a resend was not de-duplicated or a store was lost", stored, keys*perKey)
	}
	if dead := streamMsgs(t, ctx, pub.Conn().JS, "DEADLETTER"); dead != 0 {
		t.Errorf("%d events dead-lettered; healthy events must survive the crash", dead)
	}
}

// diagnoseShops logs, for each key whose events did not all take effect,
// what the stream stores of it, and each partition consumer's state.
func diagnoseShops(t *testing.T, pub *framework.Service, led *keyLedger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := pub.Conn().JS
	st, err := js.Stream(ctx, shopsStream.Name)
	if err != nil {
		t.Logf("diagnose: %v", err)
		return
	}
	info, _ := st.Info(ctx)
	t.Logf("diagnose: stream %+v", info.State)
	led.mu.Lock()
	defer led.mu.Unlock()
	for key, next := range led.next {
		if next == 25 {
			continue
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil || !strings.HasSuffix(m.Subject, "."+key) {
				continue
			}
			t.Logf("diagnose: %s next %d: seq %d subject %s id %s data %s", key, next, seq, m.Subject, m.Header.Get("Nats-Msg-Id"), m.Data)
		}
	}
	if dl, err := js.Stream(ctx, "DEADLETTER"); err == nil {
		if di, err := dl.Info(ctx); err == nil {
			t.Logf("diagnose: DEADLETTER holds %d", di.State.Msgs)
		}
	}
	for name := range st.ListConsumers(ctx).Info() {
		t.Logf("diagnose: consumer %s delivered %+v ack floor %+v pending %d ack pending %d redelivered %d", name.Name, name.Delivered, name.AckFloor, name.NumPending, name.NumAckPending, name.NumRedelivered)
	}
}
