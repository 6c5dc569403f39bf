package framework_test

import (
	"context"
	"errors"
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

func streamMsgs(t *testing.T, svc *framework.Service, stream string) uint64 {
	t.Helper()
	st, err := svc.Conn().JS.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPublishSizeCountsHeadersAgainstMaxPayload(t *testing.T) {
	const maxPayload = 4096
	srv := testenv.Start(t, testenv.Options{MaxPayload: maxPayload})
	svc := newService(t, srv, "order")
	ctx := context.Background()
	if got := svc.Conn().NC.MaxPayload(); got != maxPayload {
		t.Fatalf("server max_payload %d, want %d", got, maxPayload)
	}
	// The payload alone fits; with the ~300 bytes of envelope headers it
	// does not, and the server would refuse it: jetkit says so up front.
	note := strings.Repeat("n", maxPayload-100)
	_, err := created.Publish(ctx, svc, orderCreated{ID: "big", Note: note})
	if !errors.Is(err, framework.ErrMessageTooLarge) || !strings.Contains(err.Error(), "headers") || !strings.Contains(err.Error(), strconv.Itoa(maxPayload)) {
		t.Fatalf("want ErrMessageTooLarge naming headers and max_payload %d, got %v", maxPayload, err)
	}
	// Application headers count too.
	_, err = created.Publish(ctx, svc, orderCreated{ID: "hdr"}, framework.WithHeader("x-blob", strings.Repeat("h", maxPayload)))
	if !errors.Is(err, framework.ErrMessageTooLarge) {
		t.Fatalf("want ErrMessageTooLarge for a large header, got %v", err)
	}
	if _, err := created.PublishAsync(ctx, svc, orderCreated{ID: "big", Note: note}); !errors.Is(err, framework.ErrMessageTooLarge) {
		t.Fatalf("PublishAsync: want ErrMessageTooLarge, got %v", err)
	}
	// An invalid header key is refused before sending.
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "k"}, framework.WithHeader("bad key:", "v")); err == nil || !strings.Contains(err.Error(), "header key") {
		t.Fatalf("want a header key error, got %v", err)
	}
	// Something that fits is stored; nothing else was.
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "fits", Note: strings.Repeat("n", maxPayload/2)}); err != nil {
		t.Fatalf("publish within the limit: %v", err)
	}
	if n := streamMsgs(t, svc, "ORDERS"); n != 1 {
		t.Fatalf("ORDERS holds %d messages, want 1", n)
	}
}

func TestPublishOverStreamMaxMsgSizeIsMessageTooLarge(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	ctx := context.Background()
	small := framework.StreamSpec{Name: "SMALL", Subjects: []string{"small.>"}, MaxMsgSize: 1024}
	if _, err := svc.EnsureStream(ctx, small); err != nil {
		t.Fatal(err)
	}
	topic := framework.MustNewTopic[orderCreated]("small.created.v1")
	_, err := topic.Publish(ctx, svc, orderCreated{ID: "x", Note: strings.Repeat("n", 2048)})
	if !errors.Is(err, framework.ErrMessageTooLarge) {
		t.Fatalf("want ErrMessageTooLarge from the stream's MaxMsgSize, got %v", err)
	}
}

// countingCodec is JSON that counts Unmarshal calls, to prove the limits
// reject a payload before the decoder sees it.
type countingCodec struct{ calls *atomic.Int64 }

func (countingCodec) ContentType() string { return "application/json" }

func (c countingCodec) Marshal(v any) ([]byte, error) { return framework.JSON.Marshal(v) }

func (c countingCodec) Unmarshal(data []byte, v any) error {
	c.calls.Add(1)
	return framework.JSON.Unmarshal(data, v)
}

type blob struct {
	Items any `json:"items"`
}

