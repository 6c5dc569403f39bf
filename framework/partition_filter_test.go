package framework_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// shopNotes is a second keyed topic of the partitioned SHOP stream.
var shopNotes = framework.MustNewTopic[keyedEvent]("shop.note.v1", framework.Keyed())

// A Partitioned SubscribeHandler over shop.*.v1.* reads both keyed topics
// of the stream; each key's events alternate between them. Two instances
// share the partitions and one leaves midway: every key's events, whatever
// their topic, run one at a time in publish order, none is lost.
func TestPartitionedFilterOrdersAKeysEventsAcrossTopics(t *testing.T) {
	const keys, perKey = 40, 40
	srv := testenv.Start(t)
	check := newOrderChecker()
	typed := shopHandler(check, 5*time.Millisecond)
	h := framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
		var ev keyedEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return framework.Permanent(err)
		}
		return typed(ctx, ev, m)
	})
	start := func(name string) instance {
		svc := newService(t, srv, name)
		ensureShop(t, svc)
		sub, err := framework.SubscribeHandler(t.Context(), svc, "shop.*.v1.*", "auditor", h, &framework.SubscribeOptions{Partitioned: true, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		return instance{svc, sub}
	}
	a, b := start("fa"), start("fb")
	testenv.Eventually(t, 10*time.Second, "a and b share the partitions", func() bool {
		return coverExactly(a, b) && len(a.sub.Partitions()) > 0 && len(b.sub.Partitions()) > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range perKey {
		topic := shopSteps
		if i%2 == 1 {
			topic = shopNotes
		}
		for k := range keys {
			key := "k" + strconv.Itoa(k)
			if _, err := topic.PublishAsync(ctx, a.svc, keyedEvent{Key: key, Index: i}, framework.WithKey(key)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.svc.Conn().FlushAsync(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "a third handled", func() bool { return check.settled() >= keys*perKey/3 })
	if err := a.svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "b takes every partition", func() bool { return coverExactly(b) })
	if err := testenv.WaitFor(ctx, 40*time.Second, func() bool { return check.settled() == keys*perKey }); err != nil {
		t.Fatalf("%d of %d events settled; problems %v", check.settled(), keys*perKey, check.problems)
	}
	check.check(t, keys, perKey)
	if got := a.sub.Stats().Acked + b.sub.Stats().Acked; got < keys*perKey {
		t.Errorf("acked %d, want %d", got, keys*perKey)
	}
}

// Partitioned refuses a filter whose last token is not the key, or whose
// keys are not the fourth token, naming the filter.
func TestPartitionedRefusesFiltersWithoutTheKey(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "pfilters")
	ensureShop(t, svc)
	nop := framework.HandlerFunc(func(context.Context, *framework.Message) error { return nil })
	for filter, want := range map[string]string{
		"shop.>":        "is neither",
		"shop.*.>":      "is neither",
		"shop.step.*":   "four tokens",
		"shop.*.v1.x.*": "four tokens",
	} {
		_, err := framework.SubscribeHandler(t.Context(), svc, filter, "p", nop, &framework.SubscribeOptions{Partitioned: true})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), filter) {
			t.Errorf("filter %s: err = %v, want one naming it and saying %q", filter, err, want)
		}
	}
	if n := len(svc.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions left running", n)
	}
}
