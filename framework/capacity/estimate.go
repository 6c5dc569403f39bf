package capacity

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jetkit/jetkit/internal/wire"
)

// Params are the inputs an Estimator needs besides samples.
type Params struct {
	// Instances is c, the consumer instances running now. JetStream does
	// not tell how many clients pull from a consumer, so set it for remote
	// instances. 0 means: the number of local subscriptions sampled; else,
	// with ServiceRate given and the consumer saturated, processed rate / μ
	// rounded; else 1.
	Instances int
	// ServiceRate, when positive, is the per-instance rate μ to use instead
	// of measuring it (messages per second).
	ServiceRate float64
	// TargetDrain is D, the drain time wanted (default 60s).
	TargetDrain time.Duration
	// StartupDelay is T₀, how long a new instance takes to start working
	// (0: at once; `jetkit capacity` defaults to 15s).
	StartupDelay time.Duration
	// UtilisationTarget is ρ* for the steady-state replica count (default 0.8).
	UtilisationTarget float64
	// RateSamples is the long window: at most how many of the newest
	// samples the arrival rate λ is averaged over while it holds steady
	// (default 30). A change of level is followed within two samples
	// whatever this is (see docs/capacity.md); the processed rate is
	// measured over this window.
	RateSamples int
	// StatusSamples is how many of the newest samples the status looks at
	// (default 5): a stopped consumer is reported within that many intervals.
	StatusSamples int
	// ScaleDownHold is how long a lower replica count must be enough before
	// ReplicasNeeded goes down to it: the recommendation is the largest
	// count needed within the hold (default 5m, like KEDA's cooldown;
	// negative: no hold). Scale-up is never held.
	ScaleDownHold time.Duration
	// Partitions is the stream's partition count when the consumer is
	// partitioned (0: not partitioned). Instances beyond it get no
	// partition and add nothing, so ReplicasNeeded is capped at it.
	Partitions int
	// MinLocalReceived is how many deliveries local subscriptions must have
	// handled before their handler timing is trusted (default 100; the
	// moving average starts at zero).
	MinLocalReceived uint64
}

func (p Params) withDefaults() Params {
	if p.TargetDrain <= 0 {
		p.TargetDrain = time.Minute
	}
	if p.StartupDelay < 0 {
		p.StartupDelay = 0
	}
	if p.UtilisationTarget <= 0 || p.UtilisationTarget > 1 {
		p.UtilisationTarget = 0.8
	}
	if p.RateSamples < 2 {
		p.RateSamples = defaultRateSamples
	}
	if p.StatusSamples < 2 {
		p.StatusSamples = 5
	}
	if p.ScaleDownHold == 0 {
		p.ScaleDownHold = 5 * time.Minute
	}
	if p.MinLocalReceived == 0 {
		p.MinLocalReceived = 100
	}
	return p
}

// Source names where a service rate came from.
type Source string

const (
	// SourceConfigured is a rate given in Params.ServiceRate.
	SourceConfigured Source = "configured"
	// SourceHandlerTiming is concurrency / average handler time of local
	// subscriptions.
	SourceHandlerTiming Source = "handler-timing"
	// SourceSaturated is processed throughput / instances, measured while
	// messages were waiting the whole window (the instances were busy).
	SourceSaturated Source = "saturated-throughput"
	// SourceEarlierSaturated is the last saturated measurement, kept while
	// the consumer now has spare capacity.
	SourceEarlierSaturated Source = "earlier-saturated-throughput"
	// SourceUnknown means μ cannot be told yet: not saturated, no local timing.
	SourceUnknown Source = "unknown"
)

// Rate is a rate in messages per second and the window it came from.
type Rate struct {
	// PerSecond is the rate.
	PerSecond float64 `json:"per_second"`
	// From and To bound the samples it was measured over.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Samples is how many samples the window held.
	Samples int `json:"samples"`
	// Note qualifies the number (approximation, source).
	Note string `json:"note,omitempty"`
	// StdErr is the standard error of PerSecond, where it is known (the
	// arrival rate: from the count over the window and its measured
	// overdispersion); PerSecond ± 2 StdErr holds the true rate about 95%
	// of the time.
	StdErr float64 `json:"std_err,omitempty"`
}

// Seconds is a duration that encodes in JSON as seconds.
type Seconds time.Duration

// MarshalJSON encodes the duration as a number of seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%.3f", time.Duration(s).Seconds()), nil
}

