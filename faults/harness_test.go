package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// job is the event the fault tests move.
type job struct {
	N int `json:"n"`
}

var (
	jobsStream = framework.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}}
	jobTopic   = framework.MustNewTopic[job]("jobs.queued.v1")
)

const (
	durable = "workers"
	// settleTimeout bounds waits that include a failover and redeliveries
	// on a slow, shared 2-core machine under -race.
	settleTimeout = 90 * time.Second
)

// countingHandler is a slog.Handler that drops records but counts those
// announcing a publish resend, so tests can report how often it happened.
type countingHandler struct{ resends *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "resending") {
		h.resends.Add(1)
	}
	return nil
}

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// world is one scenario: its services, the ledger of what was published
// and what took effect, and counters for the report.
type world struct {
	t       *testing.T
	resends atomic.Int64

	mu        sync.Mutex
	acked     map[string]bool // event ids whose publish the server confirmed
	failed    map[string]error
	effects   map[string]map[uint64]bool // event id -> stream sequences it was processed from (must be one)
	deliver   map[string]int             // event id -> handler runs, redeliveries included
	maxNum    map[string]uint64          // event id -> highest NumDelivered seen when it took effect
	published atomic.Int64
	processed atomic.Int64
}

func newWorld(t *testing.T) *world {
	return &world{t: t, acked: map[string]bool{}, failed: map[string]error{}, effects: map[string]map[uint64]bool{}, deliver: map[string]int{}, maxNum: map[string]uint64{}}
}

func (w *world) logger() *slog.Logger { return slog.New(countingHandler{resends: &w.resends}) }

// service starts a framework service with cfg, shut down at cleanup.
func (w *world) service(cfg framework.Config) *framework.Service {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := framework.New(ctx, cfg, framework.WithLogger(w.logger()))
	if err != nil {
		w.t.Fatalf("framework.New(%s): %v", cfg.ServiceName, err)
	}
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	if _, err := svc.EnsureStream(ctx, jobsStream); err != nil {
		w.t.Fatalf("EnsureStream: %v", err)
	}
	return svc
}

// faultConfig tunes a config for fault tests: short redelivery and retry
// delays, and a MaxDeliver high enough that no healthy event is ever
// dead-lettered however many failovers it sees.
func faultConfig(cfg framework.Config) framework.Config {
	cfg.AckWait = 3 * time.Second
	cfg.MaxDeliver = 20
	cfg.RetryInitial = 50 * time.Millisecond
	cfg.RetryMax = 500 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.ReconnectWait = 100 * time.Millisecond
	return cfg
}

// apply is the handler's effect. A redelivery of the same stream message
// is at-least-once delivery, which a real service absorbs with an
// idempotent write keyed by event id; the effect happens twice only if one
// event id reaches the handler as two stream messages (a resend the stream
// failed to de-duplicate), which reconcile rejects.
func (w *world) apply(m *framework.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := m.Envelope.ID
	w.deliver[id]++
	w.maxNum[id] = max(w.maxNum[id], m.NumDelivered)
	seqs := w.effects[id]
	if seqs == nil {
		seqs = map[uint64]bool{}
		w.effects[id] = seqs
		w.processed.Add(1)
	}
	seqs[m.StreamSeq] = true
}

// worker subscribes svc to the jobs as one member of the consumer group,
// acking in ackMode ("" for the service's default).
func (w *world) worker(svc *framework.Service, ackMode framework.AckMode) *framework.Subscription {
	w.t.Helper()
	h := func(ctx context.Context, ev job, m *framework.Message) error {
		time.Sleep(time.Millisecond) // simulated work
		w.apply(m)
		return nil
	}
	sub, err := framework.Subscribe(w.t.Context(), svc, jobTopic, durable, h,
		&framework.SubscribeOptions{Concurrency: 4, Prefetch: 16, AckMode: ackMode})
	if err != nil {
		w.t.Fatalf("subscribe: %v", err)
	}
	return sub
}

