package framework_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// TestPublishRefusesHeadersSpellingAnEnvelopeKey: header names are
// case-insensitive, so WithHeader("ce-ID", ...) would travel next to
// jetkit's ce-id and a reader could take either. Publish refuses it,
// naming the header, and sends nothing.
func TestPublishRefusesHeadersSpellingAnEnvelopeKey(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	ctx := context.Background()
	for _, key := range []string{"ce-ID", "ce-id", "CE-TYPE", "Ce-Source", "ce-SpecVersion", "CE-TIME",
		"ce-DataContentType", "Content-Type", "nats-msg-id"} {
		_, err := created.Publish(ctx, svc, orderCreated{ID: "o"}, framework.WithHeader(key, "spoofed-id"))
		if !errors.Is(err, framework.ErrInvalidHeader) || !strings.Contains(err.Error(), strconv.Quote(key)) {
			t.Errorf("WithHeader(%q): want ErrInvalidHeader naming the header, got %v", key, err)
		}
	}
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "o"}, framework.WithHeader("ce-subject", "an extension is fine")); err != nil {
		t.Fatalf("a CloudEvents extension header: %v", err)
	}
	if n := streamMsgs(t, svc, "ORDERS"); n != 1 {
		t.Fatalf("ORDERS holds %d messages, want only the valid one", n)
	}
}

// TestPublishRefusesWhatSubscribersRefuse: everything Publish accepts, a
// jetkit subscriber accepts. Too many header values, too many header
// bytes, a CR/LF in a value or an over-long event id are refused at
// publish (errors.Is-matchable, naming the limit) instead of being stored
// and dead-lettered; the largest accepted header set is handled.
func TestPublishRefusesWhatSubscribersRefuse(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "order")
	ctx := context.Background()
	var handled atomic.Int64
	sub, err := framework.Subscribe(ctx, svc, created, "limits", func(context.Context, orderCreated, *framework.Message) error {
		handled.Add(1)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	headers := func(n int, size int) []framework.PublishOption {
		var opts []framework.PublishOption
		for i := range n {
			opts = append(opts, framework.WithHeader("x-h"+strconv.Itoa(i), strings.Repeat("v", size)))
		}
		return opts
	}

	_, err = created.Publish(ctx, svc, orderCreated{ID: "60"}, headers(60, 1)...)
	if !errors.Is(err, framework.ErrInvalidHeader) || !strings.Contains(err.Error(), strconv.Itoa(wire.MaxHeaders)) {
		t.Errorf("60 headers: want ErrInvalidHeader naming the limit %d, got %v", wire.MaxHeaders, err)
	}
	_, err = created.PublishAsync(ctx, svc, orderCreated{ID: "60"}, headers(60, 1)...)
	if !errors.Is(err, framework.ErrInvalidHeader) {
		t.Errorf("PublishAsync with 60 headers: want ErrInvalidHeader, got %v", err)
	}
	_, err = created.Publish(ctx, svc, orderCreated{ID: "40k"}, headers(1, 40<<10)...)
	if !errors.Is(err, framework.ErrInvalidHeader) || !errors.Is(err, framework.ErrMessageTooLarge) ||
		!strings.Contains(err.Error(), strconv.Itoa(wire.MaxHeaderBytes)) {
		t.Errorf("a 40 KiB header: want ErrInvalidHeader and ErrMessageTooLarge naming %d, got %v", wire.MaxHeaderBytes, err)
	}
	for _, v := range []string{"a\r\nce-id: spoofed", "line\nbreak", "cr\r"} {
		_, err = created.Publish(ctx, svc, orderCreated{ID: "crlf"}, framework.WithHeader("x-note", v))
		if !errors.Is(err, framework.ErrInvalidHeader) || !strings.Contains(err.Error(), `"x-note"`) {
			t.Errorf("value %q: want ErrInvalidHeader naming x-note, got %v", v, err)
		}
	}
	_, err = created.Publish(ctx, svc, orderCreated{ID: "long-id"}, framework.WithEventID(strings.Repeat("i", wire.MaxEnvelopeValueLen+1)))
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(wire.MaxEnvelopeValueLen)) {
		t.Errorf("an event id over %d bytes: want an error naming the limit, got %v", wire.MaxEnvelopeValueLen, err)
	}
	if n := streamMsgs(t, svc, "ORDERS"); n != 0 {
		t.Fatalf("ORDERS holds %d refused messages", n)
	}

	// The most application headers Publish takes, and a large header well
	// inside MaxHeaderBytes: both stored and handled, none dead-lettered.
	published := 0
	for n := wire.MaxHeaders; n > 0; n-- {
		if _, err := created.Publish(ctx, svc, orderCreated{ID: "max", Index: n}, headers(n, 1)...); err == nil {
			published++
			break
		} else if !errors.Is(err, framework.ErrInvalidHeader) {
			t.Fatalf("%d headers: %v", n, err)
		}
	}
	if _, err := created.Publish(ctx, svc, orderCreated{ID: "big"}, headers(1, wire.MaxHeaderBytes-2048)...); err != nil {
		t.Fatalf("a header within MaxHeaderBytes: %v", err)
	}
	published++
	testenv.Eventually(t, 10*time.Second, "both settled", func() bool { st := sub.Stats(); return st.Acked+st.DeadLettered == uint64(published) })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "limits", 10*time.Second)
	st := sub.Stats()
	if published != 2 || st.Acked != 2 || handled.Load() != 2 || st.DeadLettered != 0 || st.Retried != 0 {
		t.Fatalf("published %d, stats %+v, handled %d: want every accepted event handled", published, st, handled.Load())
	}
}

