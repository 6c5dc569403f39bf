// Package rawperm lends jetkit's own programs (the sample services, the
// deploy tests) the framework's permission watch for JetStream calls they
// make on a service's raw connection: a call the server refuses ends at
// once with an error naming the subject, instead of timing out. It is not
// public API: package framework registers the watch when it is
// initialised, and users call framework's own methods, which watch
// their calls themselves.
package rawperm

import (
	"context"
	"sync/atomic"
)

// WatchFunc starts a watch on conn (a *framework.Conn) for JetStream API,
// KV and reply subjects. The returned ctx ends when the server refuses one;
// done takes the call's error and returns it naming the refusal.
type WatchFunc func(ctx context.Context, conn any) (_ context.Context, done func(error) error)

var watch atomic.Pointer[WatchFunc]

// Register is called by package framework.
func Register(f WatchFunc) { watch.Store(&f) }

// Watch starts a watch on conn, which must be a *framework.Conn:
//
//	ctx, done := rawperm.Watch(ctx, svc.Conn())
//	_, err := kv.Status(ctx)
//	err = done(err)
func Watch(ctx context.Context, conn any) (context.Context, func(error) error) {
	f := watch.Load()
	if f == nil {
		panic("rawperm: package framework is not linked in")
	}
	return (*f)(ctx, conn)
}