// publish sends events first..first+n-1 from one goroutine, each with a
// fixed event id, relying on Publish's own retry to ride out faults. It
// records every outcome and returns when done or ctx ends.
func (w *world) publish(ctx context.Context, svc *framework.Service, first, n int, pace time.Duration) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := first; i < first+n; i++ {
		id := fmt.Sprintf("job-%06d", i)
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := jobTopic.Publish(pctx, svc, job{N: i}, framework.WithEventID(id))
		cancel()
		w.mu.Lock()
		if err != nil {
			w.failed[id] = err
		} else {
			w.acked[id] = true
			w.published.Add(1)
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// publishers runs k publishers of n events each in the background; wait
// returns when all are done.
func (w *world) publishers(svc *framework.Service, k, n int, pace time.Duration) (wait func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := range k {
		wg.Add(1)
		go func() { defer wg.Done(); w.publish(ctx, svc, p*n, n, pace) }()
	}
	w.t.Cleanup(func() { cancel(); wg.Wait() })
	return func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * settleTimeout):
			w.t.Fatalf("publishers still running after %s (%d acked)", 3*settleTimeout, w.published.Load())
		}
	}
}

// reconcile is the end of every fault test: every confirmed publish took
// effect exactly once, nothing unknown took effect, the stream stored each
// event id once (retries were de-duplicated), nothing was dead-lettered,
// and the consumer settled everything.
func (w *world) reconcile(js jetstream.JetStream, total int) {
	w.t.Helper()
	w.mu.Lock()
	failed := len(w.failed)
	var firstErr error
	for _, err := range w.failed {
		firstErr = err
		break
	}
	w.mu.Unlock()
	if failed > 0 {
		w.t.Errorf("%d publishes failed despite retries, e.g. %v", failed, firstErr)
	}
	testenv.Eventually(w.t, settleTimeout, "every acknowledged event took effect", func() bool {
		return w.processed.Load() >= w.published.Load()
	})
	testenv.WaitConsumerIdle(w.t, js, jobsStream.Name, durable, settleTimeout)

	w.mu.Lock()
	defer w.mu.Unlock()
	var missing, unknown, twice, runs int
	for id := range w.acked {
		if len(w.effects[id]) == 0 {
			missing++
		}
	}
	for id, seqs := range w.effects {
		if !w.acked[id] && w.failed[id] == nil {
			unknown++
		}
		if len(seqs) != 1 {
			twice++
		}
	}
	for _, n := range w.deliver {
		runs += n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // streamMsgs bounds each wait itself
	defer cancel()
	stored := streamMsgs(w.t, ctx, js, jobsStream.Name)
	dead := streamMsgs(w.t, ctx, js, "DEADLETTER")
	w.t.Logf("reconcile: published %d of %d, acked %d, stored %d, took effect %d, handler runs %d (redeliveries %d), dead-lettered %d, publish resends %d",
		len(w.acked)+failed, total, len(w.acked), stored, len(w.effects), runs, runs-len(w.effects), dead, w.resends.Load())
	if len(w.acked) != total {
		w.t.Errorf("acked %d publishes, want %d", len(w.acked), total)
	}
	if missing > 0 {
		w.t.Errorf("%d acknowledged events never took effect", missing)
	}
	if unknown > 0 {
		w.t.Errorf("%d events took effect that were never published", unknown)
	}
	if twice > 0 {
		w.t.Errorf("%d event ids were processed from more than one stream message (took effect twice)", twice)
	}
	if stored != uint64(len(w.acked)) {
		w.t.Errorf("stream stores %d messages for %d distinct acknowledged event ids: a resend was not de-duplicated or a store was lost", stored, len(w.acked))
	}
	if dead != 0 {
		w.t.Errorf("%d events dead-lettered; healthy events must survive faults", dead)
	}
}

func streamMsgs(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	var n uint64
	// After a crash the stream may need a new leader (or the restarted
	// node may still be catching up): ask again, each try bounded.
	err := testenv.WaitFor(ctx, 60*time.Second, func() bool {
		try, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		st, err := js.Stream(try, name)
		if err != nil {
			return false
		}
		info, err := st.Info(try)
		if err != nil {
			return false
		}
		n = info.State.Msgs
		return true
	})
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return n
}
