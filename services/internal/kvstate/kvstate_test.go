package kvstate_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jetkit/jetkit/services/internal/kvstate"
	"github.com/jetkit/jetkit/testenv"
)

type counter struct {
	N int `json:"n"`
}

func TestUpdateReadAndConfirm(t *testing.T) {
	ctx := context.Background()
	svc := testenv.NewService(t, testenv.Start(t).Config("kvstate"))
	kv, err := kvstate.DeclareBucket(ctx, svc, "kvstate_test", "kvstate test")
	if err != nil {
		t.Fatal(err)
	}
	if v, rev, err := kvstate.Read[counter](ctx, kv, "k"); err != nil || rev != 0 || v.N != 0 {
		t.Fatalf("Read of a missing key: %+v rev %d %v, want zero value, revision 0", v, rev, err)
	}
	v, rev, err := kvstate.Update(ctx, kv, "k", func(c *counter, exists bool) (bool, error) {
		if exists {
			t.Error("a missing key reported as existing")
		}
		c.N = 1
		return true, nil
	})
	if err != nil || v.N != 1 || rev == 0 {
		t.Fatalf("create: %+v rev %d %v", v, rev, err)
	}
	// A no-op Update writes nothing; UpdateConfirmed writes the value back.
	noop := func(*counter, bool) (bool, error) { return false, nil }
	if _, got, err := kvstate.Update(ctx, kv, "k", noop); err != nil || got != rev {
		t.Fatalf("no-op Update: revision %d %v, want %d unchanged", got, err, rev)
	}
	v, confirmed, err := kvstate.UpdateConfirmed(ctx, kv, "k", noop)
	if err != nil || confirmed <= rev || v.N != 1 {
		t.Fatalf("no-op UpdateConfirmed: %+v revision %d %v, want n=1 at a revision after %d", v, confirmed, err, rev)
	}
	// An error of change is returned as is, and nothing is written.
	boom := errors.New("boom")
	if _, _, err := kvstate.Update(ctx, kv, "k", func(*counter, bool) (bool, error) { return true, boom }); !errors.Is(err, boom) {
		t.Fatalf("change error: %v, want %v", err, boom)
	}
	if v, got, err := kvstate.Read[counter](ctx, kv, "k"); err != nil || got != confirmed || v.N != 1 {
		t.Fatalf("after a failed change: %+v revision %d %v, want n=1 at %d", v, got, err, confirmed)
	}
}

// Concurrent increments conflict and are retried: none is lost.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	svc := testenv.NewService(t, testenv.Start(t).Config("kvstate"))
	kv, err := kvstate.DeclareBucket(ctx, svc, "kvstate_test", "kvstate test")
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, _, err := kvstate.Update(ctx, kv, "hot", func(c *counter, _ bool) (bool, error) {
					c.N++
					return true, nil
				}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v, _, err := kvstate.Read[counter](ctx, kv, "hot"); err != nil || v.N != writers*each {
		t.Fatalf("after %d increments: %+v %v", writers*each, v, err)
	}
}