// Estimate is everything the estimator says about a consumer at one time.
type Estimate struct {
	// At is the time of the newest sample.
	At time.Time `json:"at"`
	// Stream and Consumer name the consumer.
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// Status is the Burrow-style health, StatusReason says why.
	Status       Status `json:"status"`
	StatusReason string `json:"status_reason"`
	// Stuck names, when the status is STALL, the registered instances whose
	// handlers have run longest (at most 3; StatusReason names them too).
	Stuck []BusyInstance `json:"stuck,omitempty"`
	// Backlog is B = Pending + AckPending now.
	Backlog    float64 `json:"backlog"`
	Pending    uint64  `json:"pending"`
	AckPending int     `json:"ack_pending"`
	// Arrival is λ, messages per second matching the consumer's filter.
	Arrival Rate `json:"arrival"`
	// Processed is the rate messages were acknowledged (or terminated).
	Processed Rate `json:"processed"`
	// ServiceRate is μ, one instance's rate; ServiceSource says how it was found.
	ServiceRate   Rate   `json:"service_rate"`
	ServiceSource Source `json:"service_source"`
	// HandlerServiceRate and SaturatedServiceRate are the two measurements
	// of μ when available (0 when not), whichever ServiceRate uses.
	HandlerServiceRate   float64 `json:"handler_service_rate,omitempty"`
	SaturatedServiceRate float64 `json:"saturated_service_rate,omitempty"`
	// Instances is c; InstancesSource says where it came from.
	Instances       int    `json:"instances"`
	InstancesSource string `json:"instances_source"`
	// Capacity is P = c·μ (0 when μ is unknown, and when the status is
	// STALL or STOP: instances that complete nothing add no capacity).
	Capacity float64 `json:"capacity"`
	// Utilisation is ρ = λ/P; -1 when something arrives and P is 0 or unknown.
	Utilisation float64 `json:"utilisation"`
	// TimeLag is the age of the oldest unprocessed message; TimeLagSource is
	// "read" (its timestamp), "interpolated" (from sampled sequence/time
	// points) or "none" (nothing unprocessed, or no way to tell).
	TimeLag       Seconds `json:"time_lag_s"`
	TimeLagSource string  `json:"time_lag_source"`
	// Drain is the time to drain at the current capacity; Drains is false
	// when it never drains (ρ ≥ 1) or μ is unknown.
	Drain  Seconds `json:"drain_s"`
	Drains bool    `json:"drains"`
	// TargetDrain and StartupDelay are the plan's D and T₀.
	TargetDrain  Seconds `json:"target_drain_s"`
	StartupDelay Seconds `json:"startup_delay_s"`
	// Plan is the scale-up recommendation for the target drain time.
	Plan ScalePlan `json:"plan"`
	// ReplicasNeeded is the instance count to run: max(Plan.Needed,
	// SteadyReplicas), never below Instances while a backlog drains, never
	// below any count needed within the last Params.ScaleDownHold, and at
	// most Params.Partitions when set (ReplicasNote says which rule
	// applied). It may be below Instances (scale down). It is what the
	// replicas_needed gauge exports for autoscalers; -1 when μ is unknown.
	ReplicasNeeded int `json:"replicas_needed"`
	// ReplicasNote says in words which safety rule, if any, moved
	// ReplicasNeeded away from the formula's answer max(Plan.Needed,
	// SteadyReplicas): kept at the running count while a backlog drains,
	// a scale-down held (Params.ScaleDownHold), capped at the partition
	// count, or no instance working.
	ReplicasNote string `json:"replicas_note,omitempty"`
	// Partitions is the stream's partition count (Params.Partitions; 0
	// when not partitioned).
	Partitions int `json:"partitions,omitempty"`
	// SteadyReplicas is ⌈λ/(μ·ρ*)⌉ for UtilisationTarget ρ*; -1 when unknown.
	SteadyReplicas    int     `json:"steady_replicas"`
	UtilisationTarget float64 `json:"utilisation_target"`
	// Predicted is B(t) after the recommended scale-up.
	Predicted []Point `json:"predicted,omitempty"`
}

// MarshalJSON writes what the estimate cannot tell (a negative
// Utilisation, ReplicasNeeded or SteadyReplicas) as null, not a sentinel.
func (e Estimate) MarshalJSON() ([]byte, error) {
	type plain Estimate
	var rho *float64
	if e.Utilisation >= 0 {
		rho = &e.Utilisation
	}
	return json.Marshal(struct {
		plain
		Utilisation    *float64 `json:"utilisation"`
		ReplicasNeeded *int     `json:"replicas_needed"`
		SteadyReplicas *int     `json:"steady_replicas"`
	}{plain(e), rho, knownCount(e.ReplicasNeeded), knownCount(e.SteadyReplicas)})
}

