package capacity

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// steadySamples are 6 samples 1 s apart of a consumer that keeps working:
// lambda messages arrive a second, lambda+5 are delivered and acked, and
// the backlog (all pending) ends at backlog.
func steadySamples(t0 time.Time, lambda, backlog float64) []Sample {
	const n = 6
	out := make([]Sample, n)
	d := lambda + 5
	for i := range out {
		del := uint64(1000 + d*float64(i))
		out[i] = Sample{
			At:         t0.Add(time.Duration(i) * time.Second),
			NumPending: uint64(backlog + 5*float64(n-1-i)), MaxAckPending: 1000, NumWaiting: 1,
			Delivered: jetstream.SequenceInfo{Consumer: del, Stream: del},
			AckFloor:  jetstream.SequenceInfo{Consumer: del, Stream: del},
		}
	}
	return out
}

// closedForm is the replica count the rules ask for, written out by hand
// from the formulas in docs/capacity.md: the fewest instances draining
// the backlog within D (new ones working after T₀), at least the steady
// count for ρ* = 0.8, and not below the c running while the backlog
// holds more than a second of their work.
func closedForm(lambda, mu float64, c int, b, d, t0 float64) int {
	ceil := func(x float64) int { return max(0, int(math.Ceil(x-1e-9))) }
	steady := 0
	if lambda > 0 {
		steady = ceil(lambda / (mu * 0.8))
	}
	cm := float64(c) * mu
	drainsIn := math.Inf(1) // with the c running alone
	switch {
	case b == 0 && cm >= lambda:
		drainsIn = 0
	case cm > lambda:
		drainsIn = b / (cm - lambda)
	}
	var needed int
	switch {
	case drainsIn <= d:
		needed = ceil((lambda + b/d) / mu)
	case drainsIn <= t0:
		needed = c
	default:
		bT0 := math.Max(0, b+(lambda-cm)*t0)
		needed = max(c+1, ceil((lambda+bT0/(d-t0))/mu))
	}
	n := max(needed, steady)
	if n < c && b > cm {
		n = c
	}
	return n
}

// The recommendation equals the hand-written closed form on a grid of
// arrival rate, service rate, instances, backlog, target and start-up
// delay; in particular it is never below the formula's answer.
func TestReplicasGrid(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cases := 0
	for _, lambda := range []float64{0, 7, 55, 120, 333} {
		for _, mu := range []float64{20, 48, 100} {
			for _, c := range []int{1, 2, 3, 5} {
				for _, b := range []float64{0, 10, 90, 500, 3000} {
					for _, d := range []time.Duration{30 * time.Second, 2 * time.Minute} {
						for _, st := range []time.Duration{0, 15 * time.Second} {
							e := NewEstimator(Params{Instances: c, ServiceRate: mu, TargetDrain: d, StartupDelay: st})
							est, err := e.Estimate("S", "C", steadySamples(t0, lambda, b))
							if err != nil {
								t.Fatal(err)
							}
							if est.Arrival.PerSecond != lambda || est.Backlog != b || est.Status != StatusOK {
								t.Fatalf("λ=%v B=%v: the samples gave λ̂=%v B=%v status %s (%s)", lambda, b, est.Arrival.PerSecond, est.Backlog, est.Status, est.StatusReason)
							}
							want := closedForm(lambda, mu, c, b, d.Seconds(), st.Seconds())
							formula := max(est.Plan.Needed, est.SteadyReplicas)
							if est.ReplicasNeeded != want || est.ReplicasNeeded < formula {
								t.Errorf("λ=%v μ=%v c=%d B=%v D=%s T₀=%s: replicas %d (formula %d; %s), closed form %d",
									lambda, mu, c, b, d, st, est.ReplicasNeeded, formula, est.ReplicasNote, want)
							}
							cases++
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases", cases)
}

// A lower count is recommended only after it has been enough for the
// whole scale-down hold; a higher one at once.
func TestReplicasScaleDownHold(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := NewEstimator(Params{Instances: 3, ServiceRate: 10, ScaleDownHold: 10 * time.Second})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// 40/s needs 5 instances (ρ* 0.8), then 8/s needs 1.
	est, _ := e.Estimate("S", "C", steadySamples(at(0), 40, 0))
	if est.ReplicasNeeded != 5 {
		t.Fatalf("at 40/s: replicas %d, want 5 (%s)", est.ReplicasNeeded, est.ReplicasNote)
	}
	for s := 1; s <= 12; s++ {
		est, _ = e.Estimate("S", "C", steadySamples(at(s), 8, 0))
		want := 5
		if s >= 10 {
			want = 1
		}
		if est.ReplicasNeeded != want {
			t.Errorf("%ds after the drop to 8/s: replicas %d, want %d (%s)", s, est.ReplicasNeeded, want, est.ReplicasNote)
		}
		if want == 5 && !strings.Contains(est.ReplicasNote, "held") {
			t.Errorf("%ds: the note does not say the scale-down is held: %q", s, est.ReplicasNote)
		}
	}
	// Back up: at once.
	est, _ = e.Estimate("S", "C", steadySamples(at(13), 40, 0))
	if est.ReplicasNeeded != 5 {
		t.Errorf("back at 40/s: replicas %d, want 5 at once", est.ReplicasNeeded)
	}
	// The default hold is 5 minutes.
	if h := NewEstimator(Params{}).Params().ScaleDownHold; h != 5*time.Minute {
		t.Errorf("default hold %s, want 5m", h)
	}
}

// A partitioned consumer is never told to run more instances than the
// stream has partitions, and is told why in words.
func TestReplicasCappedAtPartitions(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := NewEstimator(Params{Instances: 2, ServiceRate: 10, Partitions: 4})
	est, _ := e.Estimate("S", "C", steadySamples(t0, 40, 0)) // needs 5
	if est.ReplicasNeeded != 4 || est.Partitions != 4 {
		t.Fatalf("replicas %d, partitions %d; want 4, 4", est.ReplicasNeeded, est.Partitions)
	}
	want := "needs 5 instances but the stream has 4 partitions: more instances add nothing; raise the partition count (a migration, see docs/partitions.md)"
	if !strings.Contains(est.ReplicasNote, want) {
		t.Errorf("note %q, want it to contain %q", est.ReplicasNote, want)
	}
	// Below the cap nothing changes and nothing is said.
	est, _ = NewEstimator(Params{Instances: 2, ServiceRate: 10, Partitions: 8}).Estimate("S", "C", steadySamples(t0, 40, 0))
	if est.ReplicasNeeded != 5 || est.ReplicasNote != "" {
		t.Errorf("with 8 partitions: replicas %d (%q), want 5 and no note", est.ReplicasNeeded, est.ReplicasNote)
	}
}
