package bench

import (
	"fmt"
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
	rate float64 // msgs/s
	cpu  float64 // process CPU µs per message
}

// cpuMeter measures process CPU time per message over a run.
type cpuMeter struct{ t0 time.Duration }

func startCPU() cpuMeter { return cpuMeter{t0: processCPU()} }

func (c cpuMeter) perMsg(n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64((processCPU() - c.t0).Nanoseconds()) / 1e3 / float64(n)
}

// throughputResult is a msgs/s row with CPU per message.
func throughputResult(scenario, kase string, raw, jk measurement, t *target, note string) Result {
	r := newResult(scenario, kase, "msgs/s", raw.rate, jk.rate, t, note)
	r.RawCPU, r.JetkitCPU = raw.cpu, jk.cpu
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
