package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// TestReplayRefusesForgedDeadLetters runs with the repository's
// permissions file: the inventory user may write only its own dead-letter
// subjects, yet what it writes there must not make the operator's replay
// (full access) publish anywhere but where that consumer's events live,
// nor anything but what the stream stored.
func TestReplayRefusesForgedDeadLetters(t *testing.T) {
	pw := map[string]string{"order": "order-pw-1", "inventory": "inventory-pw-2", "ops": "ops-pw-3"}
	t.Setenv("ORDER_NATS_PASSWORD", pw["order"])
	t.Setenv("INVENTORY_NATS_PASSWORD", pw["inventory"])
	t.Setenv("OPS_NATS_PASSWORD", pw["ops"])
	srv := testenv.Start(t, testenv.Options{Configure: testenv.AuthFromConfigFile(t, "../../deploy/nats-permissions.conf")})
	ctx := context.Background()
	connect := func(user string) *framework.Conn {
		c, err := framework.Connect(ctx, testenv.Credentials{User: user, Password: pw[user]}.Apply(srv.Config(user)), quiet())
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	// The inventory's consumer of ORDERS, as deploy/nats-permissions.conf
	// names it (the sample inventory reads ORDERS partitioned).
	invConsumer := wire.PartitionConsumer("inventory", 0)
	ops := connect("ops")
	if _, err := ops.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "DEADLETTER", Subjects: []string{wire.DeadLetterSubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []framework.StreamSpec{{Name: "ORDERS", Subjects: []string{"orders.>"}}, {Name: "INVENTORY", Subjects: []string{"inventory.>"}}} {
		if _, err := ops.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: spec.Name, Subjects: spec.Subjects}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ops.JS.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: invConsumer, FilterSubject: "orders.created.v1.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	// ORDERS: o-1 .. o-5 at sequences 1 .. 5; 2 and 3 are then deleted
	// (as age limits or interest retention would).
	const orders = 5
	for i := 1; i <= orders; i++ {
		if _, err := ops.JS.Publish(ctx, fmt.Sprintf("orders.created.v1.o-%d", i), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := ops.JS.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{2, 3} {
		if err := st.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}

	// The inventory user writes dead letters on the subjects it may, one
	// per partition consumer: jetkit.deadletter.ORDERS.inventory-p0 here.
	inv := connect("inventory")
	type entry struct {
		stream, consumer, subject, seq string
		header                         map[string]string
		data                           string
		refused                        string // what the refusal says; "" for a replay
		replayed                       string // the payload replayed
	}
	entries := []entry{
		{subject: "$JS.API.STREAM.PURGE.ORDERS", seq: "1", refused: "system"},
		{subject: "$KV.orders.o-1", seq: "1", refused: "system"},
		{subject: "_INBOX.abc", seq: "1", refused: "inbox"},
		{subject: "inventory.reserved.v1.o-1", seq: "1", refused: "does not store"},
		{subject: "orders.cancelled.v1.o-1", seq: "1", refused: "does not read"},
		{stream: "INVENTORY", consumer: "order-reserved", subject: "inventory.reserved.v1.o-1", seq: "1", refused: "was written to jetkit.deadletter.ORDERS.inventory-p0,"},
		{subject: "orders.created.v1.o-9", seq: "1", refused: "ORDERS sequence 1 is on orders.created.v1.o-1, not orders.created.v1.o-9"},
		{subject: "orders.created.v1.o-9", seq: "99", refused: "never had sequence 99"},
		{subject: "orders.created.v1.o-9", refused: "no Jetkit-Dlq-Stream-Seq"},
		{subject: "orders.created.v1.o-2", seq: "2", header: map[string]string{wire.HeaderDLQTruncated: "5000"}, data: `{"n":`, refused: "payload was cut"},
		// These hold together. The first is replayed from ORDERS, whatever
		// its copy says, and without the server directives it carries
		// (Nats-* headers are not the event's); the second's original is
		// gone, so its copy is all there is.
		{subject: "orders.created.v1.o-1", seq: "1", header: map[string]string{"Nats-Directive-From-The-Future": "x", "nats-lowercase": "y"}, data: `{"forged":true}`, replayed: `{"n":1}`},
		{subject: "orders.created.v1.o-3", seq: "3", data: `{"n":3}`, replayed: `{"n":3}`},
	}
	bySeq := map[uint64]entry{}
	for i, e := range entries {
		h := nats.Header{}
		for k, v := range e.header {
			h.Set(k, v)
		}
		if e.stream == "" {
			e.stream, e.consumer = "ORDERS", invConsumer
		}
		for k, v := range map[string]string{wire.HeaderDLQReason: dlq.ReasonPermanent, wire.HeaderDLQSubject: e.subject,
			wire.HeaderDLQStream: e.stream, wire.HeaderDLQConsumer: e.consumer, wire.HeaderDLQStreamSeq: e.seq} {
			if v != "" {
				h.Set(k, v)
			}
		}
		if _, err := inv.JS.PublishMsg(ctx, &nats.Msg{Subject: wire.DeadLetterSubject("ORDERS", invConsumer), Header: h, Data: []byte(e.data)}); err != nil {
			t.Fatal(err)
		}
		bySeq[uint64(i+1)] = e
	}

	store, err := dlq.Open(ctx, ops.JS, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	check := func(res dlq.ReplayResult, err error) {
		t.Helper()
		if err != nil || len(res.Replayed)+len(res.Failed) != len(entries) {
			t.Errorf("replay: %d replayed, %d refused, %v; want %d in all", len(res.Replayed), len(res.Failed), err, len(entries))
		}
		for _, r := range res.Replayed {
			if e := bySeq[r.Entry.Seq]; e.replayed == "" || r.FromCopy != (e.seq == "3") {
				t.Errorf("replayed dead letter %d to %s (from copy %v); want it %s", r.Entry.Seq, r.Entry.Subject, r.FromCopy, e.refused)
			}
		}
		for _, f := range res.Failed {
			if e := bySeq[f.Entry.Seq]; e.refused == "" || !errors.Is(f.Err, dlq.ErrRefused) || !strings.Contains(f.Err.Error(), e.refused) {
				t.Errorf("dead letter %d to %s: %v; want ErrRefused saying %q", f.Entry.Seq, f.Entry.Subject, f.Err, e.refused)
			}
		}
	}
	check(store.Replay(ctx, dlq.Filter{}, dlq.ReplayOptions{DryRun: true}))
	check(store.Replay(ctx, dlq.Filter{}, dlq.ReplayOptions{}))

	// Reconcile: ORDERS kept its 3 messages and gained the 2 replays, with
	// the payloads it stored; the refused dead letters stay for inspection.
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != orders-2+2 {
		t.Fatalf("ORDERS holds %d messages (%v); want %d published - 2 deleted + 2 replayed", info.State.Msgs, err, orders)
	}
	for _, e := range entries {
		if e.replayed == "" {
			continue
		}
		m, err := st.GetLastMsgForSubject(ctx, e.subject)
		if err != nil || m.Header.Get(dlq.HeaderReplayedFrom) == "" || string(m.Data) != e.replayed {
			t.Fatalf("the replay of %s: %+v %v; want payload %s", e.subject, m, err, e.replayed)
		}
		for k := range m.Header {
			if strings.HasPrefix(strings.ToLower(k), "nats-") && k != nats.MsgIdHdr && k != nats.ExpectedStreamHdr { // both set by Replay
				t.Errorf("the replay of %s carried the dead letter's %s header", e.subject, k)
			}
		}
	}
	left, err := store.List(ctx, dlq.Filter{}, 0)
	if err != nil || len(left) != len(entries)-2 {
		t.Fatalf("%d dead letters left (%v); want %d written - 2 replayed", len(left), err, len(entries))
	}
}

// TestReplayDoesNotChaseItsOwnDeadLetters: replaying to a handler that
// still fails dead-letters each entry again; the run must replay each
// entry it found once, and the dry run must say the same number.
func TestReplayDoesNotChaseItsOwnDeadLetters(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	cfg := srv.Config("dlq-chase")
	svc, err := framework.New(ctx, cfg, framework.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	sub, err := framework.Subscribe(ctx, svc, jobs, "broken", func(ctx context.Context, j job, m *framework.Message) error {
		return framework.Permanent(errors.New("still broken"))
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if _, err := jobs.Publish(ctx, svc, job{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "all jobs dead-lettered", func() bool { return sub.Stats().DeadLettered == n })
	store, err := dlq.Open(ctx, svc.Conn().JS, cfg.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	f := dlq.Filter{Consumer: "broken"}
	dry, err := store.Replay(ctx, f, dlq.ReplayOptions{DryRun: true})
	if err != nil || len(dry.Replayed) != n {
		t.Fatalf("dry run: would replay %d, %v; want %d", len(dry.Replayed), err, n)
	}
	for round := 1; round <= 3; round++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a replay chasing its own output never ends
		res, err := store.Replay(rctx, f, dlq.ReplayOptions{})
		cancel()
		if err != nil || res.Err() != nil || len(res.Replayed) != n {
			t.Fatalf("round %d: replayed %d (%v, %v); want the %d entries found at the start", round, len(res.Replayed), err, res.Err(), n)
		}
		testenv.Eventually(t, 10*time.Second, "replays dead-lettered again", func() bool { return sub.Stats().DeadLettered == uint64(n*(round+1)) })
		// Reconcile: every delivery was dead-lettered; the stream holds the
		// originals and one replay of each per round; the dead-letter
		// stream holds one entry per job.
		testenv.WaitConsumerIdle(t, svc.Conn().JS, "JOBS", "broken", 5*time.Second)
		st, _ := svc.Conn().JS.Stream(ctx, "JOBS")
		info, err := st.Info(ctx)
		if err != nil || info.State.Msgs != uint64(n*(round+1)) {
			t.Fatalf("round %d: JOBS holds %d (%v), want %d", round, info.State.Msgs, err, n*(round+1))
		}
		if left, _ := store.List(ctx, f, 0); len(left) != n {
			t.Fatalf("round %d: %d dead letters, want %d", round, len(left), n)
		}
	}
}
