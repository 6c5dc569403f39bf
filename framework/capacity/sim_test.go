package capacity

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// simT0 is the start of every simulated run.
var simT0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// arrivalsPoisson draws arrival times (seconds from simT0) of a Poisson
// process whose rate is rate(t), by thinning at rate top.
func arrivalsPoisson(rng *rand.Rand, dur, top float64, rate func(t float64) float64) []float64 {
	var out []float64
	for t := rng.ExpFloat64() / top; t < dur; t += rng.ExpFloat64() / top {
		if rng.Float64()*top < rate(t) {
			out = append(out, t)
		}
	}
	return out
}

// arrivalsEven is a fixed-rate publisher: rate(t) messages a second,
// evenly spaced.
func arrivalsEven(dur float64, rate func(t float64) float64) []float64 {
	var out []float64
	acc := 0.0
	const dt = 1e-3
	for t := 0.0; t < dur; t += dt {
		acc += rate(t) * dt
		for acc >= 1 {
			out = append(out, t)
			acc--
		}
	}
	return out
}

// simulate feeds arrival times to one consumer of total capacity capacity
// (messages a second, a fluid server that completes work in order; ≤ 0:
// nobody consumes) and samples it every interval from offset on: what
// ConsumerInfo would say of an unfiltered pull consumer whose instances
// fetch one message at a time (nothing sits in ack-pending).
func simulate(arr []float64, dur, offset, interval, capacity float64) []Sample {
	sort.Float64s(arr)
	var out []Sample
	done := 0.0 // messages completed (fluid)
	i, last := 0, 0.0
	for at := offset; at <= dur; at += interval {
		// Advance the fluid server from last to at, arrival by arrival.
		for ; i < len(arr) && arr[i] <= at; i++ {
			done = math.Min(float64(i), done+capacity*(arr[i]-last))
			last = arr[i]
		}
		done = math.Min(float64(i), done+capacity*(at-last))
		last = at
		d := uint64(math.Floor(done))
		out = append(out, Sample{
			At:         simT0.Add(time.Duration(at * float64(time.Second))),
			NumPending: uint64(i) - d, MaxAckPending: 1000, NumWaiting: 1,
			Delivered: jetstream.SequenceInfo{Consumer: d, Stream: d},
			AckFloor:  jetstream.SequenceInfo{Consumer: d, Stream: d},
		})
	}
	return out
}
