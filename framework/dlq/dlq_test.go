package dlq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/framework/middleware"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

type job struct {
	N int `json:"n"`
}

var jobs = framework.MustNewTopic[job]("jobs.run.v1")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestListShowReplayPurgeRoundTrip(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	cfg := srv.Config("dlq-test")
	cfg.RetryInitial, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	svc, err := framework.New(ctx, cfg, framework.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}

	// billing is broken at first: it dead-letters every job. audit works
	// and de-duplicates by event id, so replays (which every consumer of
	// the subject receives) are skipped there.
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	billed := map[string][]uint64{} // event id -> NumDelivered of each successful run
	billing, err := framework.Subscribe(ctx, svc, jobs, "billing", func(ctx context.Context, j job, m *framework.Message) error {
		if broken.Load() {
			return framework.Permanent(errors.New("billing backend rejected the job"))
		}
		mu.Lock()
		billed[m.Envelope.ID] = append(billed[m.Envelope.ID], m.NumDelivered)
		mu.Unlock()
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idem, err := middleware.NewIdempotency(ctx, svc, middleware.IdempotencyConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var audited atomic.Int64
	audit, err := framework.Subscribe(ctx, svc, jobs, "audit", func(ctx context.Context, j job, m *framework.Message) error {
		audited.Add(1)
		return nil
	}, &framework.SubscribeOptions{Middleware: []framework.Middleware{idem.Middleware()}})
	if err != nil {
		t.Fatal(err)
	}

	ids := map[string]bool{}
	for i := range 5 {
		ack, err := jobs.Publish(ctx, svc, job{N: i})
		if err != nil {
			t.Fatal(err)
		}
		ids[ack.EventID] = true
	}
	// One undecodable message: both consumers dead-letter it (reason decode).
	h := nats.Header{}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "garbage-1", "ce-type": jobs.EventType(), "ce-source": "test"} {
		h.Set(k, v)
	}
	if _, err := svc.Conn().JS.PublishMsg(ctx, &nats.Msg{Subject: jobs.Subject(), Header: h, Data: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "billing dead-lettered 6, audit 1", func() bool {
		return billing.Stats().DeadLettered == 6 && audit.Stats().DeadLettered == 1 && audit.Stats().Acked == 5
	})

	store, err := dlq.Open(ctx, svc.Conn().JS, cfg.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	all, err := store.List(ctx, dlq.Filter{}, 0)
	if err != nil || len(all) != 7 {
		t.Fatalf("list all: %d entries, %v; want 7", len(all), err)
	}
	permanent := dlq.Filter{Stream: "JOBS", Consumer: "billing", Reason: dlq.ReasonPermanent}
	list, err := store.List(ctx, permanent, 0)
	if err != nil || len(list) != 5 {
		t.Fatalf("list billing/permanent: %d entries, %v; want 5", len(list), err)
	}
	if two, _ := store.List(ctx, permanent, 2); len(two) != 2 {
		t.Fatalf("limit 2 gave %d", len(two))
	}
	ranged := permanent
	ranged.FromSeq, ranged.ToSeq = list[1].Seq, list[3].Seq
	if mid, _ := store.List(ctx, ranged, 0); len(mid) != 3 || mid[0].Seq != list[1].Seq || mid[2].Seq != list[3].Seq {
		t.Fatalf("sequence range %d..%d gave %+v", ranged.FromSeq, ranged.ToSeq, mid)
	}
	if decode, _ := store.List(ctx, dlq.Filter{Reason: dlq.ReasonDecode}, 0); len(decode) != 2 {
		t.Fatalf("decode entries: %d, want 2", len(decode))
	}

	e, err := store.Get(ctx, list[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != jobs.Subject() || e.Stream != "JOBS" || e.Consumer != "billing" || e.Reason != dlq.ReasonPermanent ||
		e.Delivered != 1 || e.StreamSeq == 0 || !ids[e.EventID] || !strings.Contains(e.Error, "billing backend rejected") ||
		e.DeadLettered.IsZero() || string(e.Data) != `{"n":0}` {
		t.Fatalf("entry %+v", e)
	}
	if _, err := store.Get(ctx, 9999); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}

	// Fix billing, then replay. A dry run changes nothing.
	broken.Store(false)
	dry, err := store.Replay(ctx, permanent, dlq.ReplayOptions{DryRun: true})
	if err != nil || len(dry.Replayed) != 5 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if still, _ := store.List(ctx, permanent, 0); len(still) != 5 {
		t.Fatalf("dry run changed the stream: %d left", len(still))
	}
	// Two replays of one entry that keep it, as two operators racing: the
	// target stream stores it once.
	one := dlq.Filter{FromSeq: list[0].Seq, ToSeq: list[0].Seq}
	r1, err1 := store.Replay(ctx, one, dlq.ReplayOptions{Keep: true})
	r2, err2 := store.Replay(ctx, one, dlq.ReplayOptions{Keep: true})
	if err1 != nil || err2 != nil || len(r1.Replayed) != 1 || len(r2.Replayed) != 1 || r1.Replayed[0].Duplicate || !r2.Replayed[0].Duplicate {
		t.Fatalf("repeated replay: %+v %v / %+v %v", r1, err1, r2, err2)
	}
	res, err := store.Replay(ctx, permanent, dlq.ReplayOptions{})
	if err != nil || len(res.Replayed) != 5 || res.Err() != nil {
		t.Fatalf("replay: %+v %v", res, err)
	}
	again, err := store.Replay(ctx, permanent, dlq.ReplayOptions{})
	if err != nil || len(again.Replayed) != 0 {
		t.Fatalf("second replay found %d entries, %v; want none", len(again.Replayed), err)
	}

	testenv.Eventually(t, 10*time.Second, "billing handled the 5 replays", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(billed) == 5 && billing.Stats().Acked == 5
	})
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "JOBS", "billing", 5*time.Second)
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "JOBS", "audit", 5*time.Second)
	mu.Lock()
	for id, runs := range billed {
		if !ids[id] || len(runs) != 1 || runs[0] != 1 {
			t.Errorf("event %s billed with deliveries %v; want once, on a fresh first delivery", id, runs)
		}
	}
	mu.Unlock()
	if audited.Load() != 5 || idem.Stats().Skipped != 5 {
		t.Fatalf("audit ran %d times, skipped %d replays; want 5 and 5", audited.Load(), idem.Stats().Skipped)
	}
	if st := billing.Stats(); st.DeadLettered != 6 || st.Acked != 5 {
		t.Fatalf("billing stats after replay %+v", st)
	}

	n, err := store.Purge(ctx, dlq.Filter{Reason: dlq.ReasonDecode})
	if err != nil || n != 2 {
		t.Fatalf("purge decode: %d, %v", n, err)
	}
	if left, _ := store.List(ctx, dlq.Filter{}, 0); len(left) != 0 {
		t.Fatalf("%d entries left after replay and purge", len(left))
	}
}

func TestPurgeEverythingAndBadFilter(t *testing.T) {
	ctx := context.Background()
	conn, store := syntheticDeadLetters(t, "S", dlq.ReasonMaxDeliver, "x.y", "a", "b", "b")
	if _, err := store.List(ctx, dlq.Filter{Consumer: "a.b"}, 0); err == nil {
		t.Fatal("a consumer filter with a dot must be rejected")
	}
	if n, err := store.Purge(ctx, dlq.Filter{Consumer: "b"}); err != nil || n != 2 {
		t.Fatalf("purge consumer b: %d %v", n, err)
	}
	if n, err := store.Purge(ctx, dlq.Filter{}); err != nil || n != 1 {
		t.Fatalf("purge all: %d %v", n, err)
	}
	if _, err := dlq.Open(ctx, conn.JS, "NOPE"); err == nil || !strings.Contains(err.Error(), "JETKIT_DEAD_LETTER_STREAM") {
		t.Fatalf("opening a missing stream: %v", err)
	}
}

// A Partitioned group's dead letters are written per partition consumer
// (<durable>-p<N>); a filter on the group's durable selects them, and no
// other consumer whose name merely starts like it.
func TestConsumerFilterSelectsAGroupsPartitions(t *testing.T) {
	ctx := context.Background()
	_, store := syntheticDeadLetters(t, "ORDERS", dlq.ReasonPermanent, "orders.created.v1.o-1",
		"inventory", "inventory-p0", "other", "inventory-p3", "inventory-px", "inventory-p", "inventoryx", "inventory-p01", "inventory-p2")
	got, err := store.List(ctx, dlq.Filter{Stream: "ORDERS", Consumer: "inventory"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range got {
		seqs = append(seqs, e.Seq)
	}
	if want := []uint64{1, 2, 4, 9}; !slices.Equal(seqs, want) {
		t.Errorf("entries of consumer inventory: sequences %v, want %v (inventory, -p0, -p3, -p2)", seqs, want)
	}
	if got, _ := store.List(ctx, dlq.Filter{Consumer: "inventory-p3"}, 0); len(got) != 1 || got[0].Seq != 4 {
		t.Errorf("entries of consumer inventory-p3: %v, want the one at sequence 4", got)
	}
}

// syntheticDeadLetters declares DEADLETTER on an embedded server and
// writes one dead letter of stream with reason and original subject per
// consumer, in order (sequences 1, 2, ...); it returns the connection
// (closed when t ends) and the store over them.
func syntheticDeadLetters(t *testing.T, stream, reason, subject string, consumers ...string) (*framework.Conn, *dlq.Store) {
	t.Helper()
	srv := testenv.Start(t)
	ctx := context.Background()
	conn, err := framework.Connect(ctx, srv.Config("dlq-synthetic"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if _, err := conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "DEADLETTER", Subjects: []string{wire.DeadLetterSubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range consumers {
		h := nats.Header{}
		h.Set(wire.HeaderDLQReason, reason)
		h.Set(wire.HeaderDLQSubject, subject)
		if _, err := conn.JS.PublishMsg(ctx, &nats.Msg{Subject: wire.DeadLetterSubject(stream, c), Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := dlq.Open(ctx, conn.JS, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	return conn, store
}
