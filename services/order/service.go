// Package order is the sample order service: an HTTP API to place, read
// and cancel orders, stored in a JetStream KV bucket, and the order side of
// the reservation saga with the inventory service.
//
//	svc, _ := framework.New(ctx, cfg)
//	orders, _ := order.New(ctx, svc, &framework.SubscribeOptions{Concurrency: 8})
//	http.ListenAndServe(":8081", orders.Handler())
//
// It publishes orders.created.v1 and orders.cancelled.v1 and consumes
// inventory.reserved.v1 and inventory.rejected.v1. Every order update is a
// revision-checked KV update retried on conflict, and every transition is
// idempotent, so duplicate and out-of-order events are harmless.
package order

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/kvstate"
)

// Names of the JetStream assets the order service owns.
const (
	// Bucket holds one key per order.
	Bucket = "orders"
	// ReservedDurable consumes inventory.reserved.v1.
	ReservedDurable = "order-reserved"
	// RejectedDurable consumes inventory.rejected.v1.
	RejectedDurable = "order-rejected"
)

// Service is a running order service.
type Service struct {
	svc    *framework.Service
	log    *slog.Logger
	orders jetstream.KeyValue
}

// New declares the streams (reconciling ORDERS, which it owns, and
// checking INVENTORY) and the orders bucket and starts consuming the
// inventory's answers on svc. opts (nil for the defaults) apply to both
// subscriptions.
// svc.Shutdown stops them.
func New(ctx context.Context, svc *framework.Service, opts *framework.SubscribeOptions) (*Service, error) {
	if err := events.Declare(ctx, svc, events.OrdersStream); err != nil {
		return nil, err
	}
	kv, err := kvstate.DeclareBucket(ctx, svc, Bucket, "jetkit sample orders")
	if err != nil {
		return nil, err
	}
	s := &Service{svc: svc, log: svc.Logger(), orders: kv}
	if _, err := framework.Subscribe(ctx, svc, events.InventoryReservedTopic, ReservedDurable, s.onReserved, opts); err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	if _, err := framework.Subscribe(ctx, svc, events.InventoryRejectedTopic, RejectedDurable, s.onRejected, opts); err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	return s, nil
}

// Framework is the framework service this order service runs on.
func (s *Service) Framework() *framework.Service { return s.svc }
