package capacity

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// TestSamplerOnCluster samples a filtered consumer of a 3-replica stream
// (direct gets allowed, so the oldest message may be read from any
// replica), and keeps sampling after the stream leader's node is killed.
func TestSamplerOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := testenv.StartCluster(t, 3)
	conn, err := framework.Connect(ctx, cl.Config("capacity-cluster"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js := conn.JS
	// A loaded machine once saw this request go unanswered for the whole
	// minute after the meta leader was elected. Creating the same stream
	// again is idempotent, so ask again after 10s instead of waiting on one
	// lost reply.
	var st jetstream.Stream
	werr := testenv.WaitFor(ctx, 50*time.Second, func() bool {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		st, err = js.CreateStream(actx, jetstream.StreamConfig{Name: "CL", Subjects: []string{"cl.>"}, Replicas: 3, AllowDirect: true})
		return err == nil
	})
	if werr != nil {
		t.Fatalf("create the R3 stream: %v (%v)", err, werr)
	}
	if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "mine", FilterSubject: "cl.mine.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	publish := func(subject string, n int) {
		t.Helper()
		for i := range n {
			// Right after the stream is created, the server this client
			// is on may not know the stream's subjects yet (they spread
			// over the routes): nats.go's own two resends can run out on
			// a loaded machine (CI saw "no response from stream"). No
			// responder stored nothing, so sending again is safe.
			var err error
			werr := testenv.WaitFor(ctx, 15*time.Second, func() bool {
				_, err = js.Publish(ctx, subject, fmt.Appendf(nil, "%d", i))
				return !errors.Is(err, jetstream.ErrNoStreamResponse)
			})
			if err != nil || werr != nil {
				t.Fatalf("publish %s #%d: %v (%v)", subject, i, err, werr)
			}
		}
	}
	publish("cl.other.x", 20) // seqs 1..20: not the consumer's
	publish("cl.mine.a", 30)  // seqs 21..50
	first, err := st.GetMsg(ctx, 21)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSampler(js, "CL", "mine", RequestTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// In a cluster the consumer leader learns of new messages through
	// replication, so wait until it has counted them all.
	untilBacklog := func(n float64) Sample {
		t.Helper()
		var smp Sample
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("the consumer counts %v pending", n), func() bool {
			smp = mustSample(t, s)
			return smp.Backlog() == n
		})
		return smp
	}
	a := untilBacklog(30)
	if !a.Filtered || a.Backlog() != 30 || a.OldestSeq != 21 || !a.OldestTime.Equal(first.Time) {
		t.Fatalf("sample %+v: want filtered, backlog 30, oldest seq 21 at %s", a, first.Time)
	}
	publish("cl.other.x", 10)
	publish("cl.mine.b", 10)
	b := untilBacklog(40)
	if n, _, _ := arrivals(a, b); n != 10 {
		t.Fatalf("arrivals %v, want 10 (the other subject's 10 do not count)", n)
	}

	leader, err := cl.WaitStreamLeader(30*time.Second, "CL")
	if err != nil {
		t.Fatal(err)
	}
	cl.Kill(leader)
	var last error
	err = testenv.WaitFor(ctx, 30*time.Second, func() bool {
		sctx, c := context.WithTimeout(ctx, 3*time.Second)
		defer c()
		smp, err := s.Sample(sctx)
		last = err
		return err == nil && smp.Backlog() == 40 && smp.OldestSeq == 21
	})
	if err != nil {
		t.Fatalf("no good sample after killing the stream leader: %v", errors.Join(err, last))
	}
}
