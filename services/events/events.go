// Package events declares the events the sample order and inventory
// services exchange: their payload types, typed topics, streams and the
// deterministic event ids that let the server's de-duplication window drop
// a re-published event.
//
// The saga, in one picture:
//
//	order ──orders.created.v1──▶ inventory ──inventory.reserved.v1──▶ order (confirmed)
//	                                       └─inventory.rejected.v1──▶ order (rejected)
//	order ──orders.cancelled.v1─▶ inventory (releases a reservation exactly once)
//
// Every event is published with the order id as the subject key
// (orders.created.v1.<order id>), so a consumer may filter one order.
package events

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// Streams of the sample system, each owned by the service that publishes
// into it (StreamSpec.Owner, matched against Config.ServiceName): only the
// order service changes ORDERS, only the inventory service changes
// INVENTORY. Each service declares its own stream and waits for the other
// (Declare), so either may start first.
var (
	// OrdersStream stores what the order service publishes, in
	// OrderPartitions partitions by order id (orders.created.v1.o-1 is
	// stored as orders.created.v1.<partition>.o-1), so that the inventory
	// instances can share it partition by partition, each order's events
	// in order.
	OrdersStream = framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}, Owner: "order", Partitions: OrderPartitions}
	// InventoryStream stores what the inventory service publishes.
	InventoryStream = framework.StreamSpec{Name: "INVENTORY", Subjects: []string{"inventory.>"}, Owner: "inventory"}
)

// OrderPartitions is the partition count of ORDERS: at most this many
// inventory instances share the work. Changing it is a migration to a new
// stream (docs/partitions.md).
const OrderPartitions = 4

// Typed topics, declared once and used to publish and subscribe. Each is
// keyed by order id (orders.created.v1.<order id>), so one order's events
// can be read back by subject.
var (
	// OrderCreatedTopic: an order was placed and waits for stock.
	OrderCreatedTopic = framework.MustNewTopic[OrderCreated]("orders.created.v1", framework.Keyed())
	// OrderCancelledTopic: an order was cancelled; any reservation must be released.
	OrderCancelledTopic = framework.MustNewTopic[OrderCancelled]("orders.cancelled.v1", framework.Keyed())
	// InventoryReservedTopic: every line of an order is reserved.
	InventoryReservedTopic = framework.MustNewTopic[InventoryReserved]("inventory.reserved.v1", framework.Keyed())
	// InventoryRejectedTopic: the order could not be reserved; nothing is held.
	InventoryRejectedTopic = framework.MustNewTopic[InventoryRejected]("inventory.rejected.v1", framework.Keyed())
)

// Line is one SKU and quantity of an order.
type Line struct {
	// SKU is the stock keeping unit: 1-64 characters of A-Z a-z 0-9 _ -.
	SKU string `json:"sku"`
	// Qty is the quantity, at least 1.
	Qty int `json:"qty"`
}

// OrderCreated is published by the order service when an order is placed.
type OrderCreated struct {
	// OrderID identifies the order; it is also the subject key.
	OrderID string `json:"order_id"`
	// CustomerID is who placed it.
	CustomerID string `json:"customer_id"`
	// Items are the order lines, one per SKU.
	Items []Line `json:"items"`
	// CreatedAt is when the order was placed.
	CreatedAt time.Time `json:"created_at"`
}

// OrderCancelled is published by the order service when an order is
// cancelled, and re-published when a reservation arrives for an order that
// is no longer waiting for one.
type OrderCancelled struct {
	// OrderID identifies the order.
	OrderID string `json:"order_id"`
	// Reason says why, for people reading the stream.
	Reason string `json:"reason,omitempty"`
}

// InventoryReserved is published by the inventory service once every line
// of an order is reserved.
type InventoryReserved struct {
	// OrderID identifies the order.
	OrderID string `json:"order_id"`
	// Items are the reserved lines.
	Items []Line `json:"items"`
}

// Rejection reasons carried by InventoryRejected.Reason.
const (
	// ReasonUnknownSKU: a line names a SKU the inventory does not stock.
	ReasonUnknownSKU = "unknown_sku"
	// ReasonInsufficientStock: a line asks for more than is available.
	ReasonInsufficientStock = "insufficient_stock"
	// ReasonInvalidOrder: the event itself is malformed (no lines, qty < 1, bad SKU).
	ReasonInvalidOrder = "invalid_order"
)

// InventoryRejected is published by the inventory service when an order
// cannot be reserved in full; nothing stays reserved.
type InventoryRejected struct {
	// OrderID identifies the order.
	OrderID string `json:"order_id"`
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
	// SKU is the first line that failed, when the reason concerns a line.
	SKU string `json:"sku,omitempty"`
	// Requested and Available describe that line for insufficient stock.
	Requested int `json:"requested,omitempty"`
	Available int `json:"available,omitempty"`
}

