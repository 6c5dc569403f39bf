package capacity

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// hungSamples: 50 messages a second arrive and are handled by one local
// instance (concurrency 2, 20 ms a call: μ = 100/s) until the handler
// hangs at 10.5 s holding 2 messages; then nothing completes, nothing is
// delivered and the backlog grows. Samples every second from 0 to 20 s.
func hungSamples() []Sample {
	local := &LocalTiming{Instances: 1, Concurrency: 2, AvgHandler: 20 * time.Millisecond, Received: 1000}
	var out []Sample
	var done, pending uint64
	for s := 0; s <= 20; s++ {
		switch {
		case s <= 10:
			done = 1000 + 50*uint64(s)
		case s == 11:
			done += 25 // half the interval before the hang
			pending = 25
		default:
			pending += 50
		}
		out = append(out, Sample{
			At:         simT0.Add(time.Duration(s) * time.Second),
			NumPending: pending, NumAckPending: 2, MaxAckPending: 1000,
			Delivered: jetstream.SequenceInfo{Consumer: done + 2, Stream: done + 2},
			AckFloor:  jetstream.SequenceInfo{Consumer: done, Stream: done},
			Local:     local,
		})
	}
	return out
}

// A hung handler is STALL by the third sample after it hangs, not STOP;
// its handler-timing μ no longer counts: capacity 0, the backlog never
// drains, and the recommendation says no instance works.
func TestHungHandlerIsStall(t *testing.T) {
	samples := hungSamples()
	e := NewEstimator(Params{})
	var first time.Duration = -1
	for i := 2; i <= len(samples); i++ {
		est, err := e.Estimate("S", "C", samples[:i])
		if err != nil {
			t.Fatal(err)
		}
		at := est.At.Sub(simT0)
		if at <= 10*time.Second {
			if est.Status == StatusStall || est.Status == StatusStop {
				t.Fatalf("at %s, before the hang: %s (%s)", at, est.Status, est.StatusReason)
			}
			continue
		}
		if est.Status == StatusStop {
			t.Errorf("at %s: STOP (%s), want STALL: the instance holds messages", at, est.StatusReason)
		}
		if est.Status != StatusStall {
			continue
		}
		if first < 0 {
			first = at
		}
		if est.Capacity != 0 || est.Drains || est.Utilisation >= 0 {
			t.Errorf("at %s, stalled: capacity %.1f, drains %v, ρ %.2f; want 0, false, unknown", at, est.Capacity, est.Drains, est.Utilisation)
		}
		if est.ServiceSource != SourceHandlerTiming || est.ServiceRate.PerSecond != 100 {
			t.Errorf("at %s: μ %.1f [%s], want the handler timing's 100/s kept for new instances", at, est.ServiceRate.PerSecond, est.ServiceSource)
		}
		if est.ReplicasNeeded < 1 || !strings.Contains(est.ReplicasNote, "no instance works") {
			t.Errorf("at %s: replicas %d (%q), want ≥ 1 and the note that no instance works", at, est.ReplicasNeeded, est.ReplicasNote)
		}
		if pr, ok := est.Predict(0); !ok || pr.Drains {
			t.Errorf("at %s: Predict(0) drains %v, want never: the hung instance does not work", at, pr.Drains)
		}
	}
	// The hang is at 10.5 s; the third sample after it is at 13 s.
	if first < 0 || first > 13*time.Second {
		t.Fatalf("STALL first reported at %s, want by 13s", first)
	}
	t.Logf("hang at 10.5s, STALL from %s", first)
}

// With μ given and nobody consuming, the drain is impossible (not a
// finite time), and the estimate says so.
func TestNoInstancesCannotDrain(t *testing.T) {
	var samples []Sample
	for s := 0; s <= 6; s++ {
		samples = append(samples, Sample{
			At:         simT0.Add(time.Duration(s) * time.Second),
			NumPending: 100 + 50*uint64(s), MaxAckPending: 1000,
			Delivered: jetstream.SequenceInfo{Consumer: 10, Stream: 10}, AckFloor: jetstream.SequenceInfo{Consumer: 10, Stream: 10},
		})
	}
	est, err := NewEstimator(Params{ServiceRate: 100}).Estimate("S", "C", samples)
	if err != nil {
		t.Fatal(err)
	}
	if est.Status != StatusStop || est.Drains || est.Capacity != 0 {
		t.Fatalf("status %s (%s), drains %v, capacity %.1f; want STOP, never drains, capacity 0", est.Status, est.StatusReason, est.Drains, est.Capacity)
	}
	if est.Plan.Add < 1 || est.ReplicasNeeded < 1 || !strings.Contains(est.ReplicasNote, "cannot drain until new instances start") {
		t.Errorf("plan add %d, replicas %d (%q): want instances started and the reason", est.Plan.Add, est.ReplicasNeeded, est.ReplicasNote)
	}
	if strings.Contains(est.Plan.Reason, "running instances drain") {
		t.Errorf("plan reason %q claims the running instances drain", est.Plan.Reason)
	}
}
