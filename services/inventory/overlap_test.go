package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/kvstate"
	"github.com/jetkit/jetkit/testenv"
)

// TestLateReleaseChangesNothing replays what two inventory instances do
// when a cancel is redelivered to the second while the first still works
// on it: the first releases the order and finishes (released, SKU
// tidied); the second, which read the reservation as releasing before
// that, then runs its release step. It must find the release applied and
// give nothing back a second time; the stock gave back by a duplicate
// release may already be reserved by another order, so it could not
// always be taken back (the defect the load test found, with 153 of 150
// units reserved).
func TestLateReleaseChangesNothing(t *testing.T) {
	srv := testenv.Start(t)
	svc := testenv.NewService(t, srv.Config("inventory"))
	inv, err := New(context.Background(), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := inv.SeedStock(ctx, map[string]int{"apple": 10}); err != nil {
		t.Fatal(err)
	}
	const id = "late-release"
	publish(t, svc, events.OrderCreatedTopic, events.OrderCreated{OrderID: id, Items: []events.Line{{SKU: "apple", Qty: 3}}}, id)
	waitReservation(t, inv, id, stateReserved)
	reserved, rev, err := kvstate.Read[reservation](ctx, inv.reservations, id)
	if err != nil {
		t.Fatal(err)
	}
	// The second instance's view: the cancel moved it to releasing.
	late := reserved
	late.State = stateReleasing
	publish(t, svc, events.OrderCancelledTopic, events.OrderCancelled{OrderID: id}, id)
	waitReservation(t, inv, id, stateReleased)
	expectAvailable(t, inv, "apple", 10)

	if _, err := inv.releaseLines(ctx, late, "late-token", time.Now()); err != nil {
		t.Fatalf("late release step: %v", err)
	}
	expectAvailable(t, inv, "apple", 10)
	// The rest of the late attempt: its commit fails, it reads the final
	// record and tidies the SKU again.
	if err := inv.drive(ctx, late, rev); err != nil {
		t.Fatalf("late attempt: %v", err)
	}
	expectAvailable(t, inv, "apple", 10)

	// Once the final release is no longer recorded (after releaseKeep), a
	// view older than releaseFresh releases nothing and says so.
	_, _, err = inv.updateStock(ctx, "apple", false, func(st *stockRecord, _ bool) (bool, error) {
		if _, ok := releasedOf(st, id); !ok {
			t.Errorf("apple's record %+v does not record the final release of %s", st, id)
		}
		st.Released = nil
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv.releaseLines(ctx, late, "later-token", time.Now().Add(-releaseFresh-time.Second))
	if !errors.Is(err, errStaleView) {
		t.Fatalf("release from a view older than releaseFresh: err = %v, want errStaleView", err)
	}
	expectAvailable(t, inv, "apple", 10)
}

func TestOldReleasesAreDropped(t *testing.T) {
	now := time.Now()
	st := stockRecord{Released: map[string]time.Time{
		"release:old:t1":   now.Add(-releaseKeep - time.Second),
		"release:young:t2": now.Add(-releaseKeep + time.Minute),
	}}
	dropOldReleases(&st, now)
	if _, ok := releasedOf(&st, "old"); ok {
		t.Error("a release older than releaseKeep is still recorded")
	}
	if tok, ok := releasedOf(&st, "young"); !ok || tok != "t2" {
		t.Errorf("young release: token %q, %v; want t2, recorded", tok, ok)
	}
	if releaseKeep <= 2*releaseFresh {
		t.Errorf("releaseKeep %s must exceed releaseFresh %s by far (clock skew)", releaseKeep, releaseFresh)
	}
}

func waitReservation(t *testing.T, inv *Service, id, state string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "reservation "+id+" "+state, func() bool {
		r, _, err := kvstate.Read[reservation](context.Background(), inv.reservations, id)
		return err == nil && r.State == state
	})
}

func expectAvailable(t *testing.T, inv *Service, sku string, want int) {
	t.Helper()
	l, err := inv.Stock(context.Background(), sku)
	if err != nil {
		t.Fatal(err)
	}
	if l.Available != want {
		t.Fatalf("%s: %d available, want %d", sku, l.Available, want)
	}
}