// Deterministic event ids: one event per order and kind, so re-publishing
// after a failure or a redelivery stores it once inside the stream's
// duplicates window, and consumers can recognise it after that.

// CreatedID is the event id of the OrderCreated of orderID.
func CreatedID(orderID string) string { return "created-" + orderID }

// CancelledID is the event id of the OrderCancelled of orderID.
func CancelledID(orderID string) string { return "cancelled-" + orderID }

// ReservedID is the event id of the InventoryReserved of orderID.
func ReservedID(orderID string) string { return "reserved-" + orderID }

// RejectedID is the event id of the InventoryRejected of orderID.
func RejectedID(orderID string) string { return "rejected-" + orderID }

// idPattern is what ids and SKUs may look like: safe as a subject token, a
// KV key and a URL path segment.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidateSKU reports whether sku is 1-64 characters of A-Z a-z 0-9 _ -.
func ValidateSKU(sku string) error {
	if !idPattern.MatchString(sku) {
		return fmt.Errorf("sku %q: expected 1-64 characters of A-Z a-z 0-9 _ -", sku)
	}
	return nil
}

// ValidateOrderID reports whether id can be an order id (same form as a SKU).
func ValidateOrderID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("order id %q: expected 1-64 characters of A-Z a-z 0-9 _ -", id)
	}
	return nil
}

// Limits on an order, checked by the order API and again by the inventory.
const (
	// MaxLines is the most lines an order may have.
	MaxLines = 100
	// MaxQty is the largest quantity of one line.
	MaxQty = 1_000_000
)

// NormalizeLines checks lines and merges repeated SKUs, returning one line
// per SKU in SKU order (the order the inventory locks stock keys in). The
// error names the first problem.
func NormalizeLines(lines []Line) ([]Line, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("items: at least one item is required")
	}
	if len(lines) > MaxLines {
		return nil, fmt.Errorf("items: at most %d items, got %d", MaxLines, len(lines))
	}
	sum := make(map[string]int, len(lines))
	for i, l := range lines {
		if err := ValidateSKU(l.SKU); err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		if l.Qty < 1 || l.Qty > MaxQty {
			return nil, fmt.Errorf("items[%d]: qty %d: expected 1 to %d", i, l.Qty, MaxQty)
		}
		sum[l.SKU] += l.Qty
		if sum[l.SKU] > MaxQty {
			return nil, fmt.Errorf("items[%d]: total qty of sku %q exceeds %d", i, l.SKU, MaxQty)
		}
	}
	out := make([]Line, 0, len(sum))
	for sku, qty := range sum {
		out = append(out, Line{SKU: sku, Qty: qty})
	}
	sortLines(out)
	return out, nil
}

func sortLines(lines []Line) {
	slices.SortFunc(lines, func(a, b Line) int { return strings.Compare(a.SKU, b.SKU) })
}

// Declare declares own, the stream of the service on svc, and makes sure
// the other stream of the sample system exists. Each stream has one owner:
// under deploy/nats-permissions.conf only the owner may create or change
// it. When the other stream is missing, Declare creates it if svc may (a
// development server without permissions) and otherwise waits for its
// owner to declare it, until ctx ends.
func Declare(ctx context.Context, svc *framework.Service, own framework.StreamSpec) error {
	if _, err := svc.EnsureStream(ctx, own); err != nil {
		return fmt.Errorf("declare stream %s: %w", own.Name, err)
	}
	for _, spec := range []framework.StreamSpec{OrdersStream, InventoryStream} {
		if spec.Name == own.Name {
			continue
		}
		if err := awaitStream(ctx, svc, spec); err != nil {
			return err
		}
	}
	return nil
}

// streamPoll is how often awaitStream looks for a stream another service owns.
const streamPoll = 250 * time.Millisecond

// awaitStream returns once the stream spec names exists: it creates it when
// svc may, else waits for the stream's owner.
func awaitStream(ctx context.Context, svc *framework.Service, spec framework.StreamSpec) error {
	js := svc.Conn().JS
	if _, err := js.Stream(ctx, spec.Name); err == nil {
		return nil
	}
	_, err := svc.EnsureStream(ctx, spec)
	if !errors.Is(err, framework.ErrPermissionDenied) {
		if err != nil {
			return fmt.Errorf("declare stream %s: %w", spec.Name, err)
		}
		return nil
	}
	svc.Logger().Info("waiting for its owner to declare the stream (this user may not create it)", "stream", spec.Name)
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %s, which its owning service declares: %w", spec.Name, ctx.Err())
		case <-tick.C:
			if _, err := js.Stream(ctx, spec.Name); err == nil {
				return nil
			}
		}
	}
}
