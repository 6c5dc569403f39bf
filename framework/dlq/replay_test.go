package dlq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/testenv"
)

// TestReplayRefusesForgedDeadLetters runs with the repository's
// permissions file: the inventory user may write only its own dead-letter
// subjects, yet what it writes there must not make the operator's replay
// (full access) publish anywhere but where that consumer's events live.
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
	ops := connect("ops")
	if _, err := framework.EnsureDeadLetterStream(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []framework.StreamSpec{{Name: "ORDERS", Subjects: []string{"orders.>"}}, {Name: "INVENTORY", Subjects: []string{"inventory.>"}}} {
		if _, err := framework.EnsureStream(ctx, ops, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ops.JS.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "inventory-reserve", FilterSubject: "orders.created.v1.>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	const orders = 5
	for i := range orders {
		if _, err := ops.JS.Publish(ctx, "orders.created.v1.o-"+string(rune('a'+i)), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}

	// The inventory user writes dead letters on the one subject it may:
	// jetkit.deadletter.ORDERS.inventory-reserve.
	inv := connect("inventory")
	deadLetter := func(stream, consumer, subject string, extra ...string) {
		t.Helper()
		h := nats.Header{}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		h.Set(framework.HeaderDLQReason, framework.ReasonPermanent)
		h.Set(framework.HeaderDLQSubject, subject)
		h.Set(framework.HeaderDLQStream, stream)
		h.Set(framework.HeaderDLQConsumer, consumer)
		if _, err := inv.JS.PublishMsg(ctx, &nats.Msg{Subject: framework.DeadLetterSubject("ORDERS", "inventory-reserve"), Header: h, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	forged := map[string]string{ // original subject -> why it is refused
		"$JS.API.STREAM.PURGE.ORDERS": "system",
		"$KV.orders.o-a":              "system",
		"_INBOX.abc":                  "inbox",
		"inventory.reserved.v1.o-a":   "does not store",
		"orders.cancelled.v1.o-a":     "does not read",
	}
	for subject := range forged {
		deadLetter("ORDERS", "inventory-reserve", subject)
	}
	deadLetter("INVENTORY", "order-reserved", "inventory.reserved.v1.o-a") // claims another consumer's path
	forged["inventory.reserved.v1.o-a (claimed)"] = "was written to jetkit.deadletter.ORDERS.inventory-reserve"
	// Holds together, so it is replayed, but without the server directives
	// it carries (Nats-* headers are not the event's; the dead-letter
	// stream refuses the ones it does not allow, such as Nats-Rollup, but
	// the target stream may allow more).
	deadLetter("ORDERS", "inventory-reserve", "orders.created.v1.o-a", "Nats-Directive-From-The-Future", "x", "nats-lowercase", "y")
	written := len(forged) + 1

	store, err := dlq.Open(ctx, ops.JS, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	check := func(res dlq.ReplayResult, err error) {
		t.Helper()
		if err != nil || len(res.Replayed) != 1 || res.Replayed[0].Entry.Subject != "orders.created.v1.o-a" || len(res.Failed) != len(forged) {
			t.Errorf("replay: %d replayed, %d refused (%v), %v; want 1 and %d", len(res.Replayed), len(res.Failed), res.Err(), err, len(forged))
		}
		for _, f := range res.Failed {
			if !errors.Is(f.Err, dlq.ErrRefused) {
				t.Errorf("dead letter to %s failed with %v; want ErrRefused", f.Entry.Subject, f.Err)
			}
			why := forged[f.Entry.Subject]
			if f.Entry.Stream == "INVENTORY" {
				why = forged["inventory.reserved.v1.o-a (claimed)"]
			}
			if !strings.Contains(f.Err.Error(), why) {
				t.Errorf("refusal of %s: %v; want it to say %q", f.Entry.Subject, f.Err, why)
			}
		}
	}
	check(store.Replay(ctx, dlq.Filter{}, dlq.ReplayOptions{DryRun: true}))
	check(store.Replay(ctx, dlq.Filter{}, dlq.ReplayOptions{}))

	// Reconcile: ORDERS kept its messages plus the one replay; the refused
	// dead letters stay for inspection.
	st, err := ops.JS.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != orders+1 {
		t.Fatalf("ORDERS holds %d messages (%v); want %d published + 1 replayed", info.State.Msgs, err, orders)
	}
	replayed, err := st.GetLastMsgForSubject(ctx, "orders.created.v1.o-a")
	if err != nil || replayed.Header.Get(dlq.HeaderReplayedFrom) == "" {
		t.Fatalf("the replayed message: %+v %v", replayed, err)
	}
	for k := range replayed.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") && k != nats.MsgIdHdr && k != nats.ExpectedStreamHdr { // both set by Replay
			t.Errorf("the replay carried the dead letter's %s header", k)
		}
	}
	left, err := store.List(ctx, dlq.Filter{}, 0)
	if err != nil || len(left)+1 != written {
		t.Fatalf("%d dead letters left (%v); want %d written - 1 replayed", len(left), err, written)
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
	sub, err := framework.Subscribe(svc, jobs, "broken", func(ctx context.Context, j job, m *framework.Message) error {
		return framework.Permanent(errors.New("still broken"))
	})
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
