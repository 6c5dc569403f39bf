package testenv_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// A crashed stream leader hands nothing over: for a second after Crash no
// survivor leads the stream (Kill's step-down makes one leader within
// milliseconds); one is elected after the election timeout, the stream keeps
// every message, and the crashed node restarts and catches up.
func TestCrashedLeaderHandsNothingOver(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	ctx := context.Background()
	svc, err := framework.New(ctx, cl.Config("crashtest"), framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "PINGS", Subjects: []string{"pings.>"}}); err != nil {
		t.Fatal(err)
	}
	leader, err := cl.WaitStreamLeader(30*time.Second, "PINGS")
	if err != nil {
		t.Fatal(err)
	}
	topic := framework.MustNewTopic[ping]("pings.sent.v1")
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			_, err := topic.Publish(pctx, svc, ping{N: i}, framework.WithEventID(fmt.Sprintf("ping-%d", i)))
			cancel()
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	publish(0, 20)

	cl.Crash(leader)
	if cl.Running(leader) {
		t.Fatalf("node %d still running after Crash", leader)
	}
	// Kill's step-down elects a new leader within milliseconds; after a
	// crash the survivors wait out the election timeout (seconds).
	if err := testenv.WaitFor(ctx, time.Second, func() bool { return cl.StreamLeader("PINGS") >= 0 }); err == nil {
		t.Fatalf("node %d leads the stream within a second of the leader's crash: leadership was handed over, as on a graceful shutdown", cl.StreamLeader("PINGS"))
	}
	cl.Crash(leader) // crashing twice is harmless
	start := time.Now()
	next, err := cl.WaitStreamLeader(60*time.Second, "PINGS")
	if err != nil || next == leader {
		t.Fatalf("no new leader after the crash (%d, %v)", next, err)
	}
	t.Logf("new stream leader elected %s after the crash", time.Since(start).Round(time.Millisecond))
	publish(20, 40)
	if err := cl.Restart(leader); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the crashed replica, restarted, holds 40 messages", func() bool {
		ns := cl.Server(leader)
		if ns == nil {
			return false
		}
		d, ok := testenv.StreamDetail(ns, "PINGS")
		return ok && d.State.Msgs == 40
	})
}
