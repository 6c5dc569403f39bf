// Package inventory is the sample inventory service: stock per SKU in a
// JetStream KV bucket, reserved all-or-nothing for each order placed
// (orders.created.v1 → inventory.reserved.v1 or inventory.rejected.v1) and
// released exactly once when an order is cancelled (orders.cancelled.v1).
//
//	svc, _ := framework.New(ctx, cfg)
//	inv, _ := inventory.New(ctx, svc, &framework.SubscribeOptions{Concurrency: 8})
//	http.ListenAndServe(":8082", inv.Handler())
//
// Every stock change is a revision-checked KV update retried on conflict;
// see saga.go for how reservations stay correct across redeliveries and
// crashes.
package inventory

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/kvstate"
)

// Names of the JetStream assets the inventory service owns.
const (
	// StockBucket holds one key per SKU: its available quantity.
	StockBucket = "inventory_stock"
	// ReservationBucket holds one key per order: its reservation state.
	ReservationBucket = "inventory_reservations"
	// Durable consumes the orders' events (OrdersFilter), partitioned
	// by order id between the inventory instances (consumers inventory-p0
	// to inventory-p<N-1>, N = events.OrderPartitions): one order's created
	// and cancelled are handled by one instance at a time, one after the
	// other, in the order they were published.
	Durable = "inventory"
	// OrdersFilter is what the inventory reads from ORDERS: every
	// version-1 order event, each keyed by its order id.
	OrdersFilter = "orders.*.v1.*"
)

// Service is a running inventory service.
type Service struct {
	svc          *framework.Service
	log          *slog.Logger
	stock        jetstream.KeyValue
	reservations jetstream.KeyValue
	locks        keyedMutex // per order: serialises one order's saga steps
	skuLocks     keyedMutex // per SKU: spares this process's workers CAS conflicts
}

// New declares the streams (reconciling INVENTORY, which it owns, and
// checking ORDERS) and buckets the inventory needs and starts
// consuming orders on svc: one subscription, partitioned by order id
// (SubscribeOptions.Partitioned) between the instances, so that an order's
// events are handled by one instance in the order they were published
// while different orders run in parallel. opts (nil for the defaults) set
// the rest (concurrency, ack mode, middleware). svc.Shutdown stops it and
// hands its partitions over.
func New(ctx context.Context, svc *framework.Service, opts *framework.SubscribeOptions) (*Service, error) {
	return newService(ctx, svc, nil, opts)
}

// newService is New with a seam for tests: wrap, if not nil, wraps both
// buckets (to inject crashes between writes).
func newService(ctx context.Context, svc *framework.Service, wrap func(jetstream.KeyValue) jetstream.KeyValue, opts *framework.SubscribeOptions) (*Service, error) {
	if err := events.Declare(ctx, svc, events.InventoryStream); err != nil {
		return nil, err
	}
	s := &Service{svc: svc, log: svc.Logger()}
	var err error
	if s.stock, err = kvstate.DeclareBucket(ctx, svc, StockBucket, "jetkit sample inventory: available stock per SKU"); err != nil {
		return nil, err
	}
	if s.reservations, err = kvstate.DeclareBucket(ctx, svc, ReservationBucket, "jetkit sample inventory: reservation state per order"); err != nil {
		return nil, err
	}
	if wrap != nil {
		s.stock, s.reservations = wrap(s.stock), wrap(s.reservations)
	}
	o := framework.SubscribeOptions{}
	if opts != nil {
		o = *opts
	}
	o.Partitioned = true
	if _, err := framework.SubscribeHandler(ctx, svc, OrdersFilter, Durable, framework.HandlerFunc(s.handleOrder), &o); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return s, nil
}

// Framework is the framework service this inventory runs on.
func (s *Service) Framework() *framework.Service { return s.svc }
