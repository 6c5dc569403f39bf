package kvstate_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/services/internal/kvstate"
	"github.com/jetkit/jetkit/testenv"
)

// lostAnswers is the real bucket, except that the answer of the next
// lose writes (which the server stores) is lost, as when the stream
// leader dies after storing a write.
type lostAnswers struct {
	jetstream.KeyValue
	lose atomic.Int32
}

func (l *lostAnswers) lost(rev uint64, err error) (uint64, error) {
	if err == nil && l.lose.Add(-1) >= 0 {
		return 0, fmt.Errorf("answer lost: %w", nats.ErrTimeout)
	}
	return rev, err
}

func (l *lostAnswers) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return l.lost(l.KeyValue.Create(ctx, key, value, opts...))
}

func (l *lostAnswers) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return l.lost(l.KeyValue.Update(ctx, key, value, rev))
}

// A create or update stored by the server whose answer was lost is tried
// again; the retry finds the key moved on, reads it back, and recognises
// its own value: success, not a 503 or a conflict.
func TestWriteWithLostAnswerSucceeds(t *testing.T) {
	ctx := context.Background()
	svc := testenv.NewService(t, testenv.Start(t).Config("kvstate"))
	real, err := kvstate.DeclareBucket(ctx, svc, "kvstate_test", "kvstate test")
	if err != nil {
		t.Fatal(err)
	}
	kv := &lostAnswers{KeyValue: real}
	kv.lose.Store(1)
	rev, err := kvstate.Write(ctx, kv, "order-1", []byte(`{"n":1}`), 0)
	if err != nil {
		t.Fatalf("create whose answer was lost: %v", err)
	}
	e, err := real.Get(ctx, "order-1")
	if err != nil || e.Revision() != rev || string(e.Value()) != `{"n":1}` {
		t.Fatalf("stored %v %v, Write said revision %d", e, err, rev)
	}
	kv.lose.Store(1)
	v, rev2, err := kvstate.Update(ctx, kv, "order-1", func(c *counter, _ bool) (bool, error) {
		c.N++
		return true, nil
	})
	if err != nil || v.N != 2 || rev2 <= rev {
		t.Fatalf("update whose answer was lost: %+v revision %d %v", v, rev2, err)
	}
	if v, _, err := kvstate.Read[counter](ctx, real, "order-1"); err != nil || v.N != 2 {
		t.Fatalf("after one increment whose answer was lost: %+v %v (applied twice?)", v, err)
	}
	// A real conflict is still one.
	if _, err := kvstate.Write(ctx, kv, "order-1", []byte(`{"n":9}`), 0); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("create of an existing key with another value: %v, want ErrKeyExists", err)
	}
}
