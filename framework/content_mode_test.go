package framework_test

import (
	"context"
	"encoding/base64"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// received collects what a handler saw, by event id.
type received struct {
	mu  sync.Mutex
	evs map[string]orderCreated
	ms  map[string]*framework.Message
}

func (r *received) add(ev orderCreated, m *framework.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.evs == nil {
		r.evs, r.ms = map[string]orderCreated{}, map[string]*framework.Message{}
	}
	r.evs[m.Envelope.ID], r.ms[m.Envelope.ID] = ev, m
}

func (r *received) get(id string) (orderCreated, *framework.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.evs[id], r.ms[id]
}

// TestStructuredModeIsAccepted: CloudEvents in structured mode (the JSON
// event format in the payload) are handled like binary-mode events, with
// the content-type header application/cloudevents+json or, as the
// CloudEvents SDKs send them over NATS, without any header; data may be
// JSON or base64.
func TestStructuredModeIsAccepted(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var got received
	sub, err := framework.Subscribe(t.Context(), svc, created, "structured", func(_ context.Context, ev orderCreated, m *framework.Message) error {
		got.add(ev, m)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(`{"id":"o-2","qty":2}`))
	msgs := []*nats.Msg{
		{Header: nats.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
			Data: []byte(`{"specversion":"1.0","id":"st-1","type":"orders.created.v1","source":"/sdk/go","time":"2026-11-27T10:00:00Z",` +
				`"datacontenttype":"application/json","subject":"ext-is-ignored","data":{"id":"o-1","qty":1}}`)},
		{Header: nats.Header{"content-type": {"application/cloudevents+json"}},
			Data: []byte(`{"specversion":"1.0","id":"st-2","type":"orders.created.v1","source":"/sdk/go","datacontenttype":"application/json","data_base64":"` + b64 + `"}`)},
		{Data: []byte(` {"data":{"id":"o-3","qty":3},"specversion":"1.0","id":"st-3","type":"orders.created.v1","source":"/sdk/go"}`)},
	}
	ctx := context.Background()
	for _, m := range msgs {
		m.Subject = "orders.created.v1"
		if _, err := svc.Conn().JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "all settled", func() bool { st := sub.Stats(); return st.Acked+st.DeadLettered == uint64(len(msgs)) })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "structured", 10*time.Second)
	if st := sub.Stats(); st.Acked != uint64(len(msgs)) || st.DeadLettered != 0 || st.Retried != 0 {
		t.Fatalf("stats %+v: want all %d handled", st, len(msgs))
	}
	for i, want := range []orderCreated{{ID: "o-1", Qty: 1}, {ID: "o-2", Qty: 2}, {ID: "o-3", Qty: 3}} {
		id := "st-" + strconv.Itoa(i+1)
		ev, m := got.get(id)
		if m == nil || ev != want {
			t.Fatalf("event %s: got %+v, want %+v", id, ev, want)
		}
		if m.Envelope.Type != "orders.created.v1" || m.Envelope.Source != "/sdk/go" || m.Envelope.SpecVersion != "1.0" {
			t.Errorf("event %s: envelope %+v", id, m.Envelope)
		}
	}
	if _, m := got.get("st-1"); !m.Envelope.Time.Equal(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)) || m.Envelope.ContentType != "application/json" {
		t.Errorf("st-1: envelope %+v", m.Envelope)
	}
}

// TestAllowMissingEnvelope: with AllowMissingEnvelope a subscription
// handles messages from producers that write no CloudEvents envelope,
// their id taken from Nats-Msg-Id or else the stream sequence and their
// type from the topic (the subject for SubscribeHandler); an incomplete
// envelope is still malformed, and enveloped events keep their envelope.
func TestAllowMissingEnvelope(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var typed, untyped received
	sub, err := framework.Subscribe(t.Context(), svc, created, "bare", func(_ context.Context, ev orderCreated, m *framework.Message) error {
		typed.add(ev, m)
		return nil
	}, &framework.SubscribeOptions{AllowMissingEnvelope: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := framework.SubscribeHandler(t.Context(), svc, "orders.>", "bare-raw", framework.HandlerFunc(func(_ context.Context, m *framework.Message) error {
		ev, err := created.Decode(m)
		if err != nil {
			return err
		}
		untyped.add(ev, m)
		return nil
	}), &framework.SubscribeOptions{AllowMissingEnvelope: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	js := svc.Conn().JS
	ok := []byte(`{"id":"o-1","qty":1}`)
	bare, err := js.PublishMsg(ctx, &nats.Msg{Subject: "orders.created.v1", Data: ok})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*nats.Msg{
		{Header: nats.Header{nats.MsgIdHdr: {"producer-7"}}, Data: ok},
		{Header: nats.Header{"Content-Type": {"application/json"}, nats.MsgIdHdr: {"with-ct"}}, Data: ok},
		{Header: nats.Header{"content-type": {"text/plain"}, nats.MsgIdHdr: {"text"}}, Data: []byte("o-1")},
		{Header: nats.Header{"ce-id": {"half"}}, Data: ok},
		{Data: []byte(`{"specversion":"1.0","id":"sdk-1","type":"orders.created.v1","source":"/sdk","data":{"id":"o-1","qty":1}}`)},
	} {
		m.Subject = "orders.created.v1"
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "o-1", Qty: 1}, framework.WithEventID("jetkit-1")); err != nil {
		t.Fatal(err)
	}
	const published, valid = 7, 5
	for _, s := range []*framework.Subscription{sub, raw} {
		testenv.Eventually(t, 10*time.Second, "all settled", func() bool { st := s.Stats(); return st.Acked+st.DeadLettered == published })
	}
	testenv.WaitConsumerIdle(t, js, "ORDERS", "bare", 10*time.Second)
	testenv.WaitConsumerIdle(t, js, "ORDERS", "bare-raw", 10*time.Second)
	for _, s := range []*framework.Subscription{sub, raw} {
		if st := s.Stats(); st.Acked != valid || st.DeadLettered != published-valid || st.Retried != 0 {
			t.Fatalf("stats %+v: want %d handled and %d dead-lettered (text/plain, incomplete envelope)", st, valid, published-valid)
		}
	}
	seqID := strconv.FormatUint(bare.Sequence, 10)
	for id, wantType := range map[string]string{seqID: "orders.created.v1", "producer-7": "orders.created.v1", "with-ct": "orders.created.v1"} {
		ev, m := typed.get(id)
		if m == nil || ev.ID != "o-1" || m.Envelope.Type != wantType || m.Envelope.SpecVersion != "" {
			t.Errorf("typed, event %s: %+v %+v", id, ev, m)
		}
		if _, m := untyped.get(id); m == nil || m.Envelope.Type != m.Subject {
			t.Errorf("untyped, event %s: want the subject as type, got %+v", id, m)
		}
	}
	if _, m := typed.get(seqID); m == nil || !m.Envelope.Time.Equal(m.Timestamp) {
		t.Errorf("a bare message's time is when the stream stored it: %+v", m)
	}
	for _, id := range []string{"sdk-1", "jetkit-1"} {
		if _, m := typed.get(id); m == nil || m.Envelope.SpecVersion != "1.0" {
			t.Errorf("event %s: want its own envelope, got %+v", id, m)
		}
	}
	dls := deadLetters(t, svc)
	if len(dls) != 2*(published-valid) {
		t.Fatalf("%d dead letters, want %d", len(dls), 2*(published-valid))
	}
}
