package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxCASAttempts bounds the optimistic-concurrency retries of one update.
// Every conflict means another writer made progress, so running out takes
// sustained contention on one key; the handler then fails and is retried
// with backoff.
const maxCASAttempts = 200

// updateJSON is the only way stock and reservation records change: read
// the key, let change edit the decoded value, and write it back only if the
// key still has the revision that was read (kv.Create when it did not
// exist). On a conflict it re-reads and calls change again, so change must
// depend on nothing but its arguments. It returns the value and revision
// now stored; when change reports no write they are the ones read.
//
// A KV read may be served by a replica that lags behind (direct get), so a
// decision taken on it is only known to be right once a revision-checked
// write succeeds. With confirm, a "no write" decision on an existing key
// is confirmed that way: the value read is written back unchanged at its
// revision, and if the key had moved on, it is re-read and decided again.
func updateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, confirm bool, change func(v *T, exists bool) (write bool, err error)) (T, uint64, error) {
	for attempt := 1; ; attempt++ {
		var v T
		var rev uint64
		exists := false
		entry, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			if err := json.Unmarshal(entry.Value(), &v); err != nil {
				return v, 0, fmt.Errorf("decode %s/%s (revision %d): %w", kv.Bucket(), key, entry.Revision(), err)
			}
			rev, exists = entry.Revision(), true
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return v, 0, fmt.Errorf("read %s/%s: %w", kv.Bucket(), key, err)
		}
		write, err := change(&v, exists)
		if err != nil {
			return v, rev, err
		}
		var data []byte
		switch {
		case write:
			if data, err = json.Marshal(v); err != nil {
				return v, 0, fmt.Errorf("encode %s/%s: %w", kv.Bucket(), key, err)
			}
		case confirm && exists:
			data = entry.Value()
		default:
			return v, rev, nil
		}
		if exists {
			rev, err = kv.Update(ctx, key, data, rev)
		} else {
			rev, err = kv.Create(ctx, key, data)
		}
		if err == nil {
			return v, rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return v, 0, fmt.Errorf("write %s/%s: %w", kv.Bucket(), key, err)
		}
		if attempt >= maxCASAttempts {
			return v, 0, fmt.Errorf("write %s/%s: %d conflicting concurrent updates in a row; retry later: %w", kv.Bucket(), key, attempt, err)
		}
		// Spread the writers of a hot key so they stop colliding in lockstep.
		if attempt > 2 {
			pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
			select {
			case <-ctx.Done():
				return v, 0, fmt.Errorf("write %s/%s: %w", kv.Bucket(), key, ctx.Err())
			case <-time.After(pause):
			}
		}
	}
}
