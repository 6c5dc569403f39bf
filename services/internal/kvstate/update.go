// Package kvstate keeps the sample services' state as JSON records in
// JetStream KV buckets, changed only by revision-checked updates retried
// on conflict (optimistic concurrency), so concurrent writers, in one
// process or many, never overwrite each other's changes.
package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxAttempts bounds the optimistic-concurrency retries of one update.
// Every conflict means another writer made progress, so running out takes
// sustained contention on one key; the caller then fails and is retried
// with backoff.
const MaxAttempts = 200

// Change edits the decoded record v of a key (the zero value when exists
// is false) and reports whether to write it back. It is called again after
// each conflicting write, so it must depend on nothing but its arguments.
type Change[T any] func(v *T, exists bool) (write bool, err error)

// Update reads key, lets change edit the decoded value, and writes it back
// only if the key still has the revision that was read (kv.Create when it
// did not exist). Reads and writes ride out transient failures (see
// Write). On a conflict it re-reads and calls change again. It
// returns the value and revision now stored; when change reports no write
// they are the ones read (revision 0: the key does not exist). An error of
// change is returned as is, with the value and revision read.
func Update[T any](ctx context.Context, kv jetstream.KeyValue, key string, change Change[T]) (T, uint64, error) {
	return update(ctx, kv, key, false, change)
}

// UpdateConfirmed is Update, but a "no write" decision on an existing key
// is confirmed: a KV read may be served by a replica that lags behind
// (direct get), so a decision taken on it is only known to be right once a
// revision-checked write succeeds. The value read is written back
// unchanged at its revision, and if the key had moved on, it is re-read
// and decided again.
func UpdateConfirmed[T any](ctx context.Context, kv jetstream.KeyValue, key string, change Change[T]) (T, uint64, error) {
	return update(ctx, kv, key, true, change)
}

// Read returns the decoded value of key and its revision, or the zero
// value and revision 0 when the key does not exist. Like any KV read it
// may lag behind the latest write; confirm a decision with Update.
func Read[T any](ctx context.Context, kv jetstream.KeyValue, key string) (T, uint64, error) {
	return update(ctx, kv, key, false, func(*T, bool) (bool, error) { return false, nil })
}

func update[T any](ctx context.Context, kv jetstream.KeyValue, key string, confirm bool, change Change[T]) (T, uint64, error) {
	for attempt := 1; ; attempt++ {
		var v T
		var rev uint64
		exists := false
		entry, err := get(ctx, kv, key)
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
		if !exists {
			rev = 0
		}
		rev, err = Write(ctx, kv, key, data, rev)
		if err == nil {
			return v, rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return v, 0, err
		}
		if attempt >= MaxAttempts {
			return v, 0, fmt.Errorf("%d conflicting concurrent updates in a row; retry later: %w", attempt, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return v, 0, fmt.Errorf("write %s/%s: %w", kv.Bucket(), key, err)
		}
	}
}

// backoff spreads the writers of a hot key so they stop colliding in
// lockstep: from the third attempt it waits up to min(attempt, 20) ms, or
// until ctx ends.
func backoff(ctx context.Context, attempt int) error {
	if attempt <= 2 {
		return nil
	}
	pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
		return nil
	}
}
