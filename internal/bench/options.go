// Package bench measures jetkit against raw nats.go in one process: the
// same server, the same message size and the same counts, one after the
// other, so that the ratio between the two is meaningful even on a noisy
// machine. `jetkit bench` is its command line.
package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
)

// Scenario names, usable in Options.Scenarios.
const (
	ScenarioPublishSync  = "publish-sync"
	ScenarioPublishAsync = "publish-async"
	ScenarioConsumeAsync = "consume-async"
	ScenarioConsumeSync  = "consume-sync"
	ScenarioE2E          = "e2e-latency"
	ScenarioServiceTime  = "service-time"
	ScenarioMemory       = "memory"
	ScenarioWireCost     = "wire-cost"
	ScenarioOrdered      = "ordered"
)

// AllScenarios lists every scenario in the order they run.
var AllScenarios = []string{
	ScenarioPublishSync, ScenarioPublishAsync, ScenarioWireCost, ScenarioConsumeAsync, ScenarioConsumeSync, ScenarioOrdered,
	ScenarioE2E, ScenarioServiceTime, ScenarioMemory,
}

// Options say what to run and how much. Start from Full or Short and
// change fields.
type Options struct {
	// URL of the NATS server to use; empty starts an embedded server with a
	// temporary file store for the run.
	URL string
	// Replicas of the streams the bench creates (1 unless the server is a cluster).
	Replicas int
	// MemoryStorage makes the bench streams memory-backed instead of file-backed.
	MemoryStorage bool
	// MsgSize is the payload size in bytes (at least 48, to hold the
	// jetkit event's JSON fields).
	MsgSize int
	// PublishCount is how many messages each publish run sends.
	PublishCount int
	// ConsumeCount is how many messages each consume run receives.
	ConsumeCount int
	// SyncConsumeCount is how many messages each sync-ack consume run
	// receives (a DoubleAck is a round trip: these runs are ten times
	// slower); 0 means ConsumeCount.
	SyncConsumeCount int
	// Concurrencies are the handler concurrencies of the consume scenarios.
	Concurrencies []int
	// Rate is the publish rate of the end-to-end latency scenario, msgs/s.
	Rate int
	// E2EDuration is how long the end-to-end scenario publishes.
	E2EDuration time.Duration
	// ServiceTime is the handler's fixed service time in the scaling scenario.
	ServiceTime time.Duration
	// ServiceConcurrencies are the concurrencies of the scaling scenario.
	ServiceConcurrencies []int
	// ServiceDuration is about how long each scaling run takes at its ideal
	// rate (concurrency / ServiceTime); it sets the message count.
	ServiceDuration time.Duration
	// Backlog is how many messages the memory scenario consumes.
	Backlog int
	// Scenarios to run (names from AllScenarios); empty runs all.
	Scenarios []string
	// Prefetch sets SubscribeOptions.Prefetch on every subscription; 0 keeps the
	// framework's default.
	Prefetch int
	// Middleware is the jetkit middleware installed on every subscription,
	// outermost first (see DefaultMiddleware).
	Middleware []framework.Middleware
	// MiddlewareNames describe Middleware in the report.
	MiddlewareNames []string
	// Observer, if not nil, instruments jetkit publishes and deliveries
	// (see DefaultObserver); ObserverName describes it in the report.
	Observer     *telemetry.Observer
	ObserverName string
	// Timeout bounds each single run; a run that does not finish fails the bench.
	Timeout time.Duration
	// Rounds is how many times each publish and consume comparison runs,
	// raw and jetkit alternating; each side's median run is reported (the
	// service-time scenario, paced by its handlers' sleeps, runs once). On a shared
	// machine one run can land in another tenant's burst: alternating
	// rounds let that hit both sides alike, and the median drops it.
	Rounds int
}

// Full is the complete benchmark: minutes, a 1,000,000-message backlog.
func Full() Options {
	return Options{
		Replicas: 1, MsgSize: 128,
		PublishCount: 200_000, ConsumeCount: 200_000,
		Concurrencies: []int{1, 4, 16, 64},
		Rate:          10_000, E2EDuration: 10 * time.Second,
		ServiceTime: time.Millisecond, ServiceConcurrencies: []int{1, 4, 16, 64}, ServiceDuration: 2 * time.Second,
		Backlog: 1_000_000,
		Timeout: 5 * time.Minute,
		Rounds:  3,
	}
}

// Short is the quick benchmark `make bench` runs: well under two minutes.
func Short() Options {
	o := Full()
	o.PublishCount, o.ConsumeCount, o.SyncConsumeCount = 20_000, 30_000, 10_000
	o.E2EDuration = 3 * time.Second
	o.ServiceConcurrencies = []int{1, 16, 64}
	o.ServiceDuration = 500 * time.Millisecond
	o.Backlog = 100_000
	o.Timeout = 2 * time.Minute
	return o
}

func (o *Options) validate() error {
	var p []string
	if o.MsgSize < minMsgSize {
		p = append(p, fmt.Sprintf("message size %d: must be at least %d bytes", o.MsgSize, minMsgSize))
	}
	if o.PublishCount < 1 || o.ConsumeCount < 1 || o.Backlog < 1 {
		p = append(p, "publish, consume and backlog counts must be at least 1")
	}
	if o.Rate < 1 || o.E2EDuration <= 0 {
		p = append(p, "end-to-end rate and duration must be positive")
	}
	if o.ServiceTime < 0 || o.ServiceDuration <= 0 {
		p = append(p, "service time must not be negative and service duration must be positive")
	}
	for _, c := range append(append([]int{}, o.Concurrencies...), o.ServiceConcurrencies...) {
		if c < 1 || c > 4096 {
			p = append(p, fmt.Sprintf("concurrency %d: must be between 1 and 4096", c))
		}
	}
	if o.Rounds < 1 || o.Rounds > 99 {
		p = append(p, fmt.Sprintf("rounds %d: must be between 1 and 99", o.Rounds))
	}
	if o.Replicas < 1 {
		p = append(p, fmt.Sprintf("replicas %d: must be at least 1", o.Replicas))
	}
	for _, s := range o.Scenarios {
		if !o.known(s) {
			p = append(p, fmt.Sprintf("scenario %q: expected one of %s", s, strings.Join(AllScenarios, ", ")))
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if len(p) > 0 {
		return fmt.Errorf("bench options: %s", strings.Join(p, "; "))
	}
	return nil
}

func (o *Options) known(s string) bool {
	for _, a := range AllScenarios {
		if a == s {
			return true
		}
	}
	return false
}

func (o *Options) enabled(s string) bool {
	if len(o.Scenarios) == 0 {
		return true
	}
	for _, x := range o.Scenarios {
		if x == s {
			return true
		}
	}
	return false
}

// consumeCount is the message count of one consume run in ack mode sync.
func (o *Options) consumeCount(sync bool) int {
	if sync && o.SyncConsumeCount > 0 {
		return o.SyncConsumeCount
	}
	return o.ConsumeCount
}
