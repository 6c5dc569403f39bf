package testenv_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
	"github.com/jetkit/jetkit/testenv/embedded"
)

type ping struct {
	N int `json:"n"`
}

// TestClusterStreamSurvivesLeaderKillAndRestart walks the helpers through
// one failover: a replicated stream keeps its data when its leader dies,
// and the restarted node rejoins with the same identity and catches up.
func TestClusterStreamSurvivesLeaderKillAndRestart(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	if cl.Size() != 3 || cl.MetaLeader() < 0 {
		t.Fatalf("size %d meta leader %d", cl.Size(), cl.MetaLeader())
	}
	ctx := context.Background()
	cfg := cl.Config("clustertest")
	if cfg.Replicas != 3 || len(cfg.URLs) != 3 {
		t.Fatalf("config replicas %d urls %v", cfg.Replicas, cfg.URLs)
	}
	svc, err := framework.New(ctx, cfg, framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	st, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "PINGS", Subjects: []string{"pings.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := st.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("stream replicas %d, want 3 from Config.Replicas", r)
	}
	leader, err := cl.WaitStreamLeader(30*time.Second, "PINGS")
	if err != nil {
		t.Fatal(err)
	}
	topic := framework.MustNewTopic[ping]("pings.sent.v1")
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := topic.Publish(pctx, svc, ping{N: i}, framework.WithEventID(fmt.Sprintf("ping-%d", i)))
			cancel()
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	publish(0, 20)

	cl.Kill(leader)
	if cl.Running(leader) || cl.Server(leader) != nil {
		t.Fatalf("node %d still running after Kill", leader)
	}
	cl.Kill(leader) // killing twice is harmless
	next, err := cl.WaitStreamLeader(30*time.Second, "PINGS")
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatalf("killed node %d still reported as leader", leader)
	}
	publish(20, 40) // the client reconnects to a survivor on its own

	oldURL := cl.ClientURL(leader)
	if err := cl.Restart(leader); err != nil {
		t.Fatal(err)
	}
	if cl.ClientURL(leader) != oldURL || cl.Server(leader).Name() != cl.NodeName(leader) {
		t.Fatalf("restarted node changed identity: %s %s", cl.ClientURL(leader), cl.Server(leader).Name())
	}
	if err := cl.Restart(leader); err == nil {
		t.Fatal("restarting a running node should fail")
	}
	if _, err := cl.WaitStreamLeader(60*time.Second, "PINGS"); err != nil {
		t.Fatal(err)
	}
	// The restarted replica has every message, the ones it missed included.
	testenv.Eventually(t, 30*time.Second, "restarted replica holds 40 messages", func() bool {
		d, ok := testenv.StreamDetail(cl.Server(leader), "PINGS")
		return ok && d.State.Msgs == 40
	})
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 40 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream state %+v cluster %+v", info.State, info.Cluster)
	}

	// Consumer leader lookup agrees with the server's own view.
	cons, err := svc.Conn().JS.CreateOrUpdateConsumer(ctx, "PINGS", jetstream.ConsumerConfig{Durable: "probe", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cleader, err := cl.WaitConsumerLeader(30*time.Second, "PINGS", "probe")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Cluster == nil || ci.Cluster.Leader != cl.NodeName(cleader) {
		t.Fatalf("consumer leader %d (%s), server says %+v", cleader, cl.NodeName(cleader), ci.Cluster)
	}
	if cl.Name() != "jetkit" || cl.URL() != strings.Join(cl.ClientURLs(), ",") {
		t.Fatalf("name %q url %q", cl.Name(), cl.URL())
	}
	cl.Shutdown()
	for i := range cl.Size() {
		if cl.Running(i) {
			t.Fatalf("node %d still running after Shutdown", i)
		}
	}
	if cl.MetaLeader() != -1 {
		t.Fatal("meta leader reported after Shutdown")
	}
}

func TestRunClusterRejectsOneNode(t *testing.T) {
	if _, err := embedded.RunCluster(embedded.ClusterOptions{Size: 1}); err == nil {
		t.Fatal("a one-node cluster should be refused")
	}
}
