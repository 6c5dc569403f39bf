package framework

import (
	"strings"
	"testing"
	"time"
)

// A nil *SubscribeOptions and a zero one mean the same: Config's
// defaults. A set field wins; the caller's Middleware slice is copied, so
// changing it after Subscribe changes nothing.
func TestSubscribeOptionsZeroMeansConfigDefaults(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Concurrency, cfg.AckMode, cfg.AckWait, cfg.MaxDeliver = 3, AckModeSync, 7*time.Second, 9
	fromNil, fromZero := subOptionsFrom(cfg, nil), subOptionsFrom(cfg, &SubscribeOptions{})
	for _, o := range []subOptions{fromNil, fromZero} {
		if err := o.finish(); err != nil {
			t.Fatal(err)
		}
		if o.concurrency != 3 || o.ackMode != AckModeSync || o.ackWait != 7*time.Second || o.maxDeliver != 9 ||
			o.maxHandlerTime != cfg.MaxHandlerTime || !o.autoPrefetch || o.backoff != redeliveryBackoff(cfg) {
			t.Fatalf("defaults not taken from Config: %+v", o)
		}
	}

	noop := func(h Handler) Handler { return h }
	mws := []Middleware{noop}
	user := &SubscribeOptions{Concurrency: 5, AckMode: AckModeAsync, AckWait: time.Second, MaxDeliver: 2, Prefetch: 10,
		RetryBackoff: Backoff{Initial: time.Millisecond}, Middleware: mws, Partitioned: true, Stream: "ORDERS"}
	o := subOptionsFrom(cfg, user)
	mws[0] = nil
	if err := o.finish(); err != nil {
		t.Fatal(err)
	}
	if o.concurrency != 5 || o.ackMode != AckModeAsync || o.ackWait != time.Second || o.maxDeliver != 2 || o.prefetch != 10 || o.autoPrefetch ||
		o.backoff.Initial != time.Millisecond || o.backoff.Max != cfg.RetryMax || !o.partitioned || !o.orderedByKey || o.stream != "ORDERS" {
		t.Fatalf("fields not applied (Partitioned implies OrderedByKey; zero Backoff fields from Config): %+v", o)
	}
	if o.middleware[0] == nil {
		t.Fatal("the subscription shares the caller's Middleware slice")
	}

	bad := subOptionsFrom(cfg, &SubscribeOptions{Concurrency: -1, AckWait: time.Millisecond, MaxHandlerTime: time.Millisecond, Prefetch: -2})
	err := bad.finish()
	for _, want := range []string{"Concurrency -1", "AckWait 1ms", "MaxHandlerTime 1ms", "Prefetch -2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}
