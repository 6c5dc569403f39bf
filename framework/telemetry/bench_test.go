package telemetry_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

var (
	benchStream = framework.StreamSpec{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.MemoryStorage}
	benchTopic  = framework.NewTopic[orderCreated]("bench.event.v1")
)

// discardExporter drops spans: the SDK still builds and ends every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// observers are the set-ups compared. "none" is jetkit without an
// observer; "off" is the observer over the global providers with nothing
// configured (no exporter: the "off" the 5% budget is about); "on" records
// every span and metric with the SDK (spans dropped at export).
func observers(b *testing.B) map[string]framework.Observer {
	off, err := telemetry.NewObserver()
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	on, err := telemetry.NewObserver(telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	return map[string]framework.Observer{"none": nil, "off": off, "on": on}
}

// BenchmarkConsume measures the consume path per message: b.N events are
// stored first, then one subscription drains them; ns/op is the time per
// message from subscribing until the last handler returned.
//
//	go test -run '^$' -bench BenchmarkConsume -benchtime 20000x -count 6 ./framework/telemetry/
func BenchmarkConsume(b *testing.B) {
	srv := testenv.Start(b)
	obs := observers(b)
	for _, conc := range []int{1, 16} {
		for _, name := range []string{"none", "off", "on"} {
			b.Run(fmt.Sprintf("conc=%d/observer=%s", conc, name), func(b *testing.B) {
				consumeRun(b, srv, obs[name], conc)
			})
		}
	}
}

var benchRun atomic.Int64

func consumeRun(b *testing.B, srv *testenv.Server, obs framework.Observer, conc int) {
	b.ReportAllocs()
	var opts []framework.Option
	if obs != nil {
		opts = append(opts, framework.WithObserver(obs))
	}
	ctx := context.Background()
	cfg := srv.Config("bench")
	svc, err := framework.New(ctx, cfg, append(opts, framework.WithLogger(quietLogger()))...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = svc.Shutdown(sctx)
	}()
	st, err := svc.EnsureStream(ctx, benchStream)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		if _, err := benchTopic.PublishAsync(ctx, svc, orderCreated{ID: "o", Qty: i}); err != nil {
			b.Fatal(err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := svc.Conn().FlushAsync(fctx); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	_, err = framework.Subscribe(svc, benchTopic, fmt.Sprintf("bench%d", benchRun.Add(1)),
		func(ctx context.Context, ev orderCreated, m *framework.Message) error {
			if n.Add(1) == want {
				close(done)
			}
			return nil
		}, framework.Concurrency(conc))
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d in 5 minutes", n.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user+system CPU time: on a shared, loaded
// machine it moves far less with other tenants' load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkObserverOverhead is the instrumentation alone, per message:
// StartProcess and its end, with nothing configured ("off") and with the
// SDK recording ("on").
//
//	go test -run '^$' -bench BenchmarkObserverOverhead ./framework/telemetry/
func BenchmarkObserverOverhead(b *testing.B) {
	obs := observers(b)
	info := framework.SubscriptionInfo{Stream: "BENCH", Consumer: "bench", Subject: "bench.event.v1", Filters: []string{"bench.event.v1"}, Concurrency: 1, MaxDeliver: 5}
	msg := &framework.Message{Subject: "bench.event.v1", Data: make([]byte, 64), Stream: "BENCH", Consumer: "bench",
		NumDelivered: 1, StreamSeq: 1, Envelope: framework.Envelope{ID: "evt", Type: "bench.event.v1"}}
	msg.Header = map[string][]string{"ce-id": {"evt"}, "ce-type": {"bench.event.v1"}, "ce-source": {"bench"}, "ce-specversion": {"1.0"}, "content-type": {"application/json"}, "Nats-Msg-Id": {"evt"}}
	for _, name := range []string{"off", "on"} {
		so := obs[name].Subscribed(info)
		b.Run("process/observer="+name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			cpu0 := cpuTime()
			for b.Loop() {
				_, end := so.StartProcess(ctx, msg)
				end(framework.Settlement{Outcome: framework.OutcomeAcked})
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
		b.Run("publish/observer="+name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			pi := framework.PublishInfo{Subject: "bench.event.v1", EventType: "bench.event.v1"}
			cpu0 := cpuTime()
			for b.Loop() {
				_, end := obs[name].StartPublish(ctx, pi)
				end(nil, nil)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
