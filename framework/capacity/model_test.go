package capacity

import (
	"math"
	"testing"
	"time"
)

func TestUtilisation(t *testing.T) {
	cases := []struct{ lambda, p, want float64 }{
		{400, 500, 0.8},
		{0, 0, 0},
		{0, 100, 0},
		{500, 500, 1},
		{5, 0, math.Inf(1)},
	}
	for _, c := range cases {
		if got := Utilisation(c.lambda, c.p); got != c.want {
			t.Errorf("Utilisation(%v, %v) = %v, want %v", c.lambda, c.p, got, c.want)
		}
	}
}

func TestTimeToDrain(t *testing.T) {
	cases := []struct {
		name         string
		b, lambda, p float64
		want         time.Duration
		drains       bool
	}{
		{"drains: 1200/(700-400)", 1200, 400, 700, 4 * time.Second, true},
		{"empty backlog drains at once even when overloaded", 0, 600, 100, 0, true},
		{"λ = P never drains", 100, 500, 500, 0, false},
		{"λ > P never drains", 100, 600, 500, 0, false},
		{"no capacity never drains", 1, 0, 0, 0, false},
	}
	for _, c := range cases {
		got, ok := TimeToDrain(c.b, c.lambda, c.p)
		if ok != c.drains || got != c.want {
			t.Errorf("%s: TimeToDrain(%v, %v, %v) = %s, %v; want %s, %v", c.name, c.b, c.lambda, c.p, got, ok, c.want, c.drains)
		}
	}
}

func TestSteadyReplicas(t *testing.T) {
	cases := []struct {
		lambda, mu, rho float64
		want            int
	}{
		{400, 100, 0.8, 5}, // 400/80 = 5 exactly: not 6
		{401, 100, 0.8, 6},
		{0, 100, 0.8, 0},
		{50, 100, 1, 1},
		{50, 0, 0.8, -1},
	}
	for _, c := range cases {
		if got := SteadyReplicas(c.lambda, c.mu, c.rho); got != c.want {
			t.Errorf("SteadyReplicas(%v, %v, %v) = %d, want %d", c.lambda, c.mu, c.rho, got, c.want)
		}
	}
}

