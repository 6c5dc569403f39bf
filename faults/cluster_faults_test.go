package faults_test

import (
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

const (
	publishers   = 3
	perPublisher = 150
	total        = publishers * perPublisher
	pace         = 2 * time.Millisecond
)

// clusterWorld starts a 3-node cluster, one publishing service and three
// consumer instances sharing the durable consumer, all reaching every
// node, with the JOBS stream replicated 3 times.
func clusterWorld(t *testing.T, cl *testenv.Cluster) (w *world, pub *framework.Service) {
	t.Helper()
	w = newWorld(t)
	pub = w.service(faultConfig(cl.Config("publisher")))
	if _, err := cl.WaitStreamLeader(settleTimeout, jobsStream.Name); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.worker(w.service(faultConfig(cl.Config("worker"))), map[bool]framework.AckMode{
			true: framework.AckModeSync, false: framework.AckModeAsync,
		}[i%2 == 0])
	}
	if _, err := cl.WaitConsumerLeader(settleTimeout, jobsStream.Name, durable); err != nil {
		t.Fatal(err)
	}
	return w, pub
}

// waitPublished waits until n publishes are confirmed, so that the fault
// lands in the middle of the load.
func waitPublished(t *testing.T, w *world, n int64) {
	t.Helper()
	testenv.Eventually(t, settleTimeout, "publishers are under way", func() bool { return w.published.Load() >= n })
}

// TestCrashStreamLeaderUnderLoad crashes the node leading the stream
// (testenv's Crash: no leadership handed over, the survivors wait out the
// election timeout) while publishers and the consumer group run.
// Publishes in flight on the dead leader are resent with the same event
// id; the stream stores each once.
func TestCrashStreamLeaderUnderLoad(t *testing.T) {
	start := time.Now()
	cl := testenv.StartCluster(t, 3)
	w, pub := clusterWorld(t, cl)
	leader := cl.StreamLeader(jobsStream.Name)
	// The publisher that matters is connected to the leader alone, so the
	// kill cuts its connection with publishes in flight; it fails over to
	// the servers the cluster advertised to it.
	cfg := faultConfig(cl.Config("publisher-on-leader"))
	cfg.URLs = []string{cl.ClientURL(leader)}
	onLeader := w.service(cfg)
	t.Logf("%s setup", time.Since(start))

	wait := w.publishers(onLeader, publishers, perPublisher, pace)
	waitPublished(t, w, total/3)
	cl.Crash(leader)
	t.Logf("%s crashed", time.Since(start))
	next, err := cl.WaitStreamLeader(settleTimeout, jobsStream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatalf("crashed node %d still leads", leader)
	}
	if got := w.published.Load(); got >= total {
		t.Logf("note: all %d publishes were confirmed before the new leader was seen", got)
	}
	t.Logf("%s new leader", time.Since(start))
	wait()
	t.Logf("%s published", time.Since(start))
	w.reconcile(pub.Conn().JS, total)
	t.Logf("%s reconciled", time.Since(start))
}

// TestCrashAndRestartFollowerUnderLoad crashes a node that does not lead
// the stream, keeps the load running on the two survivors, restarts it and
// checks that it catches up to hold every message.
func TestCrashAndRestartFollowerUnderLoad(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	w, pub := clusterWorld(t, cl)
	follower := (cl.StreamLeader(jobsStream.Name) + 1) % cl.Size()

	wait := w.publishers(pub, publishers, perPublisher, pace)
	waitPublished(t, w, total/4)
	cl.Crash(follower)
	waitPublished(t, w, total/2)
	if err := cl.Restart(follower); err != nil {
		t.Fatal(err)
	}
	wait()
	if _, err := cl.WaitStreamLeader(settleTimeout, jobsStream.Name); err != nil {
		t.Fatal(err)
	}
	w.reconcile(pub.Conn().JS, total)
	testenv.Eventually(t, settleTimeout, "the restarted replica holds every message", func() bool {
		ns := cl.Server(follower)
		if ns == nil {
			return false
		}
		d, ok := testenv.StreamDetail(ns, jobsStream.Name)
		return ok && d.State.Msgs == total
	})
}