// Estimator turns windows of samples into estimates. It remembers the last
// saturated service rate, so keep one per consumer. It is safe for
// concurrent use.
type Estimator struct {
	p Params

	mu          sync.Mutex
	lastSatRate float64
	last        *Estimate
	needed      []neededAt // raw replica counts within the scale-down hold
}

// NewEstimator returns an estimator with p (zero fields take defaults).
func NewEstimator(p Params) *Estimator { return &Estimator{p: p.withDefaults()} }

// Params returns the parameters in use, defaults filled in.
func (e *Estimator) Params() Params { return e.p }

// Last is the newest estimate made, or nil.
func (e *Estimator) Last() *Estimate {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		return nil
	}
	c := *e.last
	return &c
}

// Estimate computes an estimate from a window of samples (oldest first).
// It needs at least one sample; rates need two.
func (e *Estimator) Estimate(stream, consumer string, samples []Sample) (Estimate, error) {
	if len(samples) == 0 {
		return Estimate{}, fmt.Errorf("capacity estimate of %s/%s: no samples yet; sample at least twice", stream, consumer)
	}
	p := e.p
	last := samples[len(samples)-1]
	est := Estimate{
		At: last.At, Stream: stream, Consumer: consumer,
		Backlog: last.Backlog(), Pending: last.NumPending, AckPending: last.NumAckPending,
		TargetDrain: Seconds(p.TargetDrain), StartupDelay: Seconds(p.StartupDelay),
		UtilisationTarget: p.UtilisationTarget,
	}
	rw := samples
	if p.RateSamples >= 2 && len(rw) > p.RateSamples {
		rw = rw[len(rw)-p.RateSamples:]
	}
	_, est.Processed = rates(rw)
	est.Arrival = arrivalRate(samples, p.RateSamples-1)

	est.Instances, est.InstancesSource = p.Instances, "given"
	if est.Instances <= 0 {
		est.Instances, est.InstancesSource = 1, "assumed 1: JetStream does not tell; pass --instances"
		switch {
		case timingOf(last) != nil:
			est.Instances, est.InstancesSource = timingOf(last).Instances, timingSource(timingOf(last))
		case p.ServiceRate > 0 && saturated(rw) && est.Processed.PerSecond > 0:
			est.Instances = max(1, int(math.Round(est.Processed.PerSecond/p.ServiceRate)))
			est.InstancesSource = "processed rate / given μ, while saturated"
		}
	}
	e.serviceRate(&est, rw, last)

	sw := samples
	if len(sw) > p.StatusSamples {
		sw = sw[len(sw)-p.StatusSamples:]
	}
	est.Status, est.StatusReason = status(sw, rw, len(sw) >= p.StatusSamples)
	if est.Status == StatusStall && len(last.Busy) > 0 {
		est.Stuck = last.Busy[:min(len(last.Busy), 3)]
		names := make([]string, len(est.Stuck))
		for i, b := range est.Stuck {
			names[i] = b.String()
		}
		est.StatusReason += "; longest-running handlers: " + strings.Join(names, ", ")
	}
	working := est.working()
	if working < est.Instances {
		est.ServiceRate.Note += fmt.Sprintf("; the %d running instance(s) complete nothing now (%s): they count as 0 in the prediction", est.Instances, est.Status)
	}

	mu := est.ServiceRate.PerSecond
	lambda := est.Arrival.PerSecond
	est.Capacity = mu * float64(working)
	est.Utilisation = jsonFloat(Utilisation(lambda, est.Capacity))
	if mu > 0 || working == 0 {
		d, ok := TimeToDrain(est.Backlog, lambda, est.Capacity)
		est.Drain, est.Drains = Seconds(d), ok
	}
	in := ScaleInput{Backlog: est.Backlog, Lambda: lambda, Mu: mu, Current: working, Target: p.TargetDrain, Startup: p.StartupDelay}
	est.Plan = ReplicasNeeded(in)
	est.SteadyReplicas = SteadyReplicas(lambda, mu, p.UtilisationTarget)
	est.Partitions = max(p.Partitions, last.Partitions, 0)
	est.ReplicasNeeded, est.ReplicasNote = e.replicas(est, working)
	if pr, ok := est.Predict(est.Plan.Add); ok {
		est.Predicted = pr.Curve
	}
	est.TimeLag, est.TimeLagSource = timeLag(samples)

	e.mu.Lock()
	c := est
	e.last = &c
	e.mu.Unlock()
	return est, nil
}

