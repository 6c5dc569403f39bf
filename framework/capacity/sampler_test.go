package capacity

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// TestSamplerCountsExactly drives a consumer by hand (no framework
// subscription) so every count is known: arrivals, processed, the oldest
// unprocessed message, and STOP when nobody pulls.
func TestSamplerCountsExactly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testenv.Start(t)
	conn, err := framework.Connect(ctx, srv.Config("sampler-test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js := conn.JS
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXACT", Subjects: []string{"exact.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for i := range n {
			if _, err := js.Publish(ctx, "exact.a", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := NewSampler(js, "EXACT", "reader", Interval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// The server updates a consumer's pending count just after it stores a
	// message, not with the PubAck: wait for it before sampling.
	waitPending := func(n uint64) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("consumer shows %d pending", n), func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.NumPending == n
		})
	}
	publish(50)
	waitPending(50)
	first, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := mustSample(t, s)
	publish(100)
	waitPending(150)
	b := mustSample(t, s)
	if a.Filtered || b.Filtered {
		t.Fatalf("unfiltered consumer reported as filtered")
	}
	if n, _, _ := arrivals(a, b); n != 100 {
		t.Fatalf("arrivals between samples = %v, want 100", n)
	}
	if b.Backlog() != 150 || b.OldestSeq != 1 || !b.OldestTime.Equal(first.Time) {
		t.Fatalf("backlog %v oldest seq %d at %s; want 150, seq 1 at %s", b.Backlog(), b.OldestSeq, b.OldestTime, first.Time)
	}
	// Take 10, ack 10: nothing arrived, 10 processed.
	batch, err := cons.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 10 {
		t.Fatalf("fetched %d, want 10", got)
	}
	c := mustSample(t, s)
	if n, first, _ := arrivals(b, c); n != 0 || first != 10 {
		t.Fatalf("after acking 10: arrivals %v first deliveries %v; want 0, 10", n, first)
	}
	if c.OldestSeq != 11 {
		t.Fatalf("oldest unprocessed seq %d, want 11", c.OldestSeq)
	}
	_, processed := rates([]Sample{b, c})
	if want := 10 / c.At.Sub(b.At).Seconds(); processed.PerSecond < want*0.999 || processed.PerSecond > want*1.001 {
		t.Fatalf("processed rate %v, want %v", processed.PerSecond, want)
	}
	// Nobody pulls from now on: STOP once the status window holds no progress.
	for range 4 {
		publish(5)
		mustSample(t, s)
	}
	est, err := NewEstimator(Params{StatusSamples: 4}).Estimate("EXACT", "reader", s.Samples())
	if err != nil {
		t.Fatal(err)
	}
	if est.Status != StatusStop {
		t.Fatalf("status %s (%s), want STOP", est.Status, est.StatusReason)
	}
	if est.TimeLagSource != "read" || est.TimeLag <= 0 {
		t.Fatalf("time lag %v from %q, want a read positive lag", est.TimeLag, est.TimeLagSource)
	}
}

func mustSample(t *testing.T, s *Sampler) Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	smp, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return smp
}
