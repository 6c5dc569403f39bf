package framework_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type shipment struct {
	OrderID string `json:"order_id"`
	Step    int    `json:"step"`
}

// Two instances of one service share the partitions of a partitioned
// stream: each order's events are handled by one instance at a time, in
// stream order.
func ExampleSubscribeOptions_partitioned() {
	srv, err := testenv.Run(testenv.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	ctx := context.Background()
	shipments := framework.MustNewTopic[shipment]("shipping.step.v1", framework.Keyed())
	handle := func(ctx context.Context, s shipment, m *framework.Message) error { return nil }

	var subs []*framework.Subscription
	for _, name := range []string{"shipper-1", "shipper-2"} {
		svc, err := framework.New(ctx, srv.Config(name), framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer svc.Shutdown(ctx)
		// Every instance declares the same stream: 8 partitions.
		if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "SHIPPING", Subjects: []string{"shipping.>"}, Partitions: 8}); err != nil {
			fmt.Println(err)
			return
		}
		sub, err := framework.Subscribe(ctx, svc, shipments, "shipper", handle, &framework.SubscribeOptions{Partitioned: true})
		if err != nil {
			fmt.Println(err)
			return
		}
		subs = append(subs, sub)
	}
	// Wait until the two instances have split the partitions.
	err = testenv.WaitFor(ctx, 10*time.Second, func() bool {
		a, b := subs[0].Partitions(), subs[1].Partitions()
		return len(a) > 0 && len(b) > 0 && len(a)+len(b) == 8
	})
	fmt.Println("partitions split between two instances:", err == nil)
	// Output: partitions split between two instances: true
}
