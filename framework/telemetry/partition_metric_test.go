package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

// jetkit.partition.owned says which partitions of a consumer group this
// instance consumes: 1 for each while it owns them, 0 once it stopped.
func TestPartitionOwnedMetric(t *testing.T) {
	r := newRig(t)
	spec := framework.StreamSpec{Name: "PARCELS", Subjects: []string{"parcels.>"}, Partitions: 3}
	if _, err := r.svc.EnsureStream(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	topic := framework.MustNewTopic[orderCreated]("parcels.sent.v1", framework.Keyed())
	sub, err := framework.Subscribe(t.Context(), r.svc, topic, "courier",
		func(context.Context, orderCreated, *framework.Message) error { return nil }, &framework.SubscribeOptions{Partitioned: true})
	if err != nil {
		t.Fatal(err)
	}
	owned := func(p string) int64 {
		return value(r.collect(t), telemetry.MetricPartitionOwned, map[string]string{
			"messaging.consumer.group.name": "courier", string(telemetry.AttrPartition): p, string(telemetry.AttrStream): "PARCELS"})
	}
	testenv.Eventually(t, 30*time.Second, "every partition owned", func() bool { return len(sub.Partitions()) == 3 })
	for _, p := range []string{"0", "1", "2"} {
		if got := owned(p); got != 1 {
			t.Errorf("partition %s: %s = %d while owned, want 1", p, telemetry.MetricPartitionOwned, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub.Stop(ctx)
	for _, p := range []string{"0", "1", "2"} {
		if got := owned(p); got != 0 {
			t.Errorf("partition %s: %s = %d after Stop, want 0", p, telemetry.MetricPartitionOwned, got)
		}
	}
}
