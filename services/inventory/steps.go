package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jetkit/jetkit/services/events"
)

// marker is one of an order's entries in a stockRecord's Holds:
// "<kind>:<order>:<token>" → quantity. Records written before tokens
// existed have "<kind>:<order>", read as token "".
type marker struct {
	key, token string
	qty        int
}

func markerKey(kind, orderID, token string) string { return kind + ":" + orderID + ":" + token }

// markersOf lists the order's markers of kind in st. Order ids cannot
// contain ':', so the prefix is unambiguous.
func markersOf(st *stockRecord, kind, orderID string) []marker {
	prefix := kind + ":" + orderID
	var out []marker
	for k, q := range st.Holds {
		switch {
		case k == prefix:
			out = append(out, marker{key: k, qty: q})
		case strings.HasPrefix(k, prefix+":"):
			out = append(out, marker{key: k, token: k[len(prefix)+1:], qty: q})
		}
	}
	return out
}

func setHold(st *stockRecord, key string, qty int) {
	if st.Holds == nil {
		st.Holds = map[string]int{}
	}
	st.Holds[key] = qty
}

// holdLines takes each line from stock in SKU order, marking each with
// tok. It stops at the first line that cannot be held and says why. It
// returns, per SKU, the token of the marker that holds it (tok, or an
// earlier attempt's).
func (s *Service) holdLines(ctx context.Context, r reservation, tok string) (*events.InventoryRejected, map[string]string, error) {
	tokens := make(map[string]string, len(r.Lines))
	for _, line := range r.Lines {
		var rej *events.InventoryRejected
		var held string
		_, _, err := s.updateStock(ctx, line.SKU, true, func(st *stockRecord, exists bool) (bool, error) {
			rej, held = nil, ""
			if !exists {
				rej = &events.InventoryRejected{OrderID: r.OrderID, Reason: events.ReasonUnknownSKU, SKU: line.SKU, Requested: line.Qty}
				return false, nil
			}
			if ms := markersOf(st, holdReserve, r.OrderID); len(ms) > 0 {
				held = ms[0].token // held by an earlier attempt
				return false, nil
			}
			if st.Available < line.Qty {
				rej = &events.InventoryRejected{OrderID: r.OrderID, Reason: events.ReasonInsufficientStock,
					SKU: line.SKU, Requested: line.Qty, Available: st.Available}
				return false, nil
			}
			st.Available -= line.Qty
			setHold(st, markerKey(holdReserve, r.OrderID, tok), line.Qty)
			held = tok
			return true, nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("hold %d of %s for order %s: %w", line.Qty, line.SKU, r.OrderID, err)
		}
		if rej != nil {
			return rej, nil, nil
		}
		tokens[line.SKU] = held
	}
	return nil, tokens, nil
}

// releaseLines gives back each line of a reserved order once, marking each
// with tok, and returns per SKU the token of the release marker.
//
// The release marker, and after the order is final its entry in Released,
// is what stops a second release. An attempt that overlapped the one that
// committed can still be releasing after that one finished; it must find
// the entry, so it releases only while its view of the reservation, known
// current at fresh, is younger than releaseFresh (entries are kept for
// releaseKeep, far longer). An older view ends the attempt with an error,
// and its retry starts from the record as it is then.
func (s *Service) releaseLines(ctx context.Context, r reservation, tok string, fresh time.Time) (map[string]string, error) {
	tokens := make(map[string]string, len(r.Lines))
	for _, line := range r.Lines {
		var released string
		_, _, err := s.updateStock(ctx, line.SKU, true, func(st *stockRecord, exists bool) (bool, error) {
			changed := s.commitHold(st, exists, r, line) // the reserve marker is spent now
			if ms := markersOf(st, holdRelease, r.OrderID); len(ms) > 0 {
				released = ms[0].token // released by an earlier attempt
				return changed, nil
			}
			if t, ok := releasedOf(st, r.OrderID); ok {
				released = t // released, and the order final, by another attempt
				return changed, nil
			}
			if age := time.Since(fresh); age > releaseFresh {
				return false, fmt.Errorf("%w: the reservation was last known current %s ago", errStaleView, age.Round(time.Millisecond))
			}
			st.Available += line.Qty
			setHold(st, markerKey(holdRelease, r.OrderID, tok), line.Qty)
			released = tok
			return true, nil
		})
		if err != nil {
			return nil, fmt.Errorf("release %d of %s for order %s: %w", line.Qty, line.SKU, r.OrderID, err)
		}
		tokens[line.SKU] = released
	}
	return tokens, nil
}

// releaseFresh bounds how old an attempt's view of a reservation may be
// when it releases stock (see releaseLines and releaseKeep).
const releaseFresh = 30 * time.Second

// errStaleView ends a release attempt whose view of the reservation is
// older than releaseFresh; the message is retried.
var errStaleView = errors.New("release not applied")

// releasedOf reports the token of the order's release that is final and
// still recorded in st.Released.
func releasedOf(st *stockRecord, orderID string) (string, bool) {
	prefix := markerKey(holdRelease, orderID, "")
	for k := range st.Released {
		switch {
		case strings.HasPrefix(k, prefix):
			return k[len(prefix):], true
		case k+":" == prefix: // a marker from before tokens
			return "", true
		}
	}
	return "", false
}

// lineStep changes one SKU's record for one line of a reservation and
// reports whether it changed anything.
type lineStep func(st *stockRecord, exists bool, r reservation, line events.Line) bool

// applyLines runs step on each line's stock record with revision checks;
// a step that changes nothing is confirmed by a revision-checked rewrite,
// so that it was not decided on a stale read.
func (s *Service) applyLines(ctx context.Context, r reservation, step lineStep) error {
	for _, line := range r.Lines {
		_, _, err := s.updateStock(ctx, line.SKU, true, func(st *stockRecord, exists bool) (bool, error) {
			return step(st, exists, r, line), nil
		})
		if err != nil {
			return fmt.Errorf("order %s (%s), sku %s: %w", r.OrderID, r.State, line.SKU, err)
		}
	}
	return nil
}

// undoHold gives back every hold the order has on this SKU (unwinding).
func (s *Service) undoHold(st *stockRecord, exists bool, r reservation, _ events.Line) bool {
	if !exists {
		return false
	}
	changed := false
	for _, m := range markersOf(st, holdReserve, r.OrderID) {
		st.Available += m.qty
		delete(st.Holds, m.key)
		changed = true
	}
	return changed
}

// commitHold removes the reserve marker the reservation committed to: its
// stock is spent. Any other reserve marker of the order is a stray from an
// overlapping attempt, and its quantity is given back. Release markers are
// left alone: if a cancel is already releasing the order (on another
// instance), they keep its release from being applied twice.
func (s *Service) commitHold(st *stockRecord, exists bool, r reservation, line events.Line) bool {
	if !exists {
		return false
	}
	changed := false
	for _, m := range markersOf(st, holdReserve, r.OrderID) {
		if m.token != r.Tokens[line.SKU] {
			st.Available += m.qty
		}
		delete(st.Holds, m.key)
		changed = true
	}
	return changed
}

// settleFinal tidies a SKU once the reservation is rejected, cancelled or
// released, after which no step runs again. Every legitimate reserve
// marker is gone by then (undone, or spent and removed when released), so
// any left is a stray and its quantity is given back. The release marker
// the record committed to moves to Released, where overlapping attempts
// still find it (see releaseLines); any other is a stray release, taken
// back as far as the stock still allows (the rest is logged: it may have
// been reserved by another order in the meantime).
func (s *Service) settleFinal(st *stockRecord, exists bool, r reservation, line events.Line) bool {
	changed := s.undoHold(st, exists, r, line)
	if !exists {
		return changed
	}
	now := time.Now()
	for _, m := range markersOf(st, holdRelease, r.OrderID) {
		if m.token == r.ReleaseTokens[line.SKU] {
			// Recorded as final for a while: see releaseLines.
			if st.Released == nil {
				st.Released = map[string]time.Time{}
			}
			st.Released[m.key] = now
		} else {
			back := min(m.qty, st.Available)
			st.Available -= back
			if back < m.qty {
				s.log.Error("a duplicate release could not be taken back in full; stock is over by the difference",
					"order_id", r.OrderID, "sku", line.SKU, "released_twice", m.qty, "taken_back", back)
			}
		}
		delete(st.Holds, m.key)
		changed = true
	}
	return changed
}
