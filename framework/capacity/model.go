// Package capacity estimates whether a JetStream consumer keeps up with its
// stream, and how many instances it needs to catch up in time.
//
// It combines three known ideas and adds a fourth:
//   - KEDA's JetStream scaler sizes by lag alone; capacity also measures how
//     fast an instance works (μ) and how fast work arrives (λ);
//   - kafka-lag-exporter turns offset lag into time lag by interpolating over
//     sampled (offset, time) points; capacity reads the oldest unprocessed
//     message's timestamp and falls back to that interpolation;
//   - Burrow classifies a consumer as OK, WARN, STALL or STOP from a window
//     of samples; capacity does the same from ConsumerInfo samples;
//   - and a model of how capacity arrives when you scale: a new instance
//     works only after its start-up delay T₀.
//
// # The model
//
// Capacity at time t is P(t) = Σᵢ Aᵢ·H(t − Tᵢ): instance i adds its rate Aᵢ
// once its start-up delay Tᵢ has passed. With arrival rate λ and backlog B
// (pending + ack-pending), dB/dt = λ − P(t) while B > 0. Hence
//
//	utilisation            ρ = λ / P            (ρ ≥ 1 never drains)
//	time to drain          T = B / (P − λ)      when P > λ
//	backlog at T₀          B(T₀) = max(0, B + (λ − cμ)·T₀)
//	replicas for target D  (c + k)·μ ≥ λ + B(T₀)/(D − T₀)
//	steady state for ρ*    c = ⌈λ / (μ·ρ*)⌉
//
// The functions in model.go are pure; sampler.go reads the server,
// estimate.go turns samples into these inputs, metrics.go exports the
// results as OpenTelemetry gauges and web.go renders them as HTML.
package capacity

import (
	"encoding/json"
	"math"
	"sort"
	"time"
)

// eps absorbs floating-point noise before rounding up replica counts, so
// that an exact 3.0000000001 does not become 4.
const eps = 1e-9

// Utilisation is ρ = λ / P: arrivals over capacity. It is 0 when nothing
// arrives and +Inf when something arrives and there is no capacity.
func Utilisation(lambda, capacity float64) float64 {
	switch {
	case lambda <= 0:
		return 0
	case capacity <= 0:
		return math.Inf(1)
	}
	return lambda / capacity
}

// TimeToDrain is how long a backlog takes to reach zero at constant arrival
// rate lambda and capacity (both per second): B / (P − λ). ok is false when
// it never drains (P ≤ λ with B > 0). An empty backlog drains in 0.
func TimeToDrain(backlog, lambda, capacity float64) (d time.Duration, ok bool) {
	if backlog <= 0 {
		return 0, true
	}
	if capacity <= lambda {
		return 0, false
	}
	return seconds(backlog / (capacity - lambda)), true
}

// SteadyReplicas is the number of instances that keep utilisation at or
// below target (0 < target ≤ 1) at arrival rate lambda and per-instance
// rate mu: ⌈λ / (μ·ρ*)⌉. It is 0 when nothing arrives, and -1 when mu or
// target is not positive (unknown).
func SteadyReplicas(lambda, mu, target float64) int {
	if lambda <= 0 {
		return 0
	}
	if mu <= 0 || target <= 0 {
		return -1
	}
	return ceilCount(lambda / (mu * target))
}

// maxCount bounds instance counts, so absurd inputs (μ near zero) give a
// large number rather than an integer overflow.
const maxCount = 1 << 20

// ceilCount is ⌈x⌉ for an instance count, tolerant of floating-point
// noise, at least 0 and at most maxCount.
func ceilCount(x float64) int {
	if math.IsNaN(x) || x <= 0 {
		return 0
	}
	if x >= maxCount {
		return maxCount
	}
	return int(math.Ceil(x - eps))
}

// Instance is one consumer instance in the model: it processes Rate
// messages per second once Ready has passed (0 = already running).
type Instance struct {
	// Rate is the instance's processing rate Aᵢ in messages per second.
	Rate float64
	// Ready is its start-up delay Tᵢ from now.
	Ready time.Duration
}

// Model is the backlog model dB/dt = λ − Σᵢ Aᵢ·H(t − Tᵢ), B ≥ 0, with a
// constant arrival rate.
type Model struct {
	// Backlog is B(0): messages pending or awaiting an ack now.
	Backlog float64
	// Lambda is the arrival rate λ in messages per second.
	Lambda float64
	// Instances are the running and starting instances.
	Instances []Instance
}

// segment is an interval [from, to) with constant capacity.
type segment struct {
	from, to time.Duration // to < 0 means open-ended
	capacity float64
}

