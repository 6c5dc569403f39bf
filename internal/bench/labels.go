package bench

import (
	"context"
	"runtime/pprof"
	"slices"
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

// side is one side of a comparison: its pprof label and one run.
type side struct {
	label string
	run   func(context.Context) (measurement, error)
}

// compare runs the sides rounds times, alternating (raw, jetkit, raw,
// jetkit, ...), and returns each side's median run by rate.
func (e *env) compare(ctx context.Context, rounds int, sides ...side) ([]measurement, error) {
	runs := make([][]measurement, len(sides))
	for range max(1, rounds) {
		for i, s := range sides {
			m, err := labelled(ctx, s.label, s.run)
			if err != nil {
				return nil, err
			}
			runs[i] = append(runs[i], m)
		}
	}
	out := make([]measurement, len(sides))
	for i, ms := range runs {
		slices.SortFunc(ms, func(a, b measurement) int {
			switch {
			case a.rate < b.rate:
				return -1
			case a.rate > b.rate:
				return 1
			}
			return 0
		})
		out[i] = ms[len(ms)/2]
	}
	return out, nil
}
