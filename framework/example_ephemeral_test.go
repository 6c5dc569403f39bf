package framework_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv/embedded"
)

func ExampleSubscribeOptions_ephemeral() {
	srv, err := embedded.Run(embedded.Options{}) // an embedded NATS server
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	svc, err := framework.New(ctx, srv.Config("push"), framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		panic(err)
	}
	defer svc.Shutdown(context.Background())
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		panic(err)
	}
	orderCreated := framework.MustNewTopic[OrderCreated]("orders.created.v1")

	// Two readers, e.g. two processes each pushing events to their own
	// websocket clients: each has a consumer of its own and gets every
	// event. "" as the durable name: jetkit names the consumer.
	var readers [2]chan string
	var subs [2]*framework.Subscription
	for i := range readers {
		readers[i] = make(chan string, 1)
		subs[i], err = framework.Subscribe(ctx, svc, orderCreated, "",
			func(ctx context.Context, ev OrderCreated, m *framework.Message) error {
				readers[i] <- ev.ID
				return nil
			},
			&framework.SubscribeOptions{Ephemeral: true, DeliverNew: true})
		if err != nil {
			panic(err)
		}
	}
	if _, err := orderCreated.Publish(ctx, svc, OrderCreated{ID: "o-1", SKU: "apple"}); err != nil {
		panic(err)
	}
	fmt.Println("reader 0 got", <-readers[0])
	fmt.Println("reader 1 got", <-readers[1])

	// Stop deletes the reader's consumer.
	subs[0].Stop(ctx)
	_, err = svc.Conn().JS.Consumer(ctx, "ORDERS", subs[0].Durable())
	fmt.Println("consumer gone after Stop:", errors.Is(err, jetstream.ErrConsumerNotFound))
	// Output:
	// reader 0 got o-1
	// reader 1 got o-1
	// consumer gone after Stop: true
}
