package middleware

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// lostAnswers is the real bucket, except that the answer of the next
// loseCreates creates (which the server stores) and of the next loseGets
// reads is lost, as when the node answering dies or a failover outlasts
// the request timeout.
type lostAnswers struct {
	jetstream.KeyValue
	loseCreates, loseGets atomic.Int32
	// holdDeletes, if set, holds every delete until it is closed.
	holdDeletes atomic.Pointer[chan struct{}]
}

func (l *lostAnswers) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if hold := l.holdDeletes.Load(); hold != nil {
		<-*hold
	}
	return l.KeyValue.Delete(ctx, key, opts...)
}

func (l *lostAnswers) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	rev, err := l.KeyValue.Create(ctx, key, value, opts...)
	if err == nil && l.loseCreates.Add(-1) >= 0 {
		return 0, fmt.Errorf("create %s: answer lost: %w", key, context.DeadlineExceeded)
	}
	return rev, err
}

func (l *lostAnswers) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if l.loseGets.Add(-1) >= 0 {
		return nil, fmt.Errorf("get %s: answer lost: %w", key, context.DeadlineExceeded)
	}
	return l.KeyValue.Get(ctx, key)
}

func faultService(t *testing.T, cfg framework.Config) *framework.Service {
	t.Helper()
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

func faultMessage(id string) *framework.Message {
	return &framework.Message{Subject: "jobs.run.v1", Stream: "JOBS", Consumer: "worker", StreamSeq: 7, NumDelivered: 1, MaxDeliver: 5, Attempt: 1,
		Envelope: framework.Envelope{ID: id, Type: "jobs.run.v1", Source: "test", SpecVersion: "1.0"}}
}

// A claim whose create timed out but was stored is this delivery's own:
// read back, it runs the handler at once. When the read-back fails too,
// the next delivery in this instance takes the claim back at once rather
// than waiting a whole lease for "another owner".
func TestIdempotencyClaimWithLostAnswerIsOwn(t *testing.T) {
	svc := faultService(t, testenv.Start(t).Config("idem"))
	ctx := context.Background()
	idem, err := NewIdempotency(ctx, svc, IdempotencyConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}) // lease 30s
	if err != nil {
		t.Fatal(err)
	}
	lossy := &lostAnswers{KeyValue: idem.kv}
	idem.kv = lossy
	var runs atomic.Int32
	h := idem.Middleware()(framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		runs.Add(1)
		return nil
	}))

	lossy.loseCreates.Store(1)
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := h.Handle(hctx, faultMessage("lost-create")); err != nil {
		t.Fatalf("a stored claim whose answer was lost: %v", err)
	}
	if runs.Load() != 1 || idem.Stats().Waited != 0 {
		t.Fatalf("runs %d, stats %+v: want one run, no wait", runs.Load(), idem.Stats())
	}

	lossy.loseCreates.Store(1)
	lossy.loseGets.Store(1) // the read-back is lost too: this delivery fails
	if err := h.Handle(hctx, faultMessage("lost-twice")); err == nil {
		t.Fatal("the claim was neither confirmed nor read back, yet the delivery succeeded")
	}
	start := time.Now()
	if err := h.Handle(hctx, faultMessage("lost-twice")); err != nil { // the redelivery
		t.Fatalf("redelivery after a lost claim: %v", err)
	}
	// The lost claim is either taken back by the redelivery (Reclaimed) or
	// already dropped by the failed delivery once the bucket answered.
	if took := time.Since(start); runs.Load() != 2 || idem.Stats().Waited != 0 || idem.Stats().TookOver != 0 || took > 2*time.Second {
		t.Fatalf("runs %d, stats %+v, took %s: want the redelivery to run at once", runs.Load(), idem.Stats(), took)
	}
	// Both are done: a duplicate is skipped.
	if err := h.Handle(hctx, faultMessage("lost-twice")); err != nil || runs.Load() != 2 {
		t.Fatalf("duplicate: %v, runs %d", err, runs.Load())
	}

	// The same with the background drop held up: the redelivery finds the
	// lost claim, sees it is this instance's and not running, and takes
	// it back at once.
	hold := make(chan struct{})
	lossy.holdDeletes.Store(&hold)
	reclaimed := idem.Stats().Reclaimed
	lossy.loseCreates.Store(1)
	lossy.loseGets.Store(1)
	if err := h.Handle(hctx, faultMessage("taken-back")); err == nil {
		t.Fatal("the claim was neither confirmed nor read back, yet the delivery succeeded")
	}
	start = time.Now()
	err = h.Handle(hctx, faultMessage("taken-back"))
	close(hold)
	if err != nil {
		t.Fatalf("redelivery after a lost claim: %v", err)
	}
	if took := time.Since(start); runs.Load() != 3 || idem.Stats().Reclaimed != reclaimed+1 || idem.Stats().Waited != 0 || took > 2*time.Second {
		t.Fatalf("runs %d, stats %+v, took %s: want the claim taken back at once", runs.Load(), idem.Stats(), took)
	}
}

// The bucket follows the service's configuration: its replica count and
// its request timeout for KV calls.
func TestIdempotencyFollowsServiceConfig(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	cfg := cl.Config("idem")
	cfg.RequestTimeout = 1500 * time.Millisecond
	svc := faultService(t, cfg)
	idem, err := NewIdempotency(context.Background(), svc, IdempotencyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := idem.Bucket().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Errorf("bucket replicas %d, want Config.Replicas 3", r)
	}
	if idem.opTimeout != cfg.RequestTimeout {
		t.Errorf("KV call timeout %s, want Config.RequestTimeout %s", idem.opTimeout, cfg.RequestTimeout)
	}
}
