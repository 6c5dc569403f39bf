package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/framework/telemetry"
	"github.com/jetkit/jetkit/testenv"
)

var (
	benchStream = framework.StreamSpec{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.MemoryStorage}
	benchTopic  = framework.MustNewTopic[orderCreated]("bench.event.v1")
)

// discardExporter drops spans: the SDK still builds and ends every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// observers are the set-ups compared. "none" is jetkit without an
// observer; "off" is the observer over the global providers with nothing
// configured (no exporter: the "off" the 5% budget is about); "on" records
// every span and metric with the SDK (spans dropped at export).
func observers(b *testing.B) map[string]observe.Observer {
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
	return map[string]observe.Observer{"none": nil, "off": off, "on": on}
}

// BenchmarkConsume compares the consume path per message without an
// observer ("none"), with an observer over unconfigured global providers
// ("off": no exporter configured) and with the SDK recording everything
// ("on"). Each round stores b.N events and drains them with a fresh
// subscription, once per variant; the variants alternate over 7 rounds so
// that the machine's changing load hits them alike. It reports the median
// round's wall and CPU time per message for each variant, and the overhead
// of "off" and "on" over "none" (CPU time is the steadier figure on a
// shared machine).
//
//	go test -run '^$' -bench BenchmarkConsume -benchtime 20000x ./framework/telemetry/
func BenchmarkConsume(b *testing.B) {
	srv := testenv.Start(b)
	obs := observers(b)
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			b.ReportAllocs()
			variants := []string{"none", "off", "on"}
			wall := map[string][]time.Duration{}
			cpu := map[string][]time.Duration{}
			const rounds = 7
			for r := range rounds {
				for i := range variants {
					v := variants[(i+r)%len(variants)]
					w, c := consumeRound(b, srv, obs[v], conc, b.N)
					wall[v] = append(wall[v], w)
					cpu[v] = append(cpu[v], c)
				}
			}
			// Medians: one stalled round on a shared machine must not decide.
			per := func(ds []time.Duration) float64 {
				slices.Sort(ds)
				return float64(ds[len(ds)/2]) / float64(b.N)
			}
			res := map[string]float64{}
			for _, v := range variants {
				res[v+"-ns/msg"], res[v+"-cpu-ns/msg"] = per(wall[v]), per(cpu[v])
				b.ReportMetric(res[v+"-ns/msg"], v+"-ns/msg")
				b.ReportMetric(res[v+"-cpu-ns/msg"], v+"-cpu-ns/msg")
			}
			b.ReportMetric(100*(res["off-cpu-ns/msg"]/res["none-cpu-ns/msg"]-1), "off-cpu-overhead-%")
			b.ReportMetric(100*(res["off-ns/msg"]/res["none-ns/msg"]-1), "off-wall-overhead-%")
			b.ReportMetric(100*(res["on-cpu-ns/msg"]/res["none-cpu-ns/msg"]-1), "on-cpu-overhead-%")
		})
	}
}

var benchRun atomic.Int64

// consumeRound stores n events, then measures the wall and CPU time one
// subscription takes to handle them all.
func consumeRound(b *testing.B, srv *testenv.Server, obs observe.Observer, conc, n int) (wall, cpu time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	var opts []framework.Option
	if obs != nil {
		opts = append(opts, framework.WithObserver(obs))
	}
	ctx := context.Background()
	svc, err := framework.New(ctx, srv.Config("bench"), append(opts, framework.WithLogger(slog.New(slog.DiscardHandler)))...)
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
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for i := range n {
		if _, err := benchTopic.PublishAsync(ctx, svc, orderCreated{ID: "o", Qty: i}); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 { // stay far below the async pending limit on a slow machine
			if err := svc.Conn().FlushAsync(fctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := svc.Conn().FlushAsync(fctx); err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	want := int64(n)
	t0, c0 := time.Now(), cpuTime()
	b.StartTimer()
	_, err = framework.Subscribe(ctx, svc, benchTopic, fmt.Sprintf("bench%d", benchRun.Add(1)),
		func(ctx context.Context, ev orderCreated, m *framework.Message) error {
			if handled.Add(1) == want {
				close(done)
			}
			return nil
		}, &framework.SubscribeOptions{Concurrency: conc})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("handled %d of %d in 5 minutes", handled.Load(), n)
	}
	b.StopTimer()
	return time.Since(t0), cpuTime() - c0
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
	info := observe.SubscriptionInfo{Stream: "BENCH", Consumer: "bench", Subject: "bench.event.v1", Filters: []string{"bench.event.v1"}, Concurrency: 1, MaxDeliver: 5}
	msg := observe.Delivery{Subject: "bench.event.v1", Size: 64, NumDelivered: 1, StreamSeq: 1, EventID: "evt", EventType: "bench.event.v1"}
	msg.Header = map[string][]string{"ce-id": {"evt"}, "ce-type": {"bench.event.v1"}, "ce-source": {"bench"}, "ce-specversion": {"1.0"}, "content-type": {"application/json"}, "Nats-Msg-Id": {"evt"}}
	for _, name := range []string{"off", "on"} {
		so := obs[name].Subscribed(info)
		b.Run("process/observer="+name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			cpu0 := cpuTime()
			for b.Loop() {
				_, end := so.StartProcess(ctx, msg)
				end(observe.Settlement{Outcome: observe.Acked})
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
		b.Run("publish/observer="+name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			pi := observe.PublishInfo{Subject: "bench.event.v1", EventType: "bench.event.v1"}
			cpu0 := cpuTime()
			for b.Loop() {
				_, end := obs[name].StartPublish(ctx, pi)
				end(nil, nil)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
