package framework

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestSubjectCovers(t *testing.T) {
	for _, tc := range []struct {
		filter, sub string
		want        bool
	}{
		{"orders.>", "orders.>", true},
		{"orders.>", "orders.created.v1.>", true},
		{"orders.>", "orders.created.v1", true},
		{"orders.>", "orders", false},
		{"orders.created.v1.>", "orders.>", false},
		{"orders.*.v1", "orders.created.v1", true},
		{"orders.*.v1", "orders.*.v1", true},
		{"orders.created.v1", "orders.*.v1", false},
		{"orders.*", "orders.>", false},
		{"orders.created.v1", "orders.created.v1", true},
		{"orders.created.v1", "orders.created.v1.x", false},
		{">", "anything.at.all", true},
	} {
		if got := subjectCovers(tc.filter, tc.sub); got != tc.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tc.filter, tc.sub, got, tc.want)
		}
	}
}

func TestStreamDiffsTellNarrowingFromWidening(t *testing.T) {
	have := jetstream.StreamConfig{Subjects: []string{"orders.>"}, MaxAge: time.Hour, MaxBytes: -1, MaxMsgs: 100, MaxMsgSize: -1, Duplicates: 2 * time.Minute, Replicas: 3}
	for _, tc := range []struct {
		name    string
		edit    func(*jetstream.StreamConfig)
		narrows bool
	}{
		{"Subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"orders.created.v1.>"} }, true},
		{"Subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"orders.>", "refunds.>"} }, false},
		{"MaxAge", func(c *jetstream.StreamConfig) { c.MaxAge = time.Minute }, true},
		{"MaxAge", func(c *jetstream.StreamConfig) { c.MaxAge = 0 }, false},
		{"MaxBytes", func(c *jetstream.StreamConfig) { c.MaxBytes = 1 << 20 }, true},
		{"MaxMsgs", func(c *jetstream.StreamConfig) { c.MaxMsgs = -1 }, false},
		{"MaxMsgs", func(c *jetstream.StreamConfig) { c.MaxMsgs = 10 }, true},
		{"Duplicates", func(c *jetstream.StreamConfig) { c.Duplicates = time.Minute }, true},
		{"Replicas", func(c *jetstream.StreamConfig) { c.Replicas = 1 }, true},
		{"Replicas", func(c *jetstream.StreamConfig) { c.Replicas = 5 }, false},
	} {
		want := have
		tc.edit(&want)
		d := streamDiffs(have, want)
		if len(d) != 1 || d[0].field != tc.name || d[0].narrows != tc.narrows {
			t.Errorf("%s change: diffs %+v, want one on %s with narrows=%v", tc.name, d, tc.name, tc.narrows)
		}
	}
	if d := streamDiffs(have, have); len(d) != 0 {
		t.Errorf("identical configs differ: %+v", d)
	}
}
