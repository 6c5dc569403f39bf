package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
)

// Order statuses.
const (
	// StatusPending: placed, waiting for the inventory's answer.
	StatusPending = "pending"
	// StatusConfirmed: every line is reserved.
	StatusConfirmed = "confirmed"
	// StatusRejected: the inventory could not reserve it (Reason says why).
	StatusRejected = "rejected"
	// StatusCancelled: cancelled by the customer; any reservation is released.
	StatusCancelled = "cancelled"
)

// Errors the HTTP API maps to status codes.
var (
	// ErrNotFound: no order has this id.
	ErrNotFound = errors.New("order not found")
	// ErrConflict: the order's status does not allow the operation.
	ErrConflict = errors.New("order status does not allow this")
	// ErrUnavailable: NATS or the order store failed; the client may retry.
	ErrUnavailable = errors.New("order service temporarily unavailable")
)

// InputError is a problem with what the client sent (HTTP 400).
type InputError struct {
	// Msg says what is wrong, for the client.
	Msg string
}

// Error implements error.
func (e *InputError) Error() string { return e.Msg }

// Order is an order as stored in the orders bucket and returned by the API.
type Order struct {
	ID         string        `json:"id"`
	CustomerID string        `json:"customer_id"`
	Items      []events.Line `json:"items"`
	Status     string        `json:"status"`
	// Reason explains a rejection.
	Reason string `json:"reason,omitempty"`
	// History lists every status change, oldest first.
	History   []Change  `json:"history"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Change is one status change of an order.
type Change struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
	// Event is the event that caused it (type and id), if any.
	Event string `json:"event,omitempty"`
	// Note says what happened in words.
	Note string `json:"note,omitempty"`
}

func (o *Order) setStatus(status, event, note string) {
	now := time.Now().UTC()
	o.Status, o.UpdatedAt = status, now
	o.History = append(o.History, Change{Status: status, At: now, Event: event, Note: note})
}

// Place stores a new pending order and publishes orders.created.v1. If the
// event cannot be published the order is marked rejected and ErrUnavailable
// returned; should the event have been stored after all, the reservation
// it causes is released when it arrives (see onReserved).
func (s *Service) Place(ctx context.Context, customerID string, items []events.Line) (Order, error) {
	if err := events.ValidateOrderID(customerID); err != nil {
		return Order{}, &InputError{Msg: fmt.Sprintf("customer_id %q: expected 1-64 characters of A-Z a-z 0-9 _ -", customerID)}
	}
	lines, err := events.NormalizeLines(items)
	if err != nil {
		return Order{}, &InputError{Msg: err.Error()}
	}
	now := time.Now().UTC()
	o := Order{ID: nuid.Next(), CustomerID: customerID, Items: lines, CreatedAt: now}
	o.setStatus(StatusPending, "", "order placed")
	data, err := json.Marshal(o)
	if err != nil {
		return Order{}, fmt.Errorf("encode order: %w", err)
	}
	if _, err := s.orders.Create(ctx, o.ID, data); err != nil {
		return Order{}, fmt.Errorf("%w: store order: %w", ErrUnavailable, err)
	}
	_, err = events.OrderCreatedTopic.Publish(ctx, s.svc,
		events.OrderCreated{OrderID: o.ID, CustomerID: customerID, Items: lines, CreatedAt: now},
		framework.WithEventID(events.CreatedID(o.ID)), framework.WithKey(o.ID))
	if err != nil {
		s.log.Warn("order placed but its event was not published; rejecting it", "order_id", o.ID, "error", err)
		_, _, _ = updateJSON(context.WithoutCancel(ctx), s.orders, o.ID, func(o *Order, exists bool) (bool, error) {
			if !exists || o.Status != StatusPending {
				return false, nil
			}
			o.Reason = "could not publish the order event"
			o.setStatus(StatusRejected, "", o.Reason)
			return true, nil
		})
		return Order{}, fmt.Errorf("%w: publish order %s: %w", ErrUnavailable, o.ID, err)
	}
	return o, nil
}

// Get returns the order with id.
func (s *Service) Get(ctx context.Context, id string) (Order, error) {
	if err := events.ValidateOrderID(id); err != nil {
		return Order{}, &InputError{Msg: err.Error()}
	}
	entry, err := s.orders.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Order{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Order{}, fmt.Errorf("%w: read order %s: %w", ErrUnavailable, id, err)
	}
	var o Order
	if err := json.Unmarshal(entry.Value(), &o); err != nil {
		return Order{}, fmt.Errorf("%w: decode order %s: %w", ErrUnavailable, id, err)
	}
	return o, nil
}

// Cancel cancels a pending or confirmed order and publishes
// orders.cancelled.v1, on which the inventory releases what the order
// holds. Cancelling a cancelled order publishes the event again (same
// event id), so a client can simply repeat a cancel that failed half-way.
func (s *Service) Cancel(ctx context.Context, id string) (Order, error) {
	if err := events.ValidateOrderID(id); err != nil {
		return Order{}, &InputError{Msg: err.Error()}
	}
	var status string
	o, _, err := updateJSON(ctx, s.orders, id, func(o *Order, exists bool) (bool, error) {
		status = o.Status
		switch {
		case !exists:
			return false, fmt.Errorf("%w: %s", ErrNotFound, id)
		case o.Status == StatusPending || o.Status == StatusConfirmed:
			o.setStatus(StatusCancelled, "", "cancelled by request")
			return true, nil
		case o.Status == StatusCancelled:
			return false, nil
		default:
			return false, fmt.Errorf("%w: order %s is %s; only pending or confirmed orders can be cancelled", ErrConflict, id, o.Status)
		}
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return Order{}, err
		}
		return Order{}, fmt.Errorf("%w: cancel order %s: %w", ErrUnavailable, id, err)
	}
	if err := s.publishCancelled(ctx, id, "cancelled by request (was "+status+")"); err != nil {
		return Order{}, fmt.Errorf("%w: order %s is cancelled but the release event was not published; repeat the cancel: %w", ErrUnavailable, id, err)
	}
	return o, nil
}

func (s *Service) publishCancelled(ctx context.Context, id, reason string) error {
	_, err := events.OrderCancelledTopic.Publish(ctx, s.svc, events.OrderCancelled{OrderID: id, Reason: reason},
		framework.WithEventID(events.CancelledID(id)), framework.WithKey(id))
	return err
}

// onReserved confirms a pending order. A reservation for an order that is
// no longer pending (cancelled meanwhile, rejected because its event could
// not be published, or unknown) is handed back by publishing
// orders.cancelled.v1, which the inventory applies at most once.
// Duplicates change nothing.
func (s *Service) onReserved(ctx context.Context, ev events.InventoryReserved, m *framework.Message) error {
	if err := events.ValidateOrderID(ev.OrderID); err != nil {
		return framework.Permanent(fmt.Errorf("inventory.reserved event: %w", err))
	}
	release := ""
	_, _, err := updateJSON(ctx, s.orders, ev.OrderID, func(o *Order, exists bool) (bool, error) {
		release = ""
		switch {
		case !exists:
			release = "reservation for an unknown order"
		case o.Status == StatusPending:
			o.setStatus(StatusConfirmed, eventRef(m), "all items reserved")
			return true, nil
		case o.Status == StatusCancelled || o.Status == StatusRejected:
			release = "reservation arrived for a " + o.Status + " order"
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("confirm order %s: %w", ev.OrderID, err)
	}
	if release != "" {
		s.log.Info("releasing a reservation the order no longer needs", "order_id", ev.OrderID, "why", release)
		return s.publishCancelled(ctx, ev.OrderID, release)
	}
	return nil
}

// onRejected marks a pending order rejected; anything else ignores it
// (a cancelled order stays cancelled, duplicates change nothing).
func (s *Service) onRejected(ctx context.Context, ev events.InventoryRejected, m *framework.Message) error {
	if err := events.ValidateOrderID(ev.OrderID); err != nil {
		return framework.Permanent(fmt.Errorf("inventory.rejected event: %w", err))
	}
	_, _, err := updateJSON(ctx, s.orders, ev.OrderID, func(o *Order, exists bool) (bool, error) {
		if !exists || o.Status != StatusPending {
			return false, nil
		}
		o.Reason = rejectionText(ev)
		o.setStatus(StatusRejected, eventRef(m), o.Reason)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("reject order %s: %w", ev.OrderID, err)
	}
	return nil
}

func rejectionText(ev events.InventoryRejected) string {
	switch ev.Reason {
	case events.ReasonInsufficientStock:
		return fmt.Sprintf("%s: %s (requested %d, available %d)", ev.Reason, ev.SKU, ev.Requested, ev.Available)
	case events.ReasonUnknownSKU:
		return fmt.Sprintf("%s: %s", ev.Reason, ev.SKU)
	default:
		return ev.Reason
	}
}

func eventRef(m *framework.Message) string {
	if m == nil {
		return ""
	}
	return m.Envelope.Type + " " + m.Envelope.ID
}