type badContentType struct{ framework.Codec }

func (badContentType) ContentType() string { return "application/json\x00" }

// TestTopicRefusesAnEventTypeSubscribersRefuse: the event type travels as
// ce-type, which a subscriber refuses over MaxEnvelopeValueLen or with
// control characters (and nats.go trims surrounding spaces), so the topic
// refuses it when declared.
func TestTopicRefusesAnEventTypeSubscribersRefuse(t *testing.T) {
	for _, typ := range []string{strings.Repeat("t", wire.MaxEnvelopeValueLen+1), "orders\ncreated", " orders.created.v1"} {
		if _, err := framework.NewTopic[orderCreated]("orders.created.v1", framework.EventType(typ)); err == nil || !strings.Contains(err.Error(), "event type") {
			t.Errorf("EventType(%.20q): want an error naming the event type, got %v", typ, err)
		}
	}
	if _, err := framework.NewTopic[orderCreated]("orders.created.v1", framework.WithCodec(badContentType{})); err == nil || !strings.Contains(err.Error(), "content type") {
		t.Errorf("a codec content type with a control character: want an error, got %v", err)
	}
	if _, err := framework.NewTopic[orderCreated]("orders.created.v1", framework.EventType("com.example.order created")); err != nil {
		t.Errorf("a printable event type: %v", err)
	}
}

// TestPublishRefusesASourceSubscribersRefuse: the service name travels as
// ce-source, which a subscriber refuses over MaxEnvelopeValueLen.
func TestPublishRefusesASourceSubscribersRefuse(t *testing.T) {
	// A service name longer than a subscriber accepts in ce-source is
	// refused before anything can be published: at New, naming the variable.
	srv := testenv.Start(t)
	cfg := srv.Config(strings.Repeat("s", wire.MaxEnvelopeValueLen+1))
	_, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.DiscardHandler)))
	if !errors.Is(err, framework.ErrInvalidConfig) || !strings.Contains(err.Error(), "SERVICE_NAME") {
		t.Fatalf("want ErrInvalidConfig naming SERVICE_NAME, got %v", err)
	}
}
