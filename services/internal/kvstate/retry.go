package kvstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
)

// Every KV call of the services rides out what passes in a cluster (a
// leader election, a node lost, a reconnect) with the same bounds as a
// publish's default retry (framework.WithPublishRetry): 8 tries, pauses of
// 100ms doubling to 2s, on the errors framework.IsTransient accepts.
const kvAttempts = 8

var kvBackoff = framework.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}

// retry runs op until it succeeds, fails for good, the attempts are used
// up or ctx ends. again is called before each retry.
func retry[T any](ctx context.Context, op func() (T, error), again func()) (T, error) {
	for n := 1; ; n++ {
		v, err := op()
		if err == nil || n >= kvAttempts || !framework.IsTransient(err) || ctx.Err() != nil {
			return v, err
		}
		t := time.NewTimer(kvBackoff.Delay(uint64(n)))
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		if again != nil {
			again()
		}
	}
}

// get reads key, retrying transient failures.
func get(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	return retry(ctx, func() (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) }, nil)
}

// Write stores data under key only if the key is still at revision rev
// (rev 0: only if it does not exist, kv.Create), and returns the new
// revision. A write whose answer is lost is tried again with the same
// revision check, which makes it idempotent: if the first try was in fact
// stored, the retry finds the key moved on, reads it back, and finding
// data there counts as success. Otherwise a conflict is returned as
// jetstream.ErrKeyExists or jetstream.ErrKeyRevisionMismatch. Values must
// differ between writers for this to be exact (the services' records carry
// ids and times): another writer's identical value would be taken for
// ours.
func Write(ctx context.Context, kv jetstream.KeyValue, key string, data []byte, rev uint64) (uint64, error) {
	retried := false
	next, err := retry(ctx, func() (uint64, error) {
		if rev == 0 {
			return kv.Create(ctx, key, data)
		}
		return kv.Update(ctx, key, data, rev)
	}, func() { retried = true })
	if retried && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)) {
		if e, gerr := get(ctx, kv, key); gerr == nil && e.Operation() == jetstream.KeyValuePut && bytes.Equal(e.Value(), data) {
			return e.Revision(), nil // the first try was stored; its answer was lost
		}
	}
	if err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", kv.Bucket(), key, err)
	}
	return next, nil
}
