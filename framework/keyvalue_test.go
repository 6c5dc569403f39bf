package framework_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A bucket declared while no node that may hold it is online is refused
// with "no suitable peers for placement" (JetStream error 10005) until
// one is back, as while a cluster settles: provisioning rides it out
// instead of failing start-up. The bucket is pinned to node "down" with a
// server tag that node gets when it restarts.
func TestEnsureKeyValueRetriesPlacement(t *testing.T) {
	var tagged atomic.Int32
	tagged.Store(-1)
	cl := testenv.StartCluster(t, 3, testenv.ClusterOptions{Configure: func(i int, o *server.Options) {
		if int(tagged.Load()) == i {
			o.Tags = jwt.TagList{"zone:placed"}
		}
	}})
	var logs lockedBuffer
	ctx := context.Background()
	svc, err := framework.New(ctx, cl.Config("kv"), framework.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	down := (cl.MetaLeader() + 1) % cl.Size()
	cl.Kill(down)
	tagged.Store(int32(down))

	type result struct {
		kv  jetstream.KeyValue
		err error
	}
	done := make(chan result, 1)
	go func() {
		dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		kv, err := svc.EnsureKeyValue(dctx, jetstream.KeyValueConfig{Bucket: "placed", History: 1, Replicas: 1,
			Placement: &jetstream.Placement{Tags: []string{"zone:placed"}}})
		done <- result{kv, err}
	}()
	placementRefused := func() bool { return strings.Contains(logs.String(), "no suitable peers") }
	err = testenv.WaitFor(ctx, 30*time.Second, func() bool {
		select {
		case r := <-done:
			done <- r
			return true
		default:
			return placementRefused()
		}
	})
	if err != nil || !placementRefused() {
		r := <-done
		t.Fatalf("the bucket was not refused placement with its node down (err %v); logs:\n%s", r.err, logs.String())
	}
	if err := cl.Restart(down); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("EnsureKeyValue while the only node it may live on restarts: %v", r.err)
	}
	if _, err := r.kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}
