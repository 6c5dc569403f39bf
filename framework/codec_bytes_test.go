package framework_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// A Topic[[]byte] with the Bytes codec carries bytes as they are, any
// bytes, and says so in its content type.
func TestBytesCodecRoundTrip(t *testing.T) {
	srv := testenv.Start(t)
	svc := newService(t, srv, "blobs")
	blobs := framework.MustNewTopic[[]byte]("orders.blob.v1", framework.WithCodec(framework.Bytes))
	payload := []byte{0, 1, 2, 0xff, '{', '\n'}
	got := make(chan *framework.Message, 1)
	var gotData []byte
	if _, err := framework.Subscribe(t.Context(), svc, blobs, "blobs", func(ctx context.Context, ev []byte, m *framework.Message) error {
		gotData = ev
		got <- m
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.Publish(t.Context(), svc, payload); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if !bytes.Equal(gotData, payload) || m.Envelope.ContentType != "application/octet-stream" {
			t.Fatalf("received %q with content type %q, want %q as application/octet-stream", gotData, m.Envelope.ContentType, payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not delivered")
	}
	if _, err := framework.Bytes.Marshal("text"); err == nil {
		t.Fatal("Bytes encoded a string")
	}
}
