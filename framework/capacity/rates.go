package capacity

import (
	"fmt"
	"math"
	"time"
)

// saturated reports whether work waited at every sample of the window:
// messages not yet delivered, or ack-pending at the consumer's limit. The
// instances were then busy all the time, so throughput is their capacity.
func saturated(rw []Sample) bool {
	if len(rw) < 2 {
		return false
	}
	for _, s := range rw {
		busy := s.NumPending > 0 || (s.MaxAckPending > 0 && s.NumAckPending >= s.MaxAckPending)
		if !busy {
			return false
		}
	}
	return true
}

func instancesOf(lt *LocalTiming) int {
	if lt == nil {
		return 0
	}
	return lt.Instances
}

// arrivals counts messages matching the consumer's filter that arrived
// between a and b. A matching message is either still pending (not yet
// delivered) or was delivered for the first time, so
//
//	arrivals = Δnum_pending + first deliveries.
//
// For a consumer that sees the whole stream, first deliveries are the
// advance of its read position delivered.stream_seq (every sequence in
// between matched). For a filtered consumer sequences in between belong to
// other subjects too, so first deliveries are counted as the advance of
// delivered.consumer_seq, which also counts redeliveries: exact when
// nothing is redelivered, an over-estimate by the redelivery rate when
// something is (approx is then true). The stream's last sequence is never
// used: it counts other subjects' messages.
func arrivals(a, b Sample) (n float64, firstDeliveries float64, approx bool) {
	dPending := float64(b.NumPending) - float64(a.NumPending)
	if b.Filtered || a.Filtered {
		firstDeliveries = float64(b.Delivered.Consumer) - float64(a.Delivered.Consumer)
		approx = a.NumRedelivered > 0 || b.NumRedelivered > 0
	} else {
		firstDeliveries = float64(b.Delivered.Stream) - float64(a.Delivered.Stream)
	}
	firstDeliveries = max(firstDeliveries, 0)
	return max(dPending+firstDeliveries, 0), firstDeliveries, approx
}

// rates measures λ and the processed rate between the first and last
// samples of the window. Processed = first deliveries − Δack-pending: a
// delivered message leaves ack-pending when it is acked or terminated.
func rates(w []Sample) (arrival, processed Rate) {
	if len(w) < 2 {
		note := "needs two samples"
		return Rate{Samples: len(w), Note: note}, Rate{Samples: len(w), Note: note}
	}
	a, b := w[0], w[len(w)-1]
	dt := b.At.Sub(a.At).Seconds()
	arrival = Rate{From: a.At, To: b.At, Samples: len(w)}
	processed = arrival
	if dt <= 0 {
		arrival.Note, processed.Note = "samples share a timestamp", "samples share a timestamp"
		return arrival, processed
	}
	n, first, approx := arrivals(a, b)
	arrival.PerSecond = n / dt
	done := max(first-(float64(b.NumAckPending)-float64(a.NumAckPending)), 0)
	processed.PerSecond = done / dt
	if b.Filtered {
		arrival.Note = "filtered consumer: Δpending + Δdelivered.consumer_seq"
	} else {
		arrival.Note = "Δpending + Δdelivered.stream_seq"
	}
	if approx {
		arrival.Note += "; redeliveries in the window count as arrivals (over-estimate)"
		processed.Note = "redeliveries in the window count as processed (over-estimate)"
	}
	return arrival, processed
}

// Tuning of the arrival-rate estimator (see docs/capacity.md).
const (
	// defaultRateSamples is the long window: the most samples λ is averaged
	// over while the rate holds steady.
	defaultRateSamples = 30
	// changeZ is how many standard deviations an interval's count must lie
	// from the current level to count as a deviation.
	changeZ = 3.0
	// changeRun is how many consecutive deviations in the same direction
	// make a change of level (one is noise, or the interval a step fell in).
	changeRun = 2
)

// interval is the arrival count between two consecutive samples.
type interval struct {
	n, dt    float64
	from, to time.Time
}