func (m Model) segments() []segment {
	inst := append([]Instance(nil), m.Instances...)
	sort.Slice(inst, func(i, j int) bool { return inst[i].Ready < inst[j].Ready })
	var segs []segment
	var capNow float64
	var from time.Duration
	for _, in := range inst {
		ready := max(in.Ready, 0)
		if ready > from {
			segs = append(segs, segment{from: from, to: ready, capacity: capNow})
			from = ready
		}
		capNow += in.Rate
	}
	return append(segs, segment{from: from, to: -1, capacity: capNow})
}

// At is the predicted backlog B(t).
func (m Model) At(t time.Duration) float64 {
	b := max(m.Backlog, 0)
	for _, s := range m.segments() {
		end := s.to
		if end < 0 || end > t {
			end = t
		}
		if end <= s.from {
			break
		}
		b = max(0, b+(m.Lambda-s.capacity)*(end-s.from).Seconds())
		if end == t {
			break
		}
	}
	return b
}

// DrainTime is when the backlog first reaches zero and stays there (the
// capacity from then on exceeds λ, or equals it with nothing left). ok is
// false when it never drains.
func (m Model) DrainTime() (d time.Duration, ok bool) {
	b := max(m.Backlog, 0)
	segs := m.segments()
	for i, s := range segs {
		last := i == len(segs)-1
		slope := m.Lambda - s.capacity
		if b <= 0 && slope <= 0 {
			// Empty and not refilling: drained unless a later segment
			// refills, which cannot happen because capacity only grows.
			return s.from, true
		}
		if slope < 0 {
			reach := seconds(b / -slope)
			if last || s.from+reach <= s.to {
				return s.from + reach, true
			}
		}
		if last {
			return 0, false
		}
		b = max(0, b+slope*(s.to-s.from).Seconds())
	}
	return 0, false
}

// Point is one point of a predicted backlog curve.
type Point struct {
	// T is the time from now.
	T time.Duration `json:"-"`
	// Backlog is the predicted B(T).
	Backlog float64 `json:"backlog"`
}

// MarshalJSON writes T in seconds: {"t_s": 1.5, "backlog": 120}.
func (p Point) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		T       Seconds `json:"t_s"`
		Backlog float64 `json:"backlog"`
	}{Seconds(p.T), p.Backlog})
}

