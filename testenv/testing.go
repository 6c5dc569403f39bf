package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// WaitConsumerIdle waits until the consumer has nothing pending and nothing
// awaiting an ack, or fails the test after timeout. Right after a publish
// the server may not count the message as pending yet, so a consumer can
// look idle before it has seen it: wait for an effect of the messages
// first (a state, a reply event), then for the consumer to be idle.
func WaitConsumerIdle(t testing.TB, js jetstream.JetStream, stream, consumer string, timeout time.Duration) {
	t.Helper()
	var last string
	err := WaitFor(context.Background(), timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			last = err.Error()
			return false
		}
		info, err := c.Info(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("pending=%d ack_pending=%d redelivered=%d", info.NumPending, info.NumAckPending, info.NumRedelivered)
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	if err != nil {
		t.Fatalf("consumer %s/%s not idle after %s: %s", stream, consumer, timeout, last)
	}
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