// level is the arrival rate over a run of intervals, and the
// overdispersion φ of their counts: the variance of a count over its
// Poisson variance (1 for Poisson arrivals, more for bursts), at least 1.
func level(iv []interval) (rate, phi float64) {
	var n, dt float64
	for _, x := range iv {
		n += x.n
		dt += x.dt
	}
	if dt <= 0 {
		return 0, 1
	}
	rate = n / dt
	phi = 1
	if len(iv) >= 2 && rate > 0 {
		var chi float64
		for _, x := range iv {
			e := rate * x.dt
			chi += (x.n - e) * (x.n - e) / e
		}
		phi = max(1, chi/float64(len(iv)-1))
	}
	return rate, phi
}

// arrivalRate estimates λ from the samples w (oldest first), following a
// change of level within changeRun intervals and ignoring noise. It splits
// w into per-interval arrival counts and walks them keeping a current level:
// the counts since the last change, at most long intervals back. A count
// deviates when it lies more than changeZ standard deviations from the
// level, the variance being φ·(expected count) (at least 1 message²): φ
// learns the burstiness of the arrivals, so on/off bursts with a steady
// mean widen the band instead of looking like changes. changeRun
// deviations in a row in the same direction are a change: the level
// restarts at the newest of them (the first may straddle the step). A lone
// deviation joins the level once the next count is back in the band. λ is
// the level's rate; a pending deviation is left out until it is decided.
func arrivalRate(w []Sample, long int) Rate {
	if len(w) < 2 {
		return Rate{Samples: len(w), Note: "needs two samples"}
	}
	ivs := make([]interval, 0, len(w)-1)
	approx := false
	for i := 1; i < len(w); i++ {
		dt := w[i].At.Sub(w[i-1].At).Seconds()
		if dt <= 0 {
			continue
		}
		n, _, ap := arrivals(w[i-1], w[i])
		approx = approx || ap
		ivs = append(ivs, interval{n: n, dt: dt, from: w[i-1].At, to: w[i].At})
	}
	if len(ivs) == 0 {
		return Rate{Samples: len(w), Note: "samples share a timestamp"}
	}
	long = max(long, changeRun)
	start, run, sign := 0, 0, 0.0 // level = ivs[start:i-run]
	var changed time.Time
	window := func(end int) []interval { return ivs[max(start, end-long):end] }
	for i, x := range ivs {
		cur := window(i - run)
		if len(cur) == 0 {
			continue
		}
		rate, phi := level(cur)
		exp := rate * x.dt
		z := (x.n - exp) / math.Sqrt(max(phi*exp, 1))
		if math.Abs(z) <= changeZ {
			run = 0
			continue
		}
		s := math.Copysign(1, z)
		if run > 0 && s != sign {
			run = 0 // the earlier deviation was noise: it joins the level
		}
		run, sign = run+1, s
		if run >= changeRun {
			start, run, changed = i, 0, x.from
		}
	}
	cur := window(len(ivs) - run)
	if len(cur) == 0 { // only deviations so far: use them
		cur = ivs
	}
	rate, phi := level(cur)
	r := Rate{PerSecond: rate, From: cur[0].from, To: cur[len(cur)-1].to, Samples: len(cur) + 1}
	// The window's count N is overdispersed Poisson, var N = φ·N: the rate
	// N/T has the standard error √(φ·N)/T = √(φ·rate/T).
	if span := r.To.Sub(r.From).Seconds(); span > 0 {
		r.StdErr = math.Sqrt(phi * rate / span)
	}
	switch {
	case !changed.IsZero() && start > len(ivs)-long:
		r.Note = fmt.Sprintf("since a change of level detected at %s", changed.Format(time.TimeOnly))
	default:
		r.Note = fmt.Sprintf("steady level over the last %d intervals", len(cur))
	}
	if run > 0 {
		r.Note += fmt.Sprintf("; the newest %d interval(s) deviate and are left out until confirmed", run)
	}
	if w[len(w)-1].Filtered {
		r.Note += "; filtered consumer: Δpending + Δdelivered.consumer_seq"
	}
	if approx {
		r.Note += "; redeliveries count as arrivals (over-estimate)"
	}
	return r
}
