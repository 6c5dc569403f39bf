// Package capview renders capacity estimates for people: the text lines
// of `jetkit capacity` and its web page (Handler).
package capview

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jetkit/jetkit/framework/capacity"
	"github.com/jetkit/jetkit/internal/humanize"
)

// Line is one labelled value of a human-readable summary.
type Line struct {
	// Label names the value, Value is its text.
	Label, Value string
}

// Summary renders an estimate as labelled lines, the same for the terminal
// view and the web page.
func Summary(e capacity.Estimate) []Line {
	rate := func(r capacity.Rate) string {
		if r.Samples < 2 {
			return "n/a (" + r.Note + ")"
		}
		pm := ""
		if r.StdErr > 0 {
			pm = fmt.Sprintf(" ± %.1f", 2*r.StdErr) // about 95%
		}
		return fmt.Sprintf("%.1f/s%s over %s", r.PerSecond, pm, r.To.Sub(r.From).Round(100*time.Millisecond))
	}
	mu := "unknown"
	if e.Processed.PerSecond > 0 && e.Instances > 0 {
		mu = fmt.Sprintf("unknown, at least %.1f/s per instance (what it processes without being saturated)", e.Processed.PerSecond/float64(e.Instances))
	}
	if e.ServiceRate.PerSecond > 0 {
		mu = fmt.Sprintf("%.1f/s per instance", e.ServiceRate.PerSecond)
	}
	mu += " [" + string(e.ServiceSource) + "]"
	rho := "unknown (μ unknown)"
	if e.ServiceRate.PerSecond > 0 || e.Arrival.PerSecond == 0 {
		rho = fmt.Sprintf("%.2f", e.Utilisation)
	}
	capacity := "capacity unknown"
	if e.Capacity > 0 {
		capacity = fmt.Sprintf("capacity %.1f/s", e.Capacity)
	}
	drain := "never at this capacity"
	switch {
	case e.Backlog == 0:
		drain = "nothing to drain"
	case e.ServiceRate.PerSecond <= 0:
		drain = "unknown (μ unknown)"
	case e.Drains:
		drain = HumanDuration(time.Duration(e.Drain))
	}
	lag := "0"
	if e.TimeLagSource != "none" {
		lag = HumanDuration(time.Duration(e.TimeLag)) + " [" + e.TimeLagSource + "]"
	}
	return []Line{
		{"status", fmt.Sprintf("%s — %s", e.Status, e.StatusReason)},
		{"backlog", fmt.Sprintf("%.0f (pending %d, ack-pending %d)", e.Backlog, e.Pending, e.AckPending)},
		{"time lag", lag},
		{"arrivals λ", rate(e.Arrival)},
		{"processed", rate(e.Processed)},
		{"service μ", mu},
		{"instances", fmt.Sprintf("%d [%s], %s%s", e.Instances, e.InstancesSource, capacity, partitionsText(e))},
		{"utilisation ρ", rho},
		{"drain time", drain},
		{"recommendation", Recommendation(e)},
		{"steady state", steadyText(e)},
		{"replicas needed", neededText(e)},
	}
}

// Recommendation says in one sentence what to do to meet the target drain time.
func Recommendation(e capacity.Estimate) string {
	p := e.Plan
	target, startup := time.Duration(e.TargetDrain), time.Duration(e.StartupDelay)
	switch {
	case p.Total < 0:
		return "none yet: " + p.Reason
	case p.Add == 0 && p.Feasible:
		return fmt.Sprintf("keep %d instance(s): %s", p.Total, p.Reason)
	case p.Add == 0:
		return fmt.Sprintf("keep %d instance(s): drains in %s, after the %s target; %s", p.Total, HumanDuration(p.Drain), HumanDuration(target), p.Reason)
	case !p.Feasible:
		return fmt.Sprintf("the %s target cannot be met with a %s start-up delay (earliest ≈ %s); add %d → %d instance(s) to drain in %s",
			HumanDuration(target), HumanDuration(startup), HumanDuration(p.Earliest), p.Add, p.Total, HumanDuration(p.Drain))
	default:
		return fmt.Sprintf("add %d → %d instance(s): ready after %s, drained in %s (target %s)",
			p.Add, p.Total, HumanDuration(startup), HumanDuration(p.Drain), HumanDuration(target))
	}
}

func neededText(e capacity.Estimate) string {
	if e.ReplicasNeeded < 0 {
		return "unknown (μ unknown)"
	}
	note := ""
	if e.ReplicasNote != "" {
		note = "; " + e.ReplicasNote
	}
	return fmt.Sprintf("%d (fewest draining within %s, at least the steady state; the autoscaling gauge%s)",
		e.ReplicasNeeded, HumanDuration(time.Duration(e.TargetDrain)), note)
}

// partitionsText names a partitioned group's partition count, the most
// instances that can work on it.
func partitionsText(e capacity.Estimate) string {
	if e.Partitions == 0 {
		return ""
	}
	return fmt.Sprintf("; %d partitions: at most %d instances work, more get no partition", e.Partitions, e.Partitions)
}

func steadyText(e capacity.Estimate) string {
	if e.SteadyReplicas < 0 {
		return "unknown (μ unknown)"
	}
	return fmt.Sprintf("%d instance(s) for ρ ≤ %.2f", e.SteadyReplicas, e.UtilisationTarget)
}

// HumanDuration rounds a duration for reading: 1.2s, 3m4s, 2h5m.
func HumanDuration(d time.Duration) string { return humanize.Duration(d) }

var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws values as a line of block characters, scaled from 0 to
// the largest value, keeping the newest width values.
func Sparkline(values []float64, width int) string {
	if width > 0 && len(values) > width {
		values = values[len(values)-width:]
	}
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range values {
		i := 0
		if top > 0 && v > 0 {
			i = int(math.Round(v / top * float64(len(sparks)-1)))
		}
		b.WriteRune(sparks[min(max(i, 0), len(sparks)-1)])
	}
	return b.String()
}

// Backlogs are the backlog values of samples, oldest first.
func Backlogs(samples []capacity.Sample) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = s.Backlog()
	}
	return out
}