// TestBoundedDecode checks that a huge, deeply nested or value-heavy
// payload is dead-lettered without being decoded, and that ordinary ones
// still are.
func TestBoundedDecode(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{MaxPayload: 12 << 20})
	svc := newService(t, srv, "order")
	ctx := context.Background()
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "BLOBS", Subjects: []string{"blobs.>"}}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	defaults := framework.MustNewTopic[blob]("blobs.default.v1", framework.WithCodec(countingCodec{&calls}), framework.WithDecodeLimits(framework.DecodeLimits{}))
	tight := framework.MustNewTopic[blob]("blobs.tight.v1", framework.WithCodec(countingCodec{&calls}), framework.WithDecodeLimits(framework.DecodeLimits{MaxBytes: 4096, MaxDepth: 8, MaxValues: 100}))
	var handled atomic.Int64
	h := func(context.Context, blob, *framework.Message) error { handled.Add(1); return nil }
	subA, err := framework.Subscribe(ctx, svc, defaults, "a", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	subB, err := framework.Subscribe(ctx, svc, tight, "b", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	js := svc.Conn().JS
	raw := func(subject, id, data string) {
		t.Helper()
		h := envelope(id, map[string]string{"ce-type": subject}) // the topic's event type is its subject
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: []byte(data)}); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	// Default limits: 9 MiB is over the 8 MiB default; 10,000 levels of
	// nesting is over 64 (encoding/json alone would accept it).
	raw("blobs.default.v1", "huge", `{"items":"`+strings.Repeat("x", 9<<20)+`"}`)
	raw("blobs.default.v1", "deep", `{"items":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}`)
	raw("blobs.default.v1", "fine", `{"items":[1,2,3]}`)
	// Tight limits: each bound separately.
	raw("blobs.tight.v1", "big", `{"items":"`+strings.Repeat("x", 5000)+`"}`)
	raw("blobs.tight.v1", "nested", `{"items":[[[[[[[[[[1]]]]]]]]]]}`)
	raw("blobs.tight.v1", "many", `{"items":[`+strings.Repeat("0,", 200)+`0]}`)
	raw("blobs.tight.v1", "ok", `{"items":{"a":[1,2],"b":"[[[[[[[[[[ in a string is not nesting"}}`)

	testenv.Eventually(t, 20*time.Second, "all settled", func() bool {
		a, b := subA.Stats(), subB.Stats()
		return a.Acked+a.DeadLettered == 3 && b.Acked+b.DeadLettered == 4
	})
	testenv.WaitConsumerIdle(t, js, "BLOBS", "a", 10*time.Second)
	testenv.WaitConsumerIdle(t, js, "BLOBS", "b", 10*time.Second)
	if a, b := subA.Stats(), subB.Stats(); a.Acked != 1 || a.DeadLettered != 2 || b.Acked != 1 || b.DeadLettered != 3 {
		t.Fatalf("stats a=%+v b=%+v", a, b)
	}
	if c := calls.Load(); c != 2 {
		t.Fatalf("decoder ran %d times, want only for the 2 acceptable payloads", c)
	}
	want := map[string]string{
		"blobs.default.v1/huge": "over the decode limit of 8388608", "blobs.default.v1/deep": "nested deeper than 64",
		"blobs.tight.v1/big": "over the decode limit of 4096", "blobs.tight.v1/nested": "nested deeper than 8",
		"blobs.tight.v1/many": "more than 100 values",
	}
	for _, dl := range deadLetters(t, svc) {
		key := dl.Header.Get(wire.HeaderDLQSubject) + "/" + dl.Header.Get("ce-id")
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected dead letter %s: %s", key, dl.Header.Get(wire.HeaderDLQError))
			continue
		}
		delete(want, key)
		if e := dl.Header.Get(wire.HeaderDLQError); !strings.Contains(e, w) {
			t.Errorf("%s: error %q does not contain %q", key, e, w)
		}
	}
	for k := range want {
		t.Errorf("%s not dead-lettered", k)
	}
}

