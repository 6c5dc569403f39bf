package telemetry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

// collect reads every metric point into name -> points.
func (r *rig) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.String() != v {
			return false
		}
	}
	return true
}

// value sums the points of an int counter, up-down counter or gauge whose
// attributes include want; histograms give their count.
func value(data map[string]metricdata.Aggregation, name string, want map[string]string) int64 {
	var total int64
	switch d := data[name].(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				total += p.Value
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				total += p.Value
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				total += int64(p.Count)
			}
		}
	}
	return total
}

func TestMetricsForSuccessRetryAndDeadLetter(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	attempts := map[string]int{}
	sub, err := framework.Subscribe(t.Context(), r.svc, orderTopic, "inventory", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		mu.Lock()
		attempts[ev.ID]++
		n := attempts[ev.ID]
		mu.Unlock()
		switch {
		case ev.ID == "poison":
			return framework.Permanent(errors.New("bad order"))
		case ev.ID == "flaky" && n == 1:
			return errors.New("try again")
		}
		time.Sleep(2 * time.Millisecond) // some work, so durations are above the first bucket
		return nil
	}, &framework.SubscribeOptions{Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"ok", "flaky", "poison"} {
		if _, err := orderTopic.Publish(ctx, r.svc, orderCreated{ID: id, Qty: 1}, framework.WithKey(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Failures: a key that is not a valid token, and a subject no stream stores.
	if _, err := orderTopic.Publish(ctx, r.svc, orderCreated{ID: "x"}, framework.WithKey("a.b")); err == nil {
		t.Fatal("publish with key a.b should fail")
	}
	lost := framework.MustNewTopic[orderCreated]("nowhere.created.v1")
	if _, err := lost.Publish(ctx, r.svc, orderCreated{ID: "x"}, framework.WithPublishRetry(framework.PublishRetry{Attempts: 1})); err == nil {
		t.Fatal("publish to a subject without a stream should fail")
	}

	testenv.Eventually(t, 15*time.Second, "3 messages settled", func() bool {
		st := sub.Stats()
		return st.Acked+st.DeadLettered == 3 && st.Retried == 1
	})
	testenv.WaitConsumerIdle(t, r.svc.Conn().JS, "ORDERS", "inventory", 15*time.Second)

	labels := map[string]string{
		"messaging.system": "nats", "messaging.destination.name": "orders.created.v1",
		"messaging.consumer.group.name": "inventory", "jetkit.stream": "ORDERS",
	}
	want := map[string]int64{
		telemetry.MetricConsumed: 4, telemetry.MetricProcessed: 2, telemetry.MetricFailed: 2,
		telemetry.MetricRetried: 1, telemetry.MetricDeadLettered: 1, telemetry.MetricRedelivered: 1,
		telemetry.MetricHandedBack: 0, telemetry.MetricAckFailed: 0, telemetry.MetricProcessTime: 4,
		telemetry.MetricInFlight: 0, telemetry.MetricConcurrency: 3,
	}
	// The observer's end runs just after the stats move: wait until every
	// measurement is in, then report what differs.
	var data map[string]metricdata.Aggregation
	allIn := func() bool {
		data = r.collect(t)
		for name, w := range want {
			if value(data, name, labels) != w {
				return false
			}
		}
		return true
	}
	if err := testenv.WaitFor(context.Background(), 10*time.Second, allIn); err != nil {
		for name, w := range want {
			if got := value(data, name, labels); got != w {
				t.Errorf("%s = %d, want %d", name, got, w)
			}
		}
	}
	// Reconcile: published = processed + dead-lettered.
	if p, d := value(data, telemetry.MetricProcessed, labels), value(data, telemetry.MetricDeadLettered, labels); p+d != 3 {
		t.Errorf("processed %d + dead-lettered %d != 3 published", p, d)
	}

	hist := data[telemetry.MetricProcessTime].(metricdata.Histogram[float64])
	if len(hist.DataPoints) != 1 {
		t.Fatalf("want one process-duration series (bounded labels), got %d", len(hist.DataPoints))
	}
	hp := hist.DataPoints[0]
	if len(hp.Bounds) != len(telemetry.DurationBuckets) || hp.Bounds[0] != 0.0001 || hp.Bounds[len(hp.Bounds)-1] != 30 {
		t.Errorf("histogram bounds %v, want 100µs..30s", hp.Bounds)
	}
	if hp.Sum < 0.004 { // two successes slept 2ms each
		t.Errorf("histogram sum %.6fs, want at least the handlers' sleeps", hp.Sum)
	}
	// Keys never become labels: one series per metric.
	for _, name := range []string{telemetry.MetricConsumed, telemetry.MetricProcessed} {
		if n := len(data[name].(metricdata.Sum[int64]).DataPoints); n != 1 {
			t.Errorf("%s has %d series, want 1", name, n)
		}
	}

	pub := map[string]string{"messaging.destination.name": "orders.created.v1", "messaging.operation.name": "publish"}
	if got := value(data, telemetry.MetricPublished, pub); got != 3 {
		t.Errorf("%s = %d, want 3", telemetry.MetricPublished, got)
	}
	if got := value(data, telemetry.MetricPublishTime, pub); got != 4 {
		t.Errorf("%s count = %d, want 4 (3 stored + 1 invalid key)", telemetry.MetricPublishTime, got)
	}
	if got := value(data, telemetry.MetricPublishFailed, map[string]string{"messaging.destination.name": "orders.created.v1", "error.type": "invalid_subject"}); got != 1 {
		t.Errorf("%s{invalid_subject} = %d, want 1", telemetry.MetricPublishFailed, got)
	}
	if got := value(data, telemetry.MetricPublishFailed, map[string]string{"messaging.destination.name": "nowhere.created.v1"}); got != 1 {
		t.Errorf("%s{nowhere} = %d, want 1", telemetry.MetricPublishFailed, got)
	}
}

// A handler that runs past MaxHandlerTime is counted as timed out and as
// overrunning AckWait (and as failed, then retried); its retry succeeds.
func TestMetricsCountHandlersPastMaxHandlerTime(t *testing.T) {
	r := newRig(t)
	var once sync.Once
	sub, err := framework.Subscribe(t.Context(), r.svc, orderTopic, "slow", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		stuck := false
		once.Do(func() { stuck = true })
		if stuck {
			<-ctx.Done() // honours its context once it is cancelled at the limit
			return ctx.Err()
		}
		return nil
	}, &framework.SubscribeOptions{AckWait: 200 * time.Millisecond, MaxHandlerTime: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orderTopic.Publish(context.Background(), r.svc, orderCreated{ID: "slow", Qty: 1}, framework.WithKey("slow")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the message acked on its retry", func() bool { return sub.Stats().Acked == 1 })
	labels := map[string]string{"messaging.consumer.group.name": "slow"}
	testenv.Eventually(t, 5*time.Second, "one timed-out delivery measured", func() bool {
		data := r.collect(t)
		return value(data, telemetry.MetricTimedOut, labels) == 1 && value(data, telemetry.MetricOverran, labels) == 1 && value(data, telemetry.MetricRetried, labels) == 1 &&
			value(data, telemetry.MetricProcessed, labels) == 1
	})
	if st := sub.Stats(); st.Overran != 1 || st.Abandoned != 0 || st.Retried != 1 {
		t.Fatalf("stats %+v: want one overrun, nothing abandoned, one retry", st)
	}
}
