package capacity

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type parcel struct {
	ID string `json:"id"`
}

// A partitioned consumer group is watched by its durable: the sampler
// sums its partitions' consumers, and the estimate knows the partition
// count (no more replicas than partitions).
func TestSamplerReadsAPartitionedGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := testenv.Start(t)
	svc := testenv.NewService(t, srv.Config("courier"))
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "PARCELS", Subjects: []string{"parcels.>"}, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	topic := framework.MustNewTopic[parcel]("parcels.sent.v1", framework.Keyed())
	gate := make(chan struct{})
	sub, err := framework.Subscribe(ctx, svc, topic, "courier", func(ctx context.Context, _ parcel, _ *framework.Message) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, &framework.SubscribeOptions{Partitioned: true, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "both partitions owned", func() bool { return len(sub.Partitions()) == 2 })

	s, err := NewSampler(svc.Conn().JS, "PARCELS", "courier", Local(sub))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		key := fmt.Sprintf("k%d", i%10)
		if _, err := topic.Publish(ctx, svc, parcel{ID: key}, framework.WithKey(key)); err != nil {
			t.Fatal(err)
		}
	}
	var smp Sample
	testenv.Eventually(t, 10*time.Second, "the group's backlog of 20", func() bool {
		smp = mustSample(t, s)
		return smp.Backlog() == n
	})
	if smp.Partitions != 2 || !smp.Filtered || smp.OldestSeq != 1 {
		t.Fatalf("sample %+v: want 2 partitions, filtered, oldest unprocessed sequence 1", smp)
	}
	if smp.Local == nil || smp.Local.Instances != 1 || smp.Local.Concurrency != 4 {
		t.Fatalf("local timing %+v: want one instance running 2 handlers in each of its 2 partitions", smp.Local)
	}

	close(gate)
	testenv.Eventually(t, 20*time.Second, "the group drained", func() bool {
		smp = mustSample(t, s)
		return smp.Backlog() == 0 && smp.AckFloor.Consumer == n
	})
	if smp.Delivered.Consumer != n || smp.OldestSeq != 0 {
		t.Fatalf("sample %+v: want %d deliveries summed over the partitions and nothing unprocessed", smp, n)
	}
	est, err := NewEstimator(Params{}).Estimate("PARCELS", "courier", s.Samples())
	if err != nil {
		t.Fatal(err)
	}
	if est.Partitions != 2 {
		t.Fatalf("estimate partitions %d, want 2 read from the stream", est.Partitions)
	}

	s2, err := NewSampler(svc.Conn().JS, "PARCELS", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Sample(ctx); err == nil {
		t.Fatal("sampling a group with no partition consumers succeeded")
	} else if want := "partition 0 has no consumer nobody-p0"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to say %q", err, want)
	}
}
