package frameworktest_test

import (
	"context"
	"fmt"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/frameworktest"
)

// A handler's unit test: build the delivery, run the handler, look at
// what it published. No server is needed.
func Example() {
	rec := frameworktest.NewRecorder()
	h := reserver{pub: rec.Publisher()}

	m, err := frameworktest.NewMessage(placed, orderPlaced{ID: "o-1", Qty: 2}, framework.WithKey("o-1"))
	if err != nil {
		panic(err)
	}
	if err := frameworktest.Deliver(context.Background(), placed, h.handle, m); err != nil {
		panic(err)
	}
	events, _ := frameworktest.Events(rec, reserved)
	fmt.Println(m.Subject, "->", events)
	// Output: orders.placed.v1.o-1 -> [{o-1}]
}