// Curve samples B(t) from 0 to horizon in steps of step, and includes the
// exact start-up and drain instants so a plotted curve shows its corners.
func (m Model) Curve(horizon, step time.Duration) []Point {
	if step <= 0 || horizon <= 0 {
		return []Point{{0, m.At(0)}}
	}
	ts := map[time.Duration]bool{}
	for t := time.Duration(0); t <= horizon; t += step {
		ts[t] = true
	}
	ts[horizon] = true
	for _, in := range m.Instances {
		if in.Ready > 0 && in.Ready < horizon {
			ts[in.Ready] = true
		}
	}
	if d, ok := m.DrainTime(); ok && d < horizon {
		ts[d] = true
	}
	out := make([]Point, 0, len(ts))
	for t := range ts {
		out = append(out, Point{T: t, Backlog: m.At(t)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}

// ScaleInput describes the situation a scale-up decision is made in.
type ScaleInput struct {
	// Backlog is B now (pending + ack-pending).
	Backlog float64
	// Lambda is the arrival rate λ per second.
	Lambda float64
	// Mu is the per-instance service rate μ per second.
	Mu float64
	// Current is c, the instances running now.
	Current int
	// Target is D, the drain time wanted from now.
	Target time.Duration
	// Startup is T₀, how long a new instance takes to start working.
	Startup time.Duration
}

// ScalePlan is the answer to "how many instances drain the backlog within
// the target?".
type ScalePlan struct {
	// Total is c + k, the instances needed; -1 when μ is unknown.
	Total int `json:"total"`
	// Add is k, the instances to start now (0 when the current ones suffice).
	Add int `json:"add"`
	// Needed is the fewest instances that drain within the target, which
	// is below Current when the current ones have room to spare:
	// ⌈(λ + B/D)/μ⌉ then, Total otherwise. An autoscaler should follow
	// this rather than Total, which never scales down.
	Needed int `json:"needed"`
	// Feasible is false when no number of new instances meets the target
	// because it is not later than the start-up delay (D ≤ T₀) and the
	// current instances alone cannot meet it. Add and Drain then describe
	// the fallback: meet the target counted from when the new instances are
	// ready (T₀ + D).
	Feasible bool `json:"feasible"`
	// BacklogAtReady is B(T₀) with the current instances only.
	BacklogAtReady float64 `json:"backlog_at_ready"`
	// Drain is the predicted drain time with Total instances; valid when
	// Drains is true.
	Drain time.Duration `json:"-"`
	// Drains is false when even Total instances never drain.
	Drains bool `json:"drains"`
	// Earliest is the earliest drain any number of added instances can reach:
	// T₀ if the backlog remains at T₀, else the current drain time.
	Earliest time.Duration `json:"-"`
	// Reason says in words how the plan was reached.
	Reason string `json:"reason"`
}

// MarshalJSON writes the durations in seconds (drain_s, earliest_s), and
// an unknown Total or Needed (μ unknown) as null.
func (p ScalePlan) MarshalJSON() ([]byte, error) {
	type plain ScalePlan
	return json.Marshal(struct {
		plain
		Total    *int    `json:"total"`
		Needed   *int    `json:"needed"`
		Drain    Seconds `json:"drain_s"`
		Earliest Seconds `json:"earliest_s"`
	}{plain(p), knownCount(p.Total), knownCount(p.Needed), Seconds(p.Drain), Seconds(p.Earliest)})
}

// knownCount is n, or nil (JSON null) for a negative "unknown".
func knownCount(n int) *int {
	if n < 0 {
		return nil
	}
	return &n
}

// Model is the backlog model of the plan: the current instances now and
// Add more after the start-up delay.
func (in ScaleInput) Model(add int) Model {
	// Instances that start together act as one of their summed rate.
	m := Model{Backlog: in.Backlog, Lambda: in.Lambda}
	if in.Current > 0 {
		m.Instances = append(m.Instances, Instance{Rate: float64(in.Current) * in.Mu})
	}
	if add > 0 {
		m.Instances = append(m.Instances, Instance{Rate: float64(add) * in.Mu, Ready: in.Startup})
	}
	return m
}

// BacklogAtStartup is B(T₀) = max(0, B + (λ − cμ)·T₀) for the current
// instances alone.
func (in ScaleInput) BacklogAtStartup() float64 {
	return in.Model(0).At(in.Startup)
}

// ReplicasNeeded solves (c + k)·μ ≥ λ + B(T₀)/(D − T₀) for the smallest
// k ≥ 0. When D ≤ T₀ only the current instances can help before the target:
// if they drain in time k = 0, else the plan is infeasible and falls back
// to draining within D counted from when new instances are ready (T₀ + D).
func ReplicasNeeded(in ScaleInput) ScalePlan {
	if in.Mu <= 0 {
		return ScalePlan{Total: -1, Needed: -1, Reason: "service rate μ unknown: no plan"}
	}
	if in.Target <= 0 {
		return ScalePlan{Total: -1, Needed: -1, Reason: "the target drain time must be positive"}
	}
	c := max(in.Current, 0)
	bT0 := in.BacklogAtStartup()
	p := ScalePlan{BacklogAtReady: bT0, Feasible: true}
	current := in.Model(0)
	if d, ok := current.DrainTime(); ok && d <= in.Target {
		p.Total, p.Add = c, 0
		p.Drain, p.Drains = d, true
		p.Earliest = d
		p.Needed = ceilCount((in.Lambda + in.Backlog/in.Target.Seconds()) / in.Mu)
		p.Reason = "the running instances drain within the target"
		return p
	}
	p.Earliest = in.Startup
	if d, ok := current.DrainTime(); ok && d <= in.Startup {
		// The running instances drain before a new one could start, only
		// later than the target: adding instances cannot make it sooner.
		p.Total, p.Add, p.Drain, p.Drains, p.Earliest, p.Needed = c, 0, d, true, d, c
		p.Feasible = false
		p.Reason = "the running instances drain after the target but before a new instance could start: no scale-up helps"
		return p
	}
	window := in.Target - in.Startup
	if window <= 0 {
		p.Feasible = false
		window = in.Target
		if window <= 0 {
			window = in.Startup
		}
		p.Reason = "target is not later than the start-up delay: no scale-up can meet it; planned to drain within the target after the new instances are ready"
	} else {
		p.Reason = "(c+k)·μ ≥ λ + B(T₀)/(D−T₀)"
	}
	total := ceilCount((in.Lambda + bT0/window.Seconds()) / in.Mu)
	if total <= c {
		total = c + 1 // the current instances do not suffice (checked above)
	}
	p.Total, p.Add, p.Needed = total, total-c, total
	p.Drain, p.Drains = in.Model(p.Add).DrainTime()
	return p
}

func seconds(s float64) time.Duration {
	if math.IsInf(s, 1) || s > float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}
