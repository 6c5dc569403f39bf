package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/testenv"
)

// TestIdempotencySurvivesItsBucketLeaderCrash crashes the node leading the
// idempotency bucket's stream while two instances behind the default
// middleware with Idempotency handle the load. Claims written while it
// dies may be stored without an answer: they are recognised as their
// delivery's own (read back, taken back, or dropped), so no event waits
// out the 30 s lease as if its owner had crashed, and the usual
// reconciliation holds.
func TestIdempotencySurvivesItsBucketLeaderCrash(t *testing.T) {
	start := time.Now()
	cl := testenv.StartCluster(t, 3)
	w := newWorld(t)
	pub := w.service(faultConfig(cl.Config("publisher")))
	if _, err := cl.WaitStreamLeader(settleTimeout, jobsStream.Name); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var idems []*middleware.Idempotency
	for range 2 {
		cfg := faultConfig(cl.Config("worker"))
		cfg.RequestTimeout = time.Second // KV calls time out during the election, their outcome unknown
		svc := w.service(cfg)
		idem, err := middleware.NewIdempotency(ctx, svc, middleware.IdempotencyConfig{Logger: w.logger()})
		if err != nil {
			t.Fatal(err)
		}
		idems = append(idems, idem)
		svc.Use(middleware.Defaults(middleware.Options{Logger: w.logger(), Idempotency: idem})...)
		w.worker(svc, framework.AckModeSync)
	}
	const bucketStream = "KV_jetkit-idempotency"
	leader, err := cl.WaitStreamLeader(settleTimeout, bucketStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitConsumerLeader(settleTimeout, jobsStream.Name, durable); err != nil {
		t.Fatal(err)
	}
	wait := w.publishers(pub, publishers, perPublisher, pace)
	waitPublished(t, w, total/3)
	cl.Crash(leader)
	t.Logf("%s crashed the idempotency bucket's leader", time.Since(start).Round(time.Millisecond))
	wait()
	w.reconcile(pub.Conn().JS, total)
	var st middleware.IdempotencyStats
	for _, idem := range idems {
		s := idem.Stats()
		st.Ran, st.Skipped, st.Waited, st.TookOver, st.Reclaimed = st.Ran+s.Ran, st.Skipped+s.Skipped, st.Waited+s.Waited, st.TookOver+s.TookOver, st.Reclaimed+s.Reclaimed
	}
	t.Logf("%s reconciled; idempotency %+v", time.Since(start).Round(time.Millisecond), st)
	if st.TookOver != 0 {
		t.Errorf("%d claims were taken over after their lease ran out: a live instance's claim was treated as a crashed owner's", st.TookOver)
	}
}
