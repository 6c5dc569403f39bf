package framework_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// envelope returns valid CloudEvents headers for orders.created.v1 with
// edits applied: a value of "-" deletes the key.
func envelope(id string, edits map[string]string) nats.Header {
	h := nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-type": {"orders.created.v1"},
		"ce-source": {"raw-test"}, "ce-time": {"2026-11-27T10:00:00Z"}, "content-type": {"application/json"},
	}
	for k, v := range edits {
		if v == "-" {
			delete(h, k)
			continue
		}
		h[k] = []string{v}
	}
	return h
}

type untrustedCase struct {
	name    string
	header  nats.Header
	data    string
	wantErr string // substring of Jetkit-Dlq-Error; "" means the message is valid
}

func untrustedCases() []untrustedCase {
	ok := `{"id":"o-1","qty":1}`
	manyHeaders := envelope("many-headers", nil)
	for i := range 100 {
		manyHeaders["X-Junk-"+strconv.Itoa(i)] = []string{"x"}
	}
	twoIDs := envelope("two-ids", nil)
	twoIDs["ce-id"] = []string{"two-ids", "spoofed-id"}
	structured := nats.Header{"content-type": {"application/cloudevents+json"}}
	bothModes := envelope("both-modes", map[string]string{"content-type": "application/cloudevents+json"})
	return []untrustedCase{
		{"valid", envelope("valid-1", nil), ok, ""},
		{"content-type with charset", envelope("ct-params", map[string]string{"content-type": "application/json; charset=utf-8"}), ok, ""},
		{"no content-type (CloudEvents default)", envelope("ct-none", map[string]string{"content-type": "-"}), ok, ""},
		{"no envelope at all", nil, ok, "missing header ce-specversion"},
		{"other spec version", envelope("v03", map[string]string{"ce-specversion": "0.3"}), ok, `"0.3"`},
		{"missing ce-id", envelope("", map[string]string{"ce-id": "-"}), ok, "missing header ce-id"},
		{"missing ce-type", envelope("no-type", map[string]string{"ce-type": "-"}), ok, "missing header ce-type"},
		{"missing ce-source", envelope("no-source", map[string]string{"ce-source": "-"}), ok, "missing header ce-source"},
		{"invalid ce-time", envelope("bad-time", map[string]string{"ce-time": "yesterday"}), ok, "RFC 3339"},
		{"wrong content-type", envelope("xml", map[string]string{"content-type": "application/xml"}), "<order/>", `content-type "application/xml"`},
		{"invalid UTF-8 payload", envelope("utf8-payload", nil), "{\"id\":\"\xff\xfe\",\"qty\":1}", "not valid UTF-8"},
		{"invalid UTF-8 ce-source", envelope("utf8-source", map[string]string{"ce-source": "svc-\xff"}), ok, "not valid UTF-8"},
		{"control character in ce-id", envelope("ctl\x01id", nil), ok, "non-printable"},
		{"oversized ce-source", envelope("long-source", map[string]string{"ce-source": strings.Repeat("s", 2000)}), ok, "over the limit"},
		{"truncated payload", envelope("truncated", nil), `{"id":"o-1","qty":`, "unexpected end of JSON"},
		{"empty payload", envelope("empty", nil), "", "unexpected end of JSON"},
		{"wrong shape", envelope("shape", nil), `{"id":"o-1","qty":"many"}`, "cannot unmarshal"},
		{"wrong event type on subject", envelope("wrong-type", map[string]string{"ce-type": "payments.settled.v1"}), ok, `event type "payments.settled.v1"`},
		{"too many headers", manyHeaders, ok, "header values"},
		{"deep nesting", envelope("deep", nil), `{"note":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, "nested deeper than 64"},
		// Header names are case-insensitive: two spellings (or two values)
		// of one envelope header are ambiguous, whichever a reader takes.
		{"ce-id spelled twice", envelope("dup-id", map[string]string{"CE-ID": "spoofed-id"}), ok, "case-insensitive"},
		{"content-type spelled twice", envelope("dup-ct", map[string]string{"Content-Type": "application/json"}), ok, "case-insensitive"},
		{"ce-id with two values", twoIDs, ok, "2 values"},
		// The binding's binary mode carries datacontenttype as ce-datacontenttype.
		{"ce-datacontenttype only (CloudEvents SDK)", envelope("sdk-json", map[string]string{"content-type": "-", "ce-datacontenttype": "application/json"}), ok, ""},
		{"ce-datacontenttype XML over a JSON body", envelope("sdk-xml", map[string]string{"content-type": "-", "ce-datacontenttype": "application/xml"}), ok, `"application/xml"`},
		{"ce-datacontenttype and content-type disagree", envelope("ct-disagree", map[string]string{"ce-datacontenttype": "application/xml"}), ok, "disagree"},
		// Structured mode: the JSON event format in the payload.
		{"structured", structured, `{"specversion":"1.0","id":"st-1","type":"orders.created.v1","source":"sdk","data":{"id":"o-1","qty":1}}`, ""},
		{"structured without specversion", structured, `{"id":"st-nosv","type":"orders.created.v1","source":"sdk","data":{}}`, "missing attribute specversion"},
		{"structured without id", structured, `{"specversion":"1.0","type":"orders.created.v1","source":"sdk","data":{"id":"o-1","qty":1}}`, "missing attribute id"},
		{"structured id twice", structured, `{"specversion":"1.0","id":"a","id":"b","type":"orders.created.v1","source":"sdk","data":{"id":"o-1"}}`, `attribute "id" appears twice`},
		{"structured XML data", structured, `{"specversion":"1.0","id":"st-xml","type":"orders.created.v1","source":"sdk","datacontenttype":"application/xml","data":"<order/>"}`, `content-type "application/xml"`},
		{"structured batch", nats.Header{"content-type": {"application/cloudevents-batch+json"}}, `[{"specversion":"1.0"}]`, "batch"},
		{"binary headers and a structured content-type", bothModes, `{"specversion":"1.0","id":"x","type":"orders.created.v1","source":"sdk","data":{}}`, "both"},
	}
}

// TestUntrustedInputIsDeadLetteredAndTheWorkerKeepsGoing publishes every
// kind of malformed message between valid ones, then checks that each bad
// one is dead-lettered once with reason "decode" and a precise error, that
// nothing was retried or crashed the worker, that the worker still
// consumes afterwards, and that published = acked + dead-lettered.
func TestUntrustedInputIsDeadLetteredAndTheWorkerKeepsGoing(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var handled atomic.Int64
	sub, err := framework.Subscribe(t.Context(), svc, created, "untrusted", func(_ context.Context, ev orderCreated, _ *framework.Message) error {
		if ev.ID == "" {
			return fmt.Errorf("handler got an undecoded event")
		}
		handled.Add(1)
		return nil
	}, &framework.SubscribeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	js := svc.Conn().JS
	cases := untrustedCases()
	wantErr := map[uint64]untrustedCase{} // by stream sequence
	valid := 0
	for _, c := range cases {
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: "orders.created.v1", Header: c.header, Data: []byte(c.data)})
		if err != nil {
			t.Fatalf("%s: publish: %v", c.name, err)
		}
		if c.wantErr == "" {
			valid++
		} else {
			wantErr[ack.Sequence] = c
		}
	}
	published := len(cases)
	testenv.Eventually(t, 20*time.Second, "every message settled", func() bool {
		st := sub.Stats()
		return st.Acked+st.DeadLettered == uint64(published)
	})

	// The worker is still consuming: a valid event after all the garbage.
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "after", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	published++
	valid++
	testenv.Eventually(t, 10*time.Second, "the event after the garbage handled", func() bool { return handled.Load() == int64(valid) })
	testenv.WaitConsumerIdle(t, js, "ORDERS", "untrusted", 10*time.Second)

	st := sub.Stats()
	if st.Acked != uint64(valid) || st.DeadLettered != uint64(len(wantErr)) || st.Retried != 0 || st.DeadLetterFailed != 0 {
		t.Fatalf("stats %+v, want %d acked and %d dead-lettered, none retried", st, valid, len(wantErr))
	}
	if st.Acked+st.DeadLettered != uint64(published) {
		t.Fatalf("reconciliation: published %d != acked %d + dead-lettered %d", published, st.Acked, st.DeadLettered)
	}
	dls := deadLetters(t, svc)
	if len(dls) != len(wantErr) {
		t.Fatalf("dead-letter stream holds %d messages, want %d", len(dls), len(wantErr))
	}
	for _, dl := range dls {
		seq, _ := strconv.ParseUint(dl.Header.Get(wire.HeaderDLQStreamSeq), 10, 64)
		c, ok := wantErr[seq]
		if !ok {
			t.Errorf("unexpected dead letter for stream seq %d: %s", seq, dl.Header.Get(wire.HeaderDLQError))
			continue
		}
		delete(wantErr, seq)
		if r := dl.Header.Get(wire.HeaderDLQReason); r != wire.ReasonDecode {
			t.Errorf("%s: reason %q, want decode", c.name, r)
		}
		if e := dl.Header.Get(wire.HeaderDLQError); !strings.Contains(e, c.wantErr) {
			t.Errorf("%s: dead-letter error %q does not contain %q", c.name, e, c.wantErr)
		}
		if d := dl.Header.Get(wire.HeaderDLQDelivered); d != "1" {
			t.Errorf("%s: dead-lettered after %s deliveries, want at once", c.name, d)
		}
		if dl.Header.Get(wire.HeaderDLQSubject) != "orders.created.v1" || string(dl.Data) != c.data {
			t.Errorf("%s: dead letter does not carry the original subject and payload", c.name)
		}
	}
	for _, c := range wantErr {
		t.Errorf("%s: not dead-lettered", c.name)
	}
}
