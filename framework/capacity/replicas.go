package capacity

import (
	"fmt"
	"strings"
	"time"

	"github.com/jetkit/jetkit/internal/humanize"
)

// drainingWork is how much work, in seconds of the working instances'
// capacity, a backlog must hold to count as draining toward its deadline
// (less is the messages in flight of a consumer that keeps up).
const drainingWork = 1.0

// neededAt is a replica count the formula asked for at a sample time.
type neededAt struct {
	at time.Time
	n  int
}

// working is how many instances do work: none when the status says
// nothing completes (STALL) or nobody consumes (STOP).
func (e Estimate) working() int {
	if e.Status == StatusStall || e.Status == StatusStop {
		return 0
	}
	return max(e.Instances, 0)
}

// replicas applies the safety rules to the formula's answer
// max(Plan.Needed, SteadyReplicas), in this order:
//
//  1. never below the working instances while the backlog holds more than
//     drainingWork seconds of their work (it is draining toward the target);
//  2. never below the largest count of rule 1 within the scale-down hold
//     before est.At (scale-up at once, scale-down only after the hold);
//  3. at most Params.Partitions, when set.
//
// It returns -1 when μ is unknown, and says in words which rules applied.
func (e *Estimator) replicas(est Estimate, working int) (int, string) {
	if est.Plan.Total < 0 || est.SteadyReplicas < 0 {
		return -1, ""
	}
	var notes []string
	if working == 0 && est.Backlog+est.Arrival.PerSecond > 0 {
		notes = append(notes, fmt.Sprintf("no instance works (%d running, status %s): the backlog cannot drain until new instances start", est.Instances, est.Status))
	}
	n := max(est.Plan.Needed, est.SteadyReplicas)
	if n < working && est.Backlog > est.Capacity*drainingWork {
		notes = append(notes, fmt.Sprintf("kept at the %d running instance(s) while a backlog of %.0f drains toward the target (the formula alone says %d)", working, est.Backlog, n))
		n = working
	}
	held, until := e.hold(est.At, n)
	if held > n {
		notes = append(notes, fmt.Sprintf("scale-down to %d held until %s: %d were needed within the last %s (Params.ScaleDownHold)", n, until.Format(time.TimeOnly), held, humanize.Duration(e.p.ScaleDownHold)))
		n = held
	}
	if parts := est.Partitions; parts > 0 && n > parts {
		notes = append(notes, fmt.Sprintf("needs %d instances but the stream has %d partitions: more instances add nothing; raise the partition count (a migration, see docs/partitions.md)", n, parts))
		n = parts
	}
	return n, strings.Join(notes, "; ")
}

// hold records that n replicas are needed at at, and returns the largest
// count recorded within the scale-down hold before at (n or more), with
// the time the last count above n stops holding. An estimate repeated for the same
// sample time replaces the earlier one.
func (e *Estimator) hold(at time.Time, n int) (int, time.Time) {
	hold := e.p.ScaleDownHold
	if hold < 0 {
		return n, at
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	kept := e.needed[:0]
	for _, r := range e.needed {
		if !r.at.Equal(at) && at.Sub(r.at) < hold && r.at.Before(at) {
			kept = append(kept, r)
		}
	}
	e.needed = append(kept, neededAt{at, n})
	best, until := n, at
	for _, r := range e.needed {
		best = max(best, r.n)
		if r.n > n && r.at.Add(hold).After(until) {
			until = r.at.Add(hold)
		}
	}
	return best, until
}
