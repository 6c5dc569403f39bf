package bench

import (
	"context"
	"runtime/pprof"
)

// labelled runs one side of a comparison under the pprof label
// side=<side>. Goroutines it starts (the client's read loop, nats.go's
// Consume, jetkit's workers) inherit the label and the embedded server's
// do not, so `go tool pprof -tagfocus side=jetkit` shows one client's
// own cost in a --cpuprofile of the whole run.
func labelled(ctx context.Context, side string, run func(context.Context) (measurement, error)) (m measurement, err error) {
	pprof.Do(ctx, pprof.Labels("side", side), func(ctx context.Context) { m, err = run(ctx) })
	return m, err
}
