package framework

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// sendOnce answers as jetstream.PublishMsg does: the PubAck with its
// duplicate flag, the server's API error, ErrNoStreamResponse without a
// stream, ErrInvalidJSAck for a reply that is not a PubAck.
func TestSendOnceAnswersAsJetStreamPublishDoes(t *testing.T) {
	c := guardTestConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "SEND", Subjects: []string{"send.>"}, MaxMsgSize: 512}); err != nil {
		t.Fatal(err)
	}
	msg := func(subject, id string, size int) *nats.Msg {
		return &nats.Msg{Subject: subject, Data: make([]byte, size), Header: nats.Header{wire.HeaderMsgID: {id}}}
	}

	first, err := c.sendOnce(ctx, msg("send.a", "id-1", 10))
	if err != nil || first.Stream != "SEND" || first.Sequence != 1 || first.Duplicate {
		t.Fatalf("first send: %+v, %v", first, err)
	}
	again, err := c.sendOnce(ctx, msg("send.a", "id-1", 10))
	if err != nil || !again.Duplicate || again.Sequence != 1 {
		t.Fatalf("same id again: %+v, %v; want the duplicate of sequence 1", again, err)
	}
	want, wantErr := c.JS.PublishMsg(ctx, msg("send.a", "id-2", 10))
	got, err := c.sendOnce(ctx, msg("send.a", "id-2", 10))
	if wantErr != nil || err != nil || got.Stream != want.Stream || got.Sequence != want.Sequence || want.Duplicate || !got.Duplicate {
		t.Fatalf("sendOnce %+v (%v), jetstream %+v (%v)", got, err, want, wantErr)
	}

	_, err = c.sendOnce(ctx, msg("send.big", "id-3", 1024)) // over the stream's MaxMsgSize
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode == 0 || !isStreamMsgTooLarge(err) {
		t.Fatalf("oversized message: %v, want the server's API error (message too large)", err)
	}
	if _, err := c.sendOnce(ctx, msg("nostream.a", "id-4", 10)); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("no stream: %v, want ErrNoStreamResponse", err)
	}

	sub, err := c.NC.Subscribe("plain.echo", func(m *nats.Msg) { _ = m.Respond([]byte(`{"hello":"world"}`)) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if _, err := c.sendOnce(ctx, msg("plain.echo", "id-5", 10)); !errors.Is(err, jetstream.ErrInvalidJSAck) {
		t.Fatalf("a reply that is not a PubAck: %v, want ErrInvalidJSAck", err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	sub, err = c.NC.Subscribe("plain.echo", func(m *nats.Msg) { _ = m.Respond([]byte(`not json`)) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.sendOnce(ctx, msg("plain.echo", "id-6", 10)); !errors.Is(err, jetstream.ErrInvalidJSAck) {
		t.Fatalf("a reply that is not JSON: %v, want ErrInvalidJSAck", err)
	}
}
