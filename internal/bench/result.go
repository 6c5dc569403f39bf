package bench

import (
	"fmt"
	"runtime/metrics"
	"time"
)

// Result is one row of the report: a metric measured for raw nats.go and
// for jetkit in the same run.
type Result struct {
	// Scenario is one of AllScenarios.
	Scenario string `json:"scenario"`
	// Case distinguishes rows of a scenario, e.g. "c=16" or "p99".
	Case string `json:"case,omitempty"`
	// Unit of Raw and Jetkit: "msgs/s", "ms" or "MiB".
	Unit string `json:"unit"`
	// Raw is the raw nats.go measurement.
	Raw float64 `json:"raw"`
	// Jetkit is the jetkit measurement.
	Jetkit float64 `json:"jetkit"`
	// Ratio is Jetkit / Raw (0 when Raw is 0).
	Ratio float64 `json:"ratio"`
	// RawCPU and JetkitCPU are the process CPU time per message in
	// microseconds (server included when embedded); 0 when not measured.
	// Steadier than throughput on a busy machine.
	RawCPU    float64 `json:"raw_cpu_us_per_msg,omitempty"`
	JetkitCPU float64 `json:"jetkit_cpu_us_per_msg,omitempty"`
	// RawAllocs and JetkitAllocs are heap allocations per message in this
	// process (server included when embedded): a figure load does not move.
	RawAllocs    float64 `json:"raw_allocs_per_msg,omitempty"`
	JetkitAllocs float64 `json:"jetkit_allocs_per_msg,omitempty"`
	// Target is the goal for this row in words ("" when there is none).
	Target string `json:"target,omitempty"`
	// Pass says whether the target was met; nil when there is no target.
	Pass *bool `json:"pass,omitempty"`
	// Note adds context, e.g. the ideal rate of a scaling run.
	Note string `json:"note,omitempty"`
}

// Report is the outcome of a bench run.
type Report struct {
	// Started is when the run began.
	Started time.Time `json:"started"`
	// Elapsed is how long the whole run took, in seconds.
	Elapsed float64 `json:"elapsed_seconds"`
	// Server describes the server used ("embedded" or the URL without credentials).
	Server string `json:"server"`
	// Storage is "file" or "memory"; Replicas the streams' replica count.
	Storage  string `json:"storage"`
	Replicas int    `json:"replicas"`
	// MsgSize is the payload size in bytes.
	MsgSize int `json:"msg_size"`
	// Middleware lists the jetkit middleware used, outermost first.
	Middleware []string `json:"middleware"`
	// GoVersion, GOMAXPROCS and CPUs describe the client process.
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUs       int    `json:"cpus"`
	// Rounds is how many alternating runs each throughput row is the median of.
	Rounds int `json:"rounds"`
	// Results are the rows in the order they ran.
	Results []Result `json:"results"`
}

// Failed lists the rows whose target was missed.
func (r *Report) Failed() []Result {
	var out []Result
	for _, x := range r.Results {
		if x.Pass != nil && !*x.Pass {
			out = append(out, x)
		}
	}
	return out
}

// target is a goal on one row.
type target struct {
	text string
	ok   func(r Result) bool
}

func ratioAtLeast(min float64) *target {
	return &target{text: fmt.Sprintf(">= %.2fx", min), ok: func(r Result) bool { return r.Raw > 0 && r.Ratio >= min }}
}

func ratioAtMost(max float64) *target {
	return &target{text: fmt.Sprintf("<= %.2fx", max), ok: func(r Result) bool { return r.Raw > 0 && r.Ratio <= max }}
}

func jetkitAtMost(max float64, unit string) *target {
	return &target{text: fmt.Sprintf("jetkit <= %g %s", max, unit), ok: func(r Result) bool { return r.Jetkit <= max }}
}

// measurement is one side of a throughput row.
type measurement struct {
	rate   float64 // msgs/s
	cpu    float64 // process CPU µs per message
	allocs float64 // heap allocations per message
}

// cpuMeter measures process CPU time and allocations per message over a run.
type cpuMeter struct {
	t0      time.Duration
	allocs0 uint64
}

func startCPU() cpuMeter { return cpuMeter{t0: processCPU(), allocs0: heapAllocs()} }

// measure is the measurement of n messages since the meter started.
func (c cpuMeter) measure(n int, rate float64) measurement {
	if n <= 0 {
		return measurement{rate: rate}
	}
	return measurement{rate: rate,
		cpu:    float64((processCPU() - c.t0).Nanoseconds()) / 1e3 / float64(n),
		allocs: float64(heapAllocs()-c.allocs0) / float64(n)}
}

// heapAllocs counts heap allocations since the process started.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// throughputResult is a msgs/s row with CPU per message.
func throughputResult(scenario, kase string, raw, jk measurement, t *target, note string) Result {
	r := newResult(scenario, kase, "msgs/s", raw.rate, jk.rate, t, note)
	r.RawCPU, r.JetkitCPU = raw.cpu, jk.cpu
	r.RawAllocs, r.JetkitAllocs = raw.allocs, jk.allocs
	return r
}

func newResult(scenario, kase, unit string, raw, jetkit float64, t *target, note string) Result {
	r := Result{Scenario: scenario, Case: kase, Unit: unit, Raw: raw, Jetkit: jetkit, Note: note}
	if raw != 0 {
		r.Ratio = jetkit / raw
	}
	if t != nil {
		pass := t.ok(r)
		r.Target, r.Pass = t.text, &pass
	}
	return r
}
