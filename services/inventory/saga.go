package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/kvstate"
)

// Reservation states. Each order has one reservation record in the
// reservations bucket; its revision-checked transitions are the commit
// points of the saga:
//
//	(none) ─created──▶ reserving ──all lines held──▶ reserved ──cancel──▶ releasing ─▶ released
//	   │                  │ └─a line failed─▶ unwinding(rejected) ─▶ rejected
//	   │                  └─cancel──────────▶ unwinding(cancelled) ─▶ cancelled
//	   └─cancel (before created)───────────────────────────────────────▶ cancelled
//
// Stock changes are made per SKU, each together with a marker in the SKU's
// record ("reserve:<order>:<token>" / "release:<order>:<token>") in one
// revision-checked update. While a reservation is reserving, unwinding or
// releasing its markers are never removed, so "marker present" means
// exactly "this step is applied": a step repeated after a crash or a
// redelivery sees its marker and changes nothing. Markers are removed only
// once the record has moved past the states whose steps they guard
// (reserve markers once reserved, rejected or cancelled; release markers
// once released), after which those steps never run again. Hence no
// redelivered or re-published event reserves or releases twice.
//
// Within a process the steps of one order are serialised (keyedMutex).
// Across instances two attempts on one order can overlap (a message
// redelivered after AckWait while the first instance still works on it);
// then a late attempt may apply a step after the other committed and
// removed the markers. Each attempt therefore names its markers with its
// own token, the committed record lists the tokens it stands for, and
// whoever tidies a SKU gives back the effect of any other marker of the
// order (steps.go). A late reserve is given back that way. A late release
// cannot always be: the stock it gave back may be reserved by another
// order before anyone tidies. So a final release stays recorded in the
// SKU's record for releaseKeep, and an attempt releases only while its
// view of the reservation is younger than releaseFresh, far less.
const (
	stateReserving = "reserving"
	stateUnwinding = "unwinding"
	stateReserved  = "reserved"
	stateRejected  = "rejected"
	stateReleasing = "releasing"
	stateReleased  = "released"
	stateCancelled = "cancelled"
)

const (
	holdReserve = "reserve"
	holdRelease = "release"
)

