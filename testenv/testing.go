package testenv

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv/embedded"
)

// Start runs an embedded server for the test and shuts it down at cleanup.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := embedded.Run(o)
	if err != nil {
		t.Fatalf("testenv.Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Eventually polls cond until it returns true or timeout passes, then
// fails the test with what. It never sleeps longer than 10ms at a time, so
// it returns soon after the condition holds.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := WaitFor(context.Background(), timeout, cond); err != nil {
		t.Fatalf("timed out after %s waiting until %s", timeout, what)
	}
}

// WaitFor polls cond until it holds, ctx ends or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	return embedded.WaitFor(ctx, timeout, cond)
}

// WaitConsumerIdle waits until the consumer has nothing pending, nothing
// awaiting an ack, and has been delivered every message matching its
// filters that the stream held when the wait began, or fails the test
// after timeout. The last condition matters right after a publish: the
// server counts a stored message as pending a moment after it acks the
// publish, so pending and ack-pending alone can read 0 before the
// consumer has seen it. On a partitioned stream (StreamSpec.Partitions),
// consumer may name a Partitioned subscription's durable: then every
// partition's consumer must be idle.
func WaitConsumerIdle(t testing.TB, js jetstream.JetStream, stream, consumer string, timeout time.Duration) {
	t.Helper()
	var last string
	var target uint64 // the stream's last sequence when the wait began
	err := WaitFor(context.Background(), timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			last = err.Error()
			return false
		}
		if target == 0 {
			target = st.CachedInfo().State.LastSeq
		}
		consumers, err := idleCandidates(ctx, st, consumer)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, c := range consumers {
			info := c.CachedInfo()
			last = fmt.Sprintf("%s: pending=%d ack_pending=%d redelivered=%d delivered up to %d of %d", info.Name, info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered.Stream, target)
			if info.NumPending != 0 || info.NumAckPending != 0 || !deliveredUpTo(ctx, st, info, target) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("consumer %s/%s not idle after %s: %s", stream, consumer, timeout, last)
	}
}

// idleCandidates returns the consumer named name, or, when there is none
// and the stream is partitioned, the consumers of a Partitioned group's
// partitions (name-p0, name-p1, ...).
func idleCandidates(ctx context.Context, st jetstream.Stream, name string) ([]jetstream.Consumer, error) {
	c, err := st.Consumer(ctx, name)
	n, _ := strconv.Atoi(st.CachedInfo().Config.Metadata[wire.StreamPartitionsMetadata])
	if err == nil || !errors.Is(err, jetstream.ErrConsumerNotFound) || n == 0 {
		return []jetstream.Consumer{c}, err
	}
	out := make([]jetstream.Consumer, 0, n)
	for p := range n {
		pc, err := st.Consumer(ctx, wire.PartitionConsumer(name, p))
		if err != nil {
			return nil, fmt.Errorf("partition %d of %s: %w", p, name, err)
		}
		out = append(out, pc)
	}
	return out, nil
}

// deliveredUpTo reports whether no message matching the consumer's
// filters lies after its delivered position and at or before seq.
func deliveredUpTo(ctx context.Context, st jetstream.Stream, info *jetstream.ConsumerInfo, seq uint64) bool {
	if info.Delivered.Stream >= seq {
		return true
	}
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = append(filters, info.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	for _, f := range filters {
		m, err := st.GetMsg(ctx, info.Delivered.Stream+1, jetstream.WithGetMsgSubject(f))
		if err == nil && m.Sequence <= seq {
			return false // a matching message not delivered yet
		}
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false
		}
	}
	return true
}

// StartCluster runs an embedded JetStream cluster of size nodes for the
// test (stores under t.TempDir()) and shuts it down at cleanup. It returns
// once the meta leader is elected.
//
//	cl := testenv.StartCluster(t, 3)
//	svc, _ := framework.New(ctx, cl.Config("order")) // streams get 3 replicas
//	leader, _ := cl.WaitStreamLeader(30*time.Second, "ORDERS")
//	cl.Kill(leader)
func StartCluster(t testing.TB, size int, opts ...ClusterOptions) *Cluster {
	t.Helper()
	var o ClusterOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Size = size
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	c, err := embedded.RunCluster(o)
	if err != nil {
		t.Fatalf("testenv.StartCluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	return c
}
