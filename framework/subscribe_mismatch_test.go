package framework_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// TestSubscriptionMatchingNothingWarns: a subscriber whose topic is
// unkeyed while the producer publishes keyed events (or the reverse)
// receives nothing; Subscribe says so in a warning naming the fix.
func TestSubscriptionMatchingNothingWarns(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	pub := newService(t, srv, "order")
	const keyed, unkeyed = 3, 2
	for i := range keyed {
		if _, err := createdByOrder.Publish(ctx, pub, orderCreated{ID: "o", Index: i}, framework.WithKey("o-"+string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	cancelled := framework.MustNewTopic[orderCreated]("orders.cancelled.v1")
	for i := range unkeyed {
		if _, err := cancelled.Publish(ctx, pub, orderCreated{ID: "o", Index: i}); err != nil {
			t.Fatal(err)
		}
	}

	logs := &syncBuffer{}
	sub, err := framework.New(ctx, srv.Config("payments"), framework.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Shutdown(context.Background()) })
	noop := func(context.Context, orderCreated, *framework.Message) error { return nil }

	// Unkeyed subscriber, keyed producer: the scaffolding guide's example.
	if _, err := framework.Subscribe(ctx, sub, created, "payments-created", noop, nil); err != nil {
		t.Fatal(err)
	}
	// Keyed subscriber, unkeyed producer.
	if _, err := framework.Subscribe(ctx, sub, framework.MustNewTopic[orderCreated]("orders.cancelled.v1", framework.Keyed()), "payments-cancelled", noop, nil); err != nil {
		t.Fatal(err)
	}
	// A subscription that matches: no warning.
	if _, err := framework.Subscribe(ctx, sub, createdByOrder, "payments-keyed", noop, nil); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	var warnings []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "matches no message") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 2 {
		t.Fatalf("want 2 warnings, got %d:\n%s", len(warnings), out)
	}
	for i, want := range [][]string{
		{"consumer=payments-created", "orders.created.v1.>", "messages=3", "framework.Keyed()"},
		{"consumer=payments-cancelled", "orders.cancelled.v1", "messages=2", "without framework.Keyed()"},
	} {
		for _, w := range want {
			if !strings.Contains(warnings[i], w) {
				t.Errorf("warning %d lacks %q: %s", i, w, warnings[i])
			}
		}
	}

	// Every event is delivered to the subscription that matches it.
	testenv.Eventually(t, 10*time.Second, "the keyed subscription handles the 3 keyed events", func() bool {
		for _, s := range sub.Subscriptions() {
			if s.Durable() == "payments-keyed" {
				return s.Stats().Acked == keyed
			}
		}
		return false
	})
}

// TestSubscribeWithoutStreamInfoPermission: the check needs
// $JS.API.STREAM.INFO of the consumed stream; a consumer that may not read
// it still subscribes at once (no wait for a timeout) and consumes.
func TestSubscribeWithoutStreamInfoPermission(t *testing.T) {
	srv, user, admin := leastPrivilegeServer(t, without(servicePermissions(), "$JS.API.STREAM.INFO.ORDERS"))
	owner := newService(t, srv, "order", func(c *framework.Config) { *c = admin.Credentials().Apply(*c) }) // declares ORDERS
	logs := &syncBuffer{}
	svc, err := framework.New(context.Background(), slowTimeoutConfig(srv, user), // RequestTimeout: a minute
		framework.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	start := time.Now()
	sub, err := framework.Subscribe(t.Context(), svc, createdByOrder, "inventory", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("Subscribe took %s: the check waited for a timeout", el)
	}
	if out := logs.String(); !strings.Contains(out, "could not check what the subscription's filter matches") || !strings.Contains(out, "STREAM.INFO.ORDERS") {
		t.Errorf("the refused check is not logged, naming the subject:\n%s", out)
	}
	const n = 3
	for i := range n {
		if _, err := createdByOrder.Publish(context.Background(), owner, orderCreated{ID: "o", Index: i}, framework.WithKey("o-1")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "the 3 events are handled", func() bool { return sub.Stats().Acked == n })
}
