package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/testenv"
)

type invoice struct {
	ID string `json:"id"`
}

// A handler refuses an event for good; the dead letter says why, and an
// operator's tool lists it.
func ExampleStore_List() {
	srv, err := testenv.Run(testenv.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := framework.New(ctx, srv.Config("billing"), framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		panic(err)
	}
	defer svc.Shutdown(context.Background())
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "INVOICES", Subjects: []string{"invoices.>"}}); err != nil {
		panic(err)
	}
	issued := framework.MustNewTopic[invoice]("invoices.issued.v1")
	if _, err := framework.Subscribe(ctx, svc, issued, "billing", func(ctx context.Context, ev invoice, m *framework.Message) error {
		return framework.Permanent(errors.New("unknown customer"))
	}, nil); err != nil {
		panic(err)
	}
	if _, err := issued.Publish(ctx, svc, invoice{ID: "i-1"}); err != nil {
		panic(err)
	}

	store, err := dlq.Open(ctx, svc.Conn().JS, svc.Config().DeadLetterStream)
	if err != nil {
		panic(err)
	}
	var entries []dlq.Entry
	for len(entries) == 0 && ctx.Err() == nil { // the dead letter is written asynchronously
		entries, _ = store.List(ctx, dlq.Filter{Consumer: "billing"}, 10)
	}
	for _, e := range entries {
		fmt.Println(e.Reason, e.Subject, e.Error)
	}
	// Output: permanent invoices.issued.v1 unknown customer
}
