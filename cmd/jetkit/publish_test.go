package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type orderCreated struct {
	OrderID string `json:"order_id"`
	Qty     int    `json:"qty"`
}

// TestPublishCommandDeliversAJetkitEvent publishes with the CLI (literal
// data, a file, stdin) and checks that a jetkit subscriber of the topic
// receives each event with its envelope, key and header.
func TestPublishCommandDeliversAJetkitEvent(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	svc, err := framework.New(ctx, srv.Config("publish-test"), framework.WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()) })
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	topic := framework.MustNewTopic[orderCreated]("orders.created.v1", framework.Keyed())
	var mu sync.Mutex
	got := map[string]*framework.Message{} // event id -> message
	events := map[string]orderCreated{}
	sub, err := framework.Subscribe(ctx, svc, topic, "publish-test", func(ctx context.Context, ev orderCreated, m *framework.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.Envelope.ID], events[m.Envelope.ID] = m, ev
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "order.json")
	if err := os.WriteFile(file, []byte(`{"order_id":"o-2","qty":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ackLine := regexp.MustCompile(`^published event (\S+) \(type orders\.created\.v1\) to orders\.created\.v1\.(o-\d): stream ORDERS sequence (\d+)\n$`)
	ids := map[string]string{} // key -> event id
	for _, c := range []struct{ key, data, stdin string }{
		{key: "o-1", data: `{"order_id":"o-1","qty":1}`},
		{key: "o-2", data: "@" + file},
		{key: "o-3", data: "-", stdin: `{"order_id":"o-3","qty":3}` + "\n"},
	} {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetArgs([]string{"publish", "orders.created.v1", "--url", srv.URL(), "--key", c.key, "--header", "Tenant=acme", c.data})
		root.SetIn(strings.NewReader(c.stdin))
		root.SetOut(&out)
		root.SetErr(&errOut)
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("publish %s: %v %s", c.data, err, errOut.String())
		}
		m := ackLine.FindStringSubmatch(out.String())
		if m == nil || m[2] != c.key {
			t.Fatalf("publish %s printed %q; want the acknowledgement", c.data, out.String())
		}
		ids[m[2]] = m[1]
	}
	testenv.Eventually(t, 10*time.Second, "the subscriber received the 3 events", func() bool { return sub.Stats().Acked == 3 })
	mu.Lock()
	defer mu.Unlock()
	for key, id := range ids {
		m, ev := got[id], events[id]
		if m == nil {
			t.Fatalf("event %s (key %s) not received; got %v", id, key, got)
		}
		if m.Subject != "orders.created.v1."+key || m.Envelope.Type != "orders.created.v1" || m.Envelope.Source != "jetkit-publish" ||
			m.Envelope.Time.IsZero() || m.Header.Get("Tenant") != "acme" || ev.OrderID != key || ev.Qty != int(key[2]-'0') {
			t.Errorf("event %s: subject %s envelope %+v header %v payload %+v", id, m.Subject, m.Envelope, m.Header, ev)
		}
	}
	// Reconcile: 3 published, 3 handled, none dead-lettered.
	if st := sub.Stats(); st.Acked != 3 || st.DeadLettered != 0 || len(ids) != 3 {
		t.Fatalf("published %d, stats %+v", len(ids), st)
	}
}