func TestReplicasNeeded(t *testing.T) {
	cases := []struct {
		name     string
		in       ScaleInput
		total    int
		add      int
		needed   int // 0: same as total
		feasible bool
		bT0      float64
		drain    time.Duration
		drains   bool
	}{
		{
			// B(T0) = 1200 + (400-100)·2 = 1800; (400 + 1800/8)/100 = 6.25 → 7.
			// Drain: 2s + 1800/(700-400) = 8s.
			name: "overloaded, scale up", total: 7, add: 6, feasible: true, bT0: 1800, drain: 8 * time.Second, drains: true,
			in: ScaleInput{Backlog: 1200, Lambda: 400, Mu: 100, Current: 1, Target: 10 * time.Second, Startup: 2 * time.Second},
		},
		{
			// 4 instances drain 1000 at net 100/s in 10s ≤ 60s.
			name: "running instances suffice", total: 4, add: 0, feasible: true, bT0: 0, drain: 10 * time.Second, drains: true,
			in: ScaleInput{Backlog: 1000, Lambda: 300, Mu: 100, Current: 4, Target: time.Minute, Startup: 15 * time.Second},
		},
		{
			// B = 0 but λ > cμ: B(15s) = 100·15 = 1500; (300 + 1500/45)/100 = 3.33 → 4.
			// Drain: 15s + 1500/(400-300) = 30s.
			name: "B = 0, overloaded", total: 4, add: 2, feasible: true, bT0: 1500, drain: 30 * time.Second, drains: true,
			in: ScaleInput{Backlog: 0, Lambda: 300, Mu: 100, Current: 2, Target: time.Minute, Startup: 15 * time.Second},
		},
		{
			name: "B = 0, keeping up", total: 3, add: 0, feasible: true, bT0: 0, drain: 0, drains: true,
			in: ScaleInput{Backlog: 0, Lambda: 300, Mu: 100, Current: 3, Target: time.Minute, Startup: 15 * time.Second},
		},
		{
			// λ = cμ never drains; T0 = 10s > D = 5s: infeasible. Fallback:
			// drain within 5s of readiness: (100 + 1000/5)/100 = 3.
			// Drain: 10s + 1000/(300-100) = 15s.
			name: "T0 larger than the target", total: 3, add: 2, feasible: false, bT0: 1000, drain: 15 * time.Second, drains: true,
			in: ScaleInput{Backlog: 1000, Lambda: 100, Mu: 100, Current: 1, Target: 5 * time.Second, Startup: 10 * time.Second},
		},
		{
			// Current drain 500/(200-100) = 5s: after D = 3s, before T0 = 10s.
			name: "T0 larger than the target, drains before T0", total: 2, add: 0, feasible: false, bT0: 0, drain: 5 * time.Second, drains: true,
			in: ScaleInput{Backlog: 500, Lambda: 100, Mu: 100, Current: 2, Target: 3 * time.Second, Startup: 10 * time.Second},
		},
		{
			// 1000/(600-300) = 3.3s; the fewest that drain in 60s: ⌈(300 + 1000/60)/100⌉ = 4.
			name: "spare capacity", total: 6, add: 0, needed: 4, feasible: true, bT0: 0, drain: 3333333333, drains: true,
			in: ScaleInput{Backlog: 1000, Lambda: 300, Mu: 100, Current: 6, Target: time.Minute, Startup: 15 * time.Second},
		},
		{
			name: "no target", total: -1, needed: -1,
			in: ScaleInput{Backlog: 500, Lambda: 100, Mu: 10, Current: 2},
		},
		{
			name: "absurdly slow instances", total: 1 << 20, add: 1<<20 - 1, feasible: true, bT0: 1e6, drains: true, drain: 953674316402683, // 1e6 / (2²⁰ · 1e-6)
			in: ScaleInput{Backlog: 1e6, Lambda: 0, Mu: 1e-6, Current: 1, Target: time.Second, Startup: 0},
		},
		{
			name: "μ unknown", total: -1, needed: -1,
			in: ScaleInput{Backlog: 500, Lambda: 100, Current: 2, Target: 3 * time.Second},
		},
	}
	for _, c := range cases {
		p := ReplicasNeeded(c.in)
		if c.needed == 0 {
			c.needed = c.total
		}
		if p.Needed != c.needed {
			t.Errorf("%s: needed %d, want %d", c.name, p.Needed, c.needed)
		}
		if p.Total != c.total || p.Add != c.add || p.Feasible != c.feasible || math.Abs(p.BacklogAtReady-c.bT0) > 1e-6 ||
			p.Drains != c.drains || absDur(p.Drain-c.drain) > time.Millisecond {
			t.Errorf("%s: ReplicasNeeded(%+v) = %+v;\nwant total %d add %d feasible %v B(T0) %v drain %s drains %v",
				c.name, c.in, p, c.total, c.add, c.feasible, c.bT0, c.drain, c.drains)
		}
	}
	if p := ReplicasNeeded(cases[4].in); p.Earliest != 10*time.Second {
		t.Errorf("T0 > D: earliest drain %s, want T0 = 10s", p.Earliest)
	}
}

// TestReplicasNeededIsMinimal checks the closed form against the model: the
// plan drains within the target and one instance fewer does not.
func TestReplicasNeededIsMinimal(t *testing.T) {
	for _, b := range []float64{0, 10, 500, 5000} {
		for _, lambda := range []float64{0, 50, 333, 1000} {
			for _, c := range []int{0, 1, 3} {
				for _, startup := range []time.Duration{0, 5 * time.Second, 20 * time.Second} {
					in := ScaleInput{Backlog: b, Lambda: lambda, Mu: 37, Current: c, Target: 30 * time.Second, Startup: startup}
					p := ReplicasNeeded(in)
					if !p.Feasible || !p.Drains || p.Drain > in.Target+time.Millisecond {
						t.Fatalf("%+v: plan %+v does not drain within the target", in, p)
					}
					if p.Add == 0 {
						// The fewest running now that drain in time.
						if p.Needed > 0 {
							fewer := ScaleInput{Backlog: b, Lambda: lambda, Mu: 37, Current: p.Needed, Target: in.Target}
							if d, ok := fewer.Model(0).DrainTime(); !ok || d > in.Target+time.Millisecond {
								t.Fatalf("%+v: %d needed but they drain in %s %v", in, p.Needed, d, ok)
							}
							fewer.Current--
							if d, ok := fewer.Model(0).DrainTime(); ok && d <= in.Target-time.Millisecond && (b > 0 || lambda > 0) {
								t.Fatalf("%+v: %d needed but %d drain in %s", in, p.Needed, fewer.Current, d)
							}
						}
						continue
					}
					if d, ok := in.Model(p.Add - 1).DrainTime(); ok && d <= in.Target-time.Millisecond {
						t.Fatalf("%+v: plan adds %d but %d drain in %s already", in, p.Add, p.Add-1, d)
					}
				}
			}
		}
	}
}

