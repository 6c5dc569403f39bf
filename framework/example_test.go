package framework_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type OrderCreated struct {
	ID  string `json:"id"`
	SKU string `json:"sku"`
}

func ExampleNewTopic() {
	// Package-level declarations use MustNewTopic; NewTopic reports a bad
	// subject computed at run time as an error.
	orderCreated := framework.MustNewTopic[OrderCreated]("orders.created.v1", framework.Keyed())
	fmt.Println(orderCreated.Subject(), orderCreated.Keyed())

	_, err := framework.NewTopic[OrderCreated]("orders.created v1")
	fmt.Println(errors.Is(err, framework.ErrInvalidSubject))
	// Output:
	// orders.created.v1 true
	// true
}

func ExamplePermanent() {
	// A handler marks a failure that retrying cannot fix; the message is
	// dead-lettered at once instead of being retried.
	handle := func(ctx context.Context, ev OrderCreated, m *framework.Message) error {
		if ev.SKU == "" {
			return framework.Permanent(fmt.Errorf("order %s has no SKU", ev.ID))
		}
		return nil
	}
	err := handle(context.Background(), OrderCreated{ID: "o-1"}, nil)
	fmt.Println(framework.IsPermanent(err), err)
	// Output: true order o-1 has no SKU
}

func ExampleSecret() {
	cfg := framework.DefaultConfig()
	cfg.Token = "s3cr3t"
	// Secrets never print: not with fmt, log/slog or encoding/json.
	fmt.Printf("%v|%s|%#v\n", cfg.Token, cfg.Token, cfg.Token)
	fmt.Println(cfg.Token.Reveal() == "s3cr3t")
	// Output:
	// [redacted]|[redacted]|framework.Secret("[redacted]")
	// true
}

func ExampleSubscribe() {
	srv, err := testenv.Run(testenv.Options{}) // an embedded NATS server
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	svc, err := framework.New(ctx, srv.Config("inventory"), framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		panic(err)
	}
	defer svc.Shutdown(context.Background())
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		panic(err)
	}
	orderCreated := framework.MustNewTopic[OrderCreated]("orders.created.v1", framework.Keyed())
	handled := make(chan string)
	_, err = framework.Subscribe(ctx, svc, orderCreated, "inventory",
		func(ctx context.Context, ev OrderCreated, m *framework.Message) error {
			handled <- ev.ID + " " + ev.SKU + " from " + m.Subject
			return nil // acked
		},
		&framework.SubscribeOptions{Concurrency: 8, OrderedByKey: true})
	if err != nil {
		panic(err)
	}
	if _, err := orderCreated.Publish(ctx, svc, OrderCreated{ID: "o-1", SKU: "apple"}, framework.WithKey("o-1")); err != nil {
		panic(err)
	}
	fmt.Println(<-handled)
	// Output: o-1 apple from orders.created.v1.o-1
}