// serviceRate picks μ: configured, else handler timing, else saturated
// throughput (now or earlier).
func (e *Estimator) serviceRate(est *Estimate, rw []Sample, last Sample) {
	// The handler time is a fast-moving average: one slow call moves it for
	// a dozen more, so average its readings over the rate window.
	var sum float64
	var n int
	var used *LocalTiming
	for _, s := range rw {
		if lt := e.handlerTiming(s); lt != nil {
			sum += lt.Concurrency / lt.AvgHandler.Seconds()
			n++
			used = lt
		}
	}
	if n > 0 {
		est.HandlerServiceRate = sum / float64(n)
	}
	if saturated(rw) && est.Processed.PerSecond > 0 {
		est.SaturatedServiceRate = est.Processed.PerSecond / float64(est.Instances)
	}
	e.mu.Lock()
	if est.SaturatedServiceRate > 0 {
		e.lastSatRate = est.SaturatedServiceRate
	}
	earlier := e.lastSatRate
	e.mu.Unlock()

	r := Rate{From: est.Processed.From, To: est.Processed.To, Samples: est.Processed.Samples}
	switch {
	case e.p.ServiceRate > 0:
		r = Rate{PerSecond: e.p.ServiceRate, Note: "given"}
		est.ServiceSource = SourceConfigured
	case est.HandlerServiceRate > 0:
		r.PerSecond = est.HandlerServiceRate
		r.Note = fmt.Sprintf("concurrency / average handler time of %d %s, averaged over %d samples", max(instancesOf(used), 1), timingSource(used), n)
		est.ServiceSource = SourceHandlerTiming
	case est.SaturatedServiceRate > 0:
		r.PerSecond = est.SaturatedServiceRate
		r.Note = fmt.Sprintf("processed rate / %d instance(s) while messages waited throughout the window", est.Instances)
		est.ServiceSource = SourceSaturated
	case earlier > 0:
		r = Rate{PerSecond: earlier, Note: "measured earlier while saturated; the consumer has spare capacity now"}
		est.ServiceSource = SourceEarlierSaturated
	default:
		r = Rate{Note: "unknown until the consumer is saturated (messages waiting throughout the window) or local handler timing is available"}
		est.ServiceSource = SourceUnknown
	}
	est.ServiceRate = r
}

// jsonFloat keeps JSON encodable: +Inf becomes -1 ("no capacity").
func jsonFloat(f float64) float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return -1
	}
	return f
}

// Prediction is the model's answer to "add k instances now, each ready
// after the start-up delay".
type Prediction struct {
	// Add is k.
	Add int `json:"add"`
	// Drain is when the backlog reaches zero; Drains is false if never.
	Drain  Seconds `json:"drain_s"`
	Drains bool    `json:"drains"`
	// Curve is B(t) up to a little past the target or the drain.
	Curve []Point `json:"curve"`
}

// Predict runs the model from this estimate's backlog, λ, μ and working
// instances (none when the status is STALL or STOP) with add more
// instances started now, each working after StartupDelay. ok is false
// when μ is unknown.
func (e Estimate) Predict(add int) (Prediction, bool) {
	mu := e.ServiceRate.PerSecond
	if mu <= 0 || add < 0 {
		return Prediction{}, false
	}
	in := ScaleInput{Backlog: e.Backlog, Lambda: e.Arrival.PerSecond, Mu: mu, Current: e.working(),
		Target: time.Duration(e.TargetDrain), Startup: time.Duration(e.StartupDelay)}
	m := in.Model(add)
	d, ok := m.DrainTime()
	horizon := in.Target
	if ok {
		horizon = max(horizon, d)
	}
	horizon += horizon / 5
	return Prediction{Add: add, Drain: Seconds(d), Drains: ok, Curve: m.Curve(horizon, horizon/60)}, true
}

// handlerTiming is the handler timing of a sample μ may be computed
// from: the local subscriptions' when they have handled enough (fresh, in
// this process), else the registered instances' (refreshed every few
// seconds); nil when neither has.
func (e *Estimator) handlerTiming(s Sample) *LocalTiming {
	for _, lt := range []*LocalTiming{s.Local, s.Registered} {
		if lt != nil && lt.Instances > 0 && lt.AvgHandler > 0 && lt.Received >= e.p.MinLocalReceived {
			return lt
		}
	}
	return nil
}

// timingOf is the timing the instance count is taken from: the
// registered instances (all of them) when any registered, else the local
// subscriptions; nil when neither.
func timingOf(s Sample) *LocalTiming {
	if s.Registered != nil && s.Registered.Instances > 0 {
		return s.Registered
	}
	if s.Local != nil && s.Local.Instances > 0 {
		return s.Local
	}
	return nil
}

func timingSource(lt *LocalTiming) string {
	if lt != nil && lt.Source == "registered" {
		return "registered instances (KV " + wire.InstanceBucket + ")"
	}
	return "local subscriptions"
}