func TestModelCurve(t *testing.T) {
	// B = 100, λ = 10/s; one instance at 5/s now, one at 20/s from 10s.
	// 0..10s: +5/s → 150 at 10s; then −15/s → 0 at 20s.
	m := Model{Backlog: 100, Lambda: 10, Instances: []Instance{{Rate: 5}, {Rate: 20, Ready: 10 * time.Second}}}
	want := map[time.Duration]float64{0: 100, 5 * time.Second: 125, 10 * time.Second: 150,
		15 * time.Second: 75, 20 * time.Second: 0, 25 * time.Second: 0, 30 * time.Second: 0}
	curve := m.Curve(30*time.Second, 5*time.Second)
	if len(curve) != len(want) {
		t.Fatalf("curve has %d points, want %d: %v", len(curve), len(want), curve)
	}
	for _, p := range curve {
		if w, ok := want[p.T]; !ok || math.Abs(p.Backlog-w) > 1e-9 {
			t.Errorf("B(%s) = %v, want %v", p.T, p.Backlog, w)
		}
	}
	if d, ok := m.DrainTime(); !ok || d != 20*time.Second {
		t.Errorf("drain time %s %v, want 20s", d, ok)
	}
	// Corners are included even off the step grid.
	m2 := Model{Backlog: 100, Lambda: 10, Instances: []Instance{{Rate: 5}, {Rate: 20, Ready: 7 * time.Second}}}
	var has7 bool
	for _, p := range m2.Curve(30*time.Second, 5*time.Second) {
		if p.T == 7*time.Second {
			has7 = p.Backlog == 135
		}
	}
	if !has7 {
		t.Errorf("curve lacks the start-up corner B(7s) = 135")
	}
	// Never drains: capacity below λ throughout.
	if _, ok := (Model{Backlog: 1, Lambda: 10, Instances: []Instance{{Rate: 9}}}).DrainTime(); ok {
		t.Error("λ > P drains")
	}
	// Drains before the new instance arrives, then stays empty.
	early := Model{Backlog: 10, Lambda: 5, Instances: []Instance{{Rate: 10}, {Rate: 10, Ready: time.Minute}}}
	if d, ok := early.DrainTime(); !ok || d != 2*time.Second || early.At(30*time.Second) != 0 {
		t.Errorf("early drain: %s %v, B(30s) = %v; want 2s, 0", d, ok, early.At(30*time.Second))
	}
}

func TestInterpolateTime(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	table := []SeqTime{{100, t0}, {200, t0.Add(10 * time.Second)}, {400, t0.Add(12 * time.Second)}}
	cases := []struct {
		seq  uint64
		want time.Time
	}{
		{150, t0.Add(5 * time.Second)},                 // between the first two
		{300, t0.Add(11 * time.Second)},                // between the last two
		{200, t0.Add(10 * time.Second)},                // exact
		{50, t0.Add(-2 * time.Second)},                 // before: overall slope 300 seqs / 12s
		{700, t0.Add(12*time.Second + 12*time.Second)}, // after: 300 more seqs at 25/s
	}
	for _, c := range cases {
		got, ok := InterpolateTime(table, c.seq)
		if !ok || absDur(got.Sub(c.want)) > time.Millisecond {
			t.Errorf("InterpolateTime(%d) = %s, %v; want %s", c.seq, got, ok, c.want)
		}
	}
	if _, ok := InterpolateTime(table[:1], 5); ok {
		t.Error("one point interpolates")
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