// reservation is the value of an order's key in the reservations bucket.
type reservation struct {
	OrderID string        `json:"order_id"`
	State   string        `json:"state"`
	Lines   []events.Line `json:"lines,omitempty"`
	// Outcome is the final state an unwinding reservation moves to:
	// rejected or cancelled.
	Outcome string `json:"outcome,omitempty"`
	// Rejection is why the order was rejected.
	Rejection *events.InventoryRejected `json:"rejection,omitempty"`
	// Tokens name, per SKU, the reserve marker the reservation committed
	// to when it became reserved; ReleaseTokens likewise the release
	// markers when it became released. Any other marker of the order is a
	// stray from an attempt that overlapped (see steps.go).
	Tokens        map[string]string `json:"tokens,omitempty"`
	ReleaseTokens map[string]string `json:"release_tokens,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// handleOrder runs an order's event through its step: created reserves,
// cancelled releases. Other order events are not the inventory's concern
// and are acknowledged as they are.
func (s *Service) handleOrder(ctx context.Context, m *framework.Message) error {
	switch {
	case strings.HasPrefix(m.Subject, events.OrderCreatedTopic.Subject()+"."):
		ev, err := events.OrderCreatedTopic.Decode(m)
		if err != nil {
			return err
		}
		return s.handleCreated(ctx, ev, m)
	case strings.HasPrefix(m.Subject, events.OrderCancelledTopic.Subject()+"."):
		ev, err := events.OrderCancelledTopic.Decode(m)
		if err != nil {
			return err
		}
		return s.handleCancelled(ctx, ev, m)
	}
	return nil
}

// handleCreated reserves every line of the order or none.
func (s *Service) handleCreated(ctx context.Context, ev events.OrderCreated, _ *framework.Message) error {
	if err := events.ValidateOrderID(ev.OrderID); err != nil {
		// Without a usable id there is no order to answer: dead-letter it.
		return framework.Permanent(fmt.Errorf("orders.created event: %w", err))
	}
	unlock := s.locks.lock(ev.OrderID)
	defer unlock()
	lines, invalid := events.NormalizeLines(ev.Items)
	r, rev, err := kvstate.Update(ctx, s.reservations, ev.OrderID, func(r *reservation, exists bool) (bool, error) {
		if exists {
			return false, nil
		}
		*r = reservation{OrderID: ev.OrderID, State: stateReserving, Lines: lines, UpdatedAt: time.Now().UTC()}
		if invalid != nil {
			r.State, r.Lines = stateRejected, nil
			r.Rejection = &events.InventoryRejected{OrderID: ev.OrderID, Reason: events.ReasonInvalidOrder}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("reservation of order %s: %w", ev.OrderID, err)
	}
	return s.drive(ctx, r, rev)
}

// handleCancelled releases what the order holds, exactly once. A cancel
// that arrives before the order leaves a cancelled record behind, so the
// late order reserves nothing.
func (s *Service) handleCancelled(ctx context.Context, ev events.OrderCancelled, _ *framework.Message) error {
	if err := events.ValidateOrderID(ev.OrderID); err != nil {
		return framework.Permanent(fmt.Errorf("orders.cancelled event: %w", err))
	}
	unlock := s.locks.lock(ev.OrderID)
	defer unlock()
	r, rev, err := kvstate.Update(ctx, s.reservations, ev.OrderID, func(r *reservation, exists bool) (bool, error) {
		switch {
		case !exists:
			*r = reservation{OrderID: ev.OrderID, State: stateCancelled}
		case r.State == stateReserving:
			r.State, r.Outcome = stateUnwinding, stateCancelled
		case r.State == stateReserved:
			r.State = stateReleasing
		default: // already on its way to a final state, or there
			return false, nil
		}
		r.UpdatedAt = time.Now().UTC()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("cancel reservation of order %s: %w", ev.OrderID, err)
	}
	return s.drive(ctx, r, rev)
}

// drive runs the reservation from its current state to a final one, doing
// each state's (idempotent) stock work and committing each transition with
// a revision check. If another writer moved the record meanwhile, it
// re-reads it and carries on from there.
func (s *Service) drive(ctx context.Context, r reservation, rev uint64) error {
	// The record may come from a lagging replica. Before doing a
	// non-final state's stock work, make sure it is current: rewrite it at
	// its revision (commit), which fails if it has moved on.
	current := false
	var fresh time.Time // when r was last known current
	unwound := false    // this call moved it to rejected or cancelled itself
	for step := 0; step < 16; step++ {
		var err error
		if !current && (r.State == stateReserving || r.State == stateUnwinding || r.State == stateReleasing) {
			r.UpdatedAt = time.Now().UTC()
			if rev, err = s.commit(ctx, r, rev); err != nil {
				if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
					return err
				}
				if r, rev, err = kvstate.Read[reservation](ctx, s.reservations, r.OrderID); err != nil {
					return err
				}
				continue
			}
			current, fresh = true, time.Now()
		}
		switch r.State {
		case stateReserving:
			var rej *events.InventoryRejected
			var tokens map[string]string
			// A new token per pass: a pass that runs after another attempt
			// committed and tidied must not leave markers that look committed.
			if rej, tokens, err = s.holdLines(ctx, r, nuid.Next()); err == nil {
				if rej != nil {
					r.State, r.Outcome, r.Rejection = stateUnwinding, stateRejected, rej
				} else {
					r.State, r.Tokens = stateReserved, tokens
				}
			}
		case stateUnwinding:
			if err = s.applyLines(ctx, r, s.undoHold); err == nil {
				r.State, unwound = r.Outcome, true
			}
		case stateReleasing:
			var tokens map[string]string
			if tokens, err = s.releaseLines(ctx, r, nuid.Next(), fresh); err == nil {
				r.State, r.ReleaseTokens = stateReleased, tokens
			}
		case stateReserved:
			if err := s.applyLines(ctx, r, s.commitHold); err != nil {
				return err
			}
			_, err := events.InventoryReservedTopic.Publish(ctx, s.svc,
				events.InventoryReserved{OrderID: r.OrderID, Items: r.Lines},
				framework.WithEventID(events.ReservedID(r.OrderID)), framework.WithKey(r.OrderID))
			return err
		case stateRejected:
			if !unwound { // else the unwinding just left every line settled
				if err := s.applyLines(ctx, r, s.settleFinal); err != nil {
					return err
				}
			}
			rej := events.InventoryRejected{OrderID: r.OrderID, Reason: events.ReasonInvalidOrder}
			if r.Rejection != nil {
				rej = *r.Rejection
			}
			_, err := events.InventoryRejectedTopic.Publish(ctx, s.svc, rej,
				framework.WithEventID(events.RejectedID(r.OrderID)), framework.WithKey(r.OrderID))
			return err
		case stateCancelled:
			if unwound {
				return nil
			}
			return s.applyLines(ctx, r, s.settleFinal)
		case stateReleased:
			return s.applyLines(ctx, r, s.settleFinal)
		default:
			return framework.Permanent(fmt.Errorf("reservation of order %s: unknown state %q", r.OrderID, r.State))
		}
		if err != nil {
			return err
		}
		r.UpdatedAt = time.Now().UTC()
		if rev, err = s.commit(ctx, r, rev); err != nil {
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return err
			}
			if r, rev, err = kvstate.Read[reservation](ctx, s.reservations, r.OrderID); err != nil {
				return err
			}
			current, unwound = false, false
			continue
		}
		fresh = time.Now()
	}
	return fmt.Errorf("reservation of order %s: no final state after 16 steps (state %q); will retry", r.OrderID, r.State)
}

// commit writes r if the record is still at rev.
func (s *Service) commit(ctx context.Context, r reservation, rev uint64) (uint64, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode reservation of order %s: %w", r.OrderID, err)
	}
	next, err := kvstate.Write(ctx, s.reservations, r.OrderID, data, rev)
	if err != nil {
		return 0, fmt.Errorf("move reservation of order %s to %s: %w", r.OrderID, r.State, err)
	}
	return next, nil
}

// keyedMutex serialises work on one key inside this process. Per order, it
// keeps the cancel and the reservation of one order, or two deliveries of
// the same event, from interleaving their steps here (across instances
// the marker tokens make overlaps safe, see steps.go). Per SKU, it avoids
// needless CAS conflicts. The two are separate instances and the SKU lock
// is only taken innermost, one at a time, so they cannot deadlock.
type keyedMutex struct{ stripes [256]sync.Mutex }

func (k *keyedMutex) lock(key string) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	m := &k.stripes[h.Sum32()%uint32(len(k.stripes))]
	m.Lock()
	return m.Unlock
}
