package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
)

// memoryProfile is what the memory scenario observes in this process
// (which includes the embedded server when there is one).
type memoryProfile struct {
	liveEarly, liveEnd float64 // live heap after a GC at 25% and at 100%, MiB
	peakHeap, peakRSS  float64 // MiB, sampled every 20 ms
	rate               float64 // msgs/s (includes the GC pauses of the checkpoints)
}

// memSampler samples heap and RSS while a consumer works through a backlog.
type memSampler struct {
	n         int64
	count     *atomic.Int64
	stop      chan struct{}
	wg        sync.WaitGroup
	peakHeap  uint64
	peakRSS   uint64
	liveEarly uint64
}

func startSampler(n int, count *atomic.Int64) *memSampler {
	s := &memSampler{n: int64(n), count: count, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.loop()
	return s
}

func (s *memSampler) loop() {
	defer s.wg.Done()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if v := sample[0].Value; v.Kind() == metrics.KindUint64 {
			s.peakHeap = max(s.peakHeap, v.Uint64())
		}
		s.peakRSS = max(s.peakRSS, rss())
		if s.liveEarly == 0 && s.count.Load() >= s.n/4 {
			s.liveEarly = liveHeap()
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// finish stops sampling and measures the live heap at the end.
func (s *memSampler) finish(rate float64) memoryProfile {
	close(s.stop)
	s.wg.Wait()
	end := liveHeap()
	if s.liveEarly == 0 { // the run was shorter than one sample
		s.liveEarly = end
	}
	return memoryProfile{liveEarly: mib(s.liveEarly), liveEnd: mib(end), peakHeap: mib(s.peakHeap), peakRSS: mib(s.peakRSS), rate: rate}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rss is the resident set size from /proc (0 where there is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// memory consumes a backlog of Options.Backlog messages, raw then jetkit,
// and reports the live heap early and at the end, and the peaks.
func (e *env) memory(ctx context.Context) ([]Result, error) {
	n := e.opts.Backlog
	stream, subject, err := e.consumeBacklog(ctx, "memory", n)
	if err != nil {
		return nil, err
	}
	defer e.deleteStream(stream)
	raw, err := e.rawMemory(ctx, stream, subject, n)
	if err != nil {
		return nil, err
	}
	jk, err := e.jetkitMemory(ctx, stream, subject, n)
	if err != nil {
		return nil, err
	}
	where := "this process"
	if e.srv != nil {
		where = "this process, embedded server included"
	}
	note := fmt.Sprintf("%d msgs; %s", n, where)
	growth := newResult(ScenarioMemory, "heap growth 25%->100%", "MiB", raw.liveEnd-raw.liveEarly, jk.liveEnd-jk.liveEarly, jetkitFlat(), "flat: does not grow with the backlog")
	growth.Ratio = 0 // a ratio of two differences near zero means nothing
	return []Result{
		newResult(ScenarioMemory, "live heap at 25%", "MiB", raw.liveEarly, jk.liveEarly, nil, note),
		newResult(ScenarioMemory, "live heap at 100%", "MiB", raw.liveEnd, jk.liveEnd, nil, note),
		growth,
		newResult(ScenarioMemory, "peak heap", "MiB", raw.peakHeap, jk.peakHeap, nil, note),
		newResult(ScenarioMemory, "peak RSS", "MiB", raw.peakRSS, jk.peakRSS, nil, note),
		newResult(ScenarioMemory, "throughput", "msgs/s", raw.rate, jk.rate, nil, "includes two forced GCs"),
	}, nil
}

// jetkitFlat is the memory target: the live heap at the end of the backlog
// is within 2 MiB of the live heap a quarter of the way in.
func jetkitFlat() *target { return jetkitAtMost(2, "MiB") }

func (e *env) rawMemory(ctx context.Context, stream, subject string, n int) (memoryProfile, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	nc, js, err := e.rawConn(ctx, "raw")
	if err != nil {
		return memoryProfile{}, err
	}
	defer nc.Close()
	durable := fmt.Sprintf("raw_mem_%d", e.nextSeq())
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubject: subject,
	})
	if err != nil {
		return memoryProfile{}, fmt.Errorf("raw consumer on %s: %w", stream, err)
	}
	defer e.deleteConsumer(stream, durable)
	k := newCounter(n)
	s := startSampler(n, &k.count)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		k.begin()
		if m.Ack() == nil {
			k.settled()
		}
	})
	if err != nil {
		s.finish(0)
		return memoryProfile{}, fmt.Errorf("raw consume %s: %w", stream, err)
	}
	err = k.wait(ctx, "raw backlog")
	p := s.finish(k.rate())
	cc.Stop()
	return p, err
}

func (e *env) jetkitMemory(ctx context.Context, stream, subject string, n int) (memoryProfile, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	topic, err := framework.NewTopic[Event](subject)
	if err != nil {
		return memoryProfile{}, err
	}
	svc, err := e.service(ctx)
	if err != nil {
		return memoryProfile{}, err
	}
	defer stopService(svc)
	durable := fmt.Sprintf("jetkit_mem_%d", e.nextSeq())
	defer e.deleteConsumer(stream, durable)
	k := newCounter(n)
	var acked atomic.Int64
	s := startSampler(n, &acked)
	sub, err := framework.Subscribe(ctx, svc, topic, durable, func(ctx context.Context, ev Event, m *framework.Message) error {
		k.begin()
		k.settled()
		return nil
	}, e.subOpts(framework.SubscribeOptions{Stream: stream}))
	if err != nil {
		s.finish(0)
		return memoryProfile{}, fmt.Errorf("jetkit subscribe %s: %w", stream, err)
	}
	for {
		a := int64(sub.Stats().Acked)
		acked.Store(a)
		if a >= int64(n) {
			break
		}
		if ctx.Err() != nil {
			s.finish(0)
			return memoryProfile{}, fmt.Errorf("jetkit backlog: %d of %d acked: %w", a, n, ctx.Err())
		}
		time.Sleep(time.Millisecond)
	}
	k.last.Store(time.Now().UnixNano())
	return s.finish(k.rate()), nil
}
