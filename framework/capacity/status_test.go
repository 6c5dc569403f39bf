package capacity

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// seqs builds samples 1s apart from (pending, ack-pending, delivered
// consumer seq, delivered stream seq, ack floor stream seq, waiting).
func seqs(rows ...[6]uint64) []Sample {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	out := make([]Sample, len(rows))
	for i, r := range rows {
		out[i] = Sample{
			At: t0.Add(time.Duration(i) * time.Second), NumPending: r[0], NumAckPending: int(r[1]),
			Delivered: jetstream.SequenceInfo{Consumer: r[2], Stream: r[3]}, AckFloor: jetstream.SequenceInfo{Stream: r[4]},
			NumWaiting: int(r[5]), MaxAckPending: 1000, Filtered: true,
		}
	}
	return out
}

func TestStatus(t *testing.T) {
	cases := []struct {
		name    string
		samples []Sample
		want    Status
	}{
		{"nothing waiting", seqs([6]uint64{0, 0, 10, 10, 10, 1}, [6]uint64{0, 0, 20, 20, 20, 1}), StatusOK},
		{"keeping up with a small, noisy backlog", seqs(
			[6]uint64{3, 4, 100, 100, 96, 0}, [6]uint64{5, 4, 200, 200, 196, 0}, [6]uint64{2, 4, 300, 300, 296, 0},
			[6]uint64{6, 3, 400, 400, 397, 0}, [6]uint64{4, 4, 500, 500, 496, 0}), StatusOK},
		{"lag growing", seqs(
			[6]uint64{100, 10, 100, 100, 90, 0}, [6]uint64{150, 10, 150, 150, 140, 0}, [6]uint64{200, 10, 200, 200, 190, 0},
			[6]uint64{250, 10, 250, 250, 240, 0}, [6]uint64{300, 10, 300, 300, 290, 0}), StatusWarn},
		{"nobody consumes", seqs(
			[6]uint64{100, 0, 100, 100, 100, 0}, [6]uint64{150, 0, 100, 100, 100, 0}, [6]uint64{200, 0, 100, 100, 100, 0}), StatusStop},
		{"hung handlers hold messages, no pull requests", seqs(
			[6]uint64{100, 10, 100, 100, 90, 0}, [6]uint64{150, 10, 100, 100, 90, 0}, [6]uint64{200, 10, 100, 100, 90, 0}), StatusStall},
		{"progress earlier, none in the last two intervals", seqs(
			[6]uint64{0, 10, 100, 100, 90, 1}, [6]uint64{0, 10, 150, 150, 140, 1}, [6]uint64{0, 10, 200, 200, 190, 1},
			[6]uint64{10, 10, 200, 200, 190, 0}, [6]uint64{20, 10, 200, 200, 190, 0}), StatusStall},
		{"pull requests open but nothing acked", seqs(
			[6]uint64{100, 10, 100, 100, 90, 2}, [6]uint64{100, 10, 100, 100, 90, 2}, [6]uint64{100, 10, 100, 100, 90, 2}), StatusStall},
		{"redelivering the same messages, nothing acked", func() []Sample {
			s := seqs([6]uint64{100, 10, 100, 100, 90, 0}, [6]uint64{100, 10, 110, 100, 90, 0}, [6]uint64{100, 10, 120, 100, 90, 0})
			for i := range s {
				s[i].NumRedelivered = 10
			}
			return s
		}(), StatusStall},
	}
	for _, c := range cases {
		got, why := status(c.samples, c.samples, true)
		if got != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got, why, c.want)
		}
	}
}

// What the estimator cannot tell is null in JSON, never a -1 sentinel.
func TestEstimateJSONSaysNullForUnknown(t *testing.T) {
	e := Estimate{Utilisation: -1, ReplicasNeeded: -1, SteadyReplicas: -1, Plan: ScalePlan{Total: -1, Needed: -1}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	plan := m["plan"].(map[string]any)
	for k, v := range map[string]any{"utilisation": m["utilisation"], "replicas_needed": m["replicas_needed"],
		"steady_replicas": m["steady_replicas"], "plan.total": plan["total"], "plan.needed": plan["needed"]} {
		if v != nil {
			t.Errorf("%s = %v, want null", k, v)
		}
	}
	if strings.Contains(string(b), "-1") {
		t.Errorf("JSON carries a -1 sentinel: %s", b)
	}
}
