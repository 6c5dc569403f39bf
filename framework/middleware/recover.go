package middleware

import (
	"context"
	"runtime/debug"

	"github.com/jetkit/jetkit/framework"
)

// Recover turns a panic in the handler (or in middleware inside it) into a
// *framework.PanicError that carries the value and the stack. The message
// is then retried or dead-lettered like any other error and the worker
// keeps running. The dispatcher recovers panics too; Recover exists so
// that middleware outside it (metrics, logging, your own) sees an error
// instead of an unwinding panic. Put it innermost:
//
//	framework.Subscribe(ctx, svc, orderCreated, "billing", charge,
//		&framework.SubscribeOptions{Middleware: []framework.Middleware{myMetrics, middleware.Recover()}})
func Recover() framework.Middleware {
	return func(next framework.Handler) framework.Handler {
		return framework.HandlerFunc(func(ctx context.Context, m *framework.Message) error {
			return safeCall(ctx, next, m)
		})
	}
}

// safeCall runs next, converting a panic into a *framework.PanicError.
func safeCall(ctx context.Context, next framework.Handler, m *framework.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &framework.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return next.Handle(ctx, m)
}