// TestDeadLetterOfAMessageAtMaxPayloadFits checks that a message that
// used the whole max_payload can still be dead-lettered (the copy adds
// reason headers): the copy is cut to fit and says so, instead of the
// dead-letter publish failing and the message being retried forever.
func TestDeadLetterOfAMessageAtMaxPayloadFits(t *testing.T) {
	const maxPayload = 8192
	srv := testenv.Start(t, testenv.Options{MaxPayload: maxPayload})
	svc := newService(t, srv, "order")
	sub, err := framework.Subscribe(t.Context(), svc, created, "inventory", func(context.Context, orderCreated, *framework.Message) error {
		return framework.Permanent(errors.New("rejected by the handler"))
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	full := func(id string, edits map[string]string) *nats.Msg {
		m := &nats.Msg{Subject: "orders.created.v1", Header: envelope(id, edits)}
		hdrSize := m.Size() - len(m.Subject)
		prefix := `{"id":"` + id + `","note":"`
		m.Data = []byte(prefix + strings.Repeat("n", maxPayload-hdrSize-len(prefix)-2) + `"}`)
		if _, err := svc.Conn().JS.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish %s at max_payload: %v", id, err)
		}
		return m
	}
	// Dropping its big application header is enough to fit.
	full("app-header", map[string]string{"x-app": strings.Repeat("a", 1000)})
	// Only envelope headers: the payload has to be cut.
	orig := full("payload", nil)
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "small"}, framework.WithEventID("small")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "all dead-lettered", func() bool { return sub.Stats().DeadLettered == 3 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "inventory", 10*time.Second)
	if st := sub.Stats(); st.DeadLetterFailed != 0 || st.Acked+st.DeadLettered != 3 {
		t.Fatalf("stats %+v", st)
	}
	got := map[string]*nats.Msg{}
	for _, dl := range deadLetters(t, svc) {
		if dl.Header.Get(wire.HeaderDLQReason) != wire.ReasonPermanent || !strings.Contains(dl.Header.Get(wire.HeaderDLQError), "rejected") {
			t.Errorf("dead letter lost its reason: %v", dl.Header)
		}
		got[dl.Header.Get("ce-id")] = dl
	}
	if dl := got["app-header"]; dl == nil || dl.Header.Get(wire.HeaderDLQHeadersDropped) != "1" || dl.Header.Get("x-app") != "" ||
		dl.Header.Get(wire.HeaderDLQTruncated) != "" {
		t.Errorf("app-header dead letter: want x-app dropped and the payload whole, got %v", dl)
	}
	if dl := got["payload"]; dl == nil || dl.Header.Get(wire.HeaderDLQTruncated) != strconv.Itoa(len(orig.Data)) ||
		len(dl.Data) >= len(orig.Data) || !strings.HasPrefix(string(orig.Data), string(dl.Data)) {
		t.Errorf("payload dead letter: want a cut payload marked with its original size, got %v", dl)
	}
	if dl := got["small"]; dl == nil || dl.Header.Get(wire.HeaderDLQHeadersDropped) != "" || dl.Header.Get(wire.HeaderDLQTruncated) != "" {
		t.Errorf("a small dead letter was cut: %v", dl)
	}
}

func TestTopicDecodeGivesUntypedHandlersTheSameChecks(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	var decoded atomic.Int64
	sub, err := framework.SubscribeHandler(t.Context(), svc, "orders.>", "raw", framework.HandlerFunc(func(_ context.Context, m *framework.Message) error {
		if _, err := created.Decode(m); err != nil {
			return err
		}
		decoded.Add(1)
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []*nats.Msg{
		{Subject: "orders.created.v1", Header: envelope("deep", nil), Data: []byte(`{"note":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)},
		{Subject: "orders.created.v1", Header: envelope("xml", map[string]string{"content-type": "text/xml"}), Data: []byte(`<x/>`)},
		{Subject: "orders.created.v1", Header: envelope("fine", nil), Data: []byte(`{"id":"a","qty":1}`)},
	} {
		if _, err := svc.Conn().JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "all settled", func() bool { st := sub.Stats(); return st.Acked+st.DeadLettered == 3 })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "raw", 10*time.Second)
	if st := sub.Stats(); st.Acked != 1 || st.DeadLettered != 2 || st.Retried != 0 || decoded.Load() != 1 {
		t.Fatalf("stats %+v, decoded %d", st, decoded.Load())
	}
	for _, dl := range deadLetters(t, svc) {
		if dl.Header.Get(wire.HeaderDLQReason) != wire.ReasonDecode {
			t.Errorf("reason %q: %s", dl.Header.Get(wire.HeaderDLQReason), dl.Header.Get(wire.HeaderDLQError))
		}
	}
}
