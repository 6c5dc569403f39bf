package faults_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// TestKillConsumerInstanceMidBatch crashes one member of the consumer
// group while it holds a batch: its handlers are mid-work and more
// messages sit in its prefetch buffer. Its connection closes without a
// single ack, and after AckWait the server redelivers all of it to the
// surviving instances.
func TestKillConsumerInstanceMidBatch(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	w := newWorld(t)
	config := func(name string) framework.Config {
		cfg := faultConfig(cl.Config(name))
		cfg.AckWait = 2 * time.Second // the consumer's; every instance declares the same
		return cfg
	}
	pub := w.service(config("publisher"))
	victim := w.service(config("victim"))

	held := make(chan string, 64)
	release := make(chan struct{})
	_, err := framework.Subscribe(t.Context(), victim, jobTopic, durable, func(ctx context.Context, ev job, m *framework.Message) error {
		held <- m.Envelope.ID
		<-release // mid-work when the process dies: the effect never happens
		return errors.New("crashed")
	}, &framework.SubscribeOptions{Concurrency: 4, Prefetch: 16})
	if err != nil {
		t.Fatal(err)
	}
	wait := w.publishers(pub, publishers, perPublisher, pace)

	// The victim takes a batch before anyone else is there to take it.
	var inHand []string
	for len(inHand) < 4 {
		select {
		case id := <-held:
			inHand = append(inHand, id)
		case <-time.After(settleTimeout):
			t.Fatalf("victim holds %d messages after %s, want 4", len(inHand), settleTimeout)
		}
	}
	for range 2 {
		w.worker(w.service(config("survivor")), "")
	}
	testenv.Eventually(t, settleTimeout, "survivors are working", func() bool { return w.processed.Load() >= 50 })

	victim.Conn().Close() // the crash: no ack, no nak, no drain
	close(release)
	wait()
	w.reconcile(pub.Conn().JS, total)

	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range inHand {
		if len(w.effects[id]) != 1 || w.maxNum[id] < 2 {
			t.Errorf("event %s held by the crashed instance: took effect from %d messages, delivery %d; want once, redelivered", id, len(w.effects[id]), w.maxNum[id])
		}
	}
}

// TestRestartSingleNodeUnderLoad restarts the only server, file storage on
// the same directory and port, while publishers and workers run: they
// reconnect, unconfirmed publishes are resent, and nothing stored is lost.
func TestRestartSingleNodeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	srv, err := testenv.Run(testenv.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	current := srv
	t.Cleanup(func() { mu.Lock(); defer mu.Unlock(); current.Shutdown() })
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}

	w := newWorld(t)
	pub := w.service(faultConfig(srv.Config("publisher")))
	for range 2 {
		w.worker(w.service(faultConfig(srv.Config("worker"))), "")
	}
	wait := w.publishers(pub, publishers, perPublisher, pace)
	waitPublished(t, w, total/3)

	srv.Shutdown()
	restarted, err := testenv.Run(testenv.Options{Port: port, StoreDir: dir})
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	mu.Lock()
	current = restarted
	mu.Unlock()

	wait()
	w.reconcile(pub.Conn().JS, total)
}
