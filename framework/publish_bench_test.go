package framework

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/internal/wire"
)

// BenchmarkPublishSync compares, on one connection to an embedded server
// with file storage, a sync publish with raw nats.go (a bare payload, and
// the same payload with the headers a jetkit event carries) and
// Topic.Publish (no observer). The variants alternate over several rounds,
// each on a fresh stream, so that the machine's changing load hits them
// alike; it reports the median round's wall and CPU time per publish (CPU
// time, this process's, embedded server included, is the steadier figure
// on a shared machine) and jetkit's extra CPU per publish over raw nats.go
// sending the same headers.
//
//	go test -run '^$' -bench 'BenchmarkPublish(Sync|Async)$' -benchtime 5000x ./framework/
func BenchmarkPublishSync(b *testing.B) { benchmarkPublish(b, false) }

// BenchmarkPublishAsync is BenchmarkPublishSync for PublishMsgAsync and
// Topic.PublishAsync, timed until every ack is in.
func BenchmarkPublishAsync(b *testing.B) { benchmarkPublish(b, true) }

func benchmarkPublish(b *testing.B, async bool) {
	c := benchConn(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	data, err := JSON.Marshal(newBenchEvent())
	if err != nil {
		b.Fatal(err)
	}
	ev := newBenchEvent()
	variants := []string{"raw", "raw+headers", "jetkit"}
	publish := map[string]func(subject string, topic *Topic[benchEvent]) error{
		"raw": func(subject string, _ *Topic[benchEvent]) error {
			return benchRawPublish(ctx, c, async, &nats.Msg{Subject: subject, Data: data})
		},
		"raw+headers": func(subject string, _ *Topic[benchEvent]) error {
			id := nuid.Next()
			h := nats.Header{wire.HeaderSpecVersion: {wire.SpecVersion}, wire.HeaderID: {id}, wire.HeaderType: {subject}, wire.HeaderSource: {"bench"},
				wire.HeaderTime: {time.Now().UTC().Format(time.RFC3339Nano)}, wire.HeaderDataContentType: {"application/json"}, wire.HeaderMsgID: {id}}
			return benchRawPublish(ctx, c, async, &nats.Msg{Subject: subject, Data: data, Header: h})
		},
		"jetkit": func(_ string, topic *Topic[benchEvent]) error {
			var err error
			if async {
				_, err = topic.PublishAsync(ctx, c, ev)
			} else {
				_, err = topic.Publish(ctx, c, ev)
			}
			return err
		},
	}
	wall, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}
	allocs := map[string]uint64{}
	const rounds = 5
	b.StopTimer()
	for r := range rounds {
		for i := range variants {
			v := variants[(i+r)%len(variants)]
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			w, cp := benchPublishRound(b, ctx, c, async, publish[v])
			runtime.ReadMemStats(&m1)
			wall[v], cpu[v] = append(wall[v], w), append(cpu[v], cp)
			allocs[v] += m1.Mallocs - m0.Mallocs
		}
	}
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(b.N)
	}
	for _, v := range variants {
		b.ReportMetric(median(wall[v]), v+"-ns/msg")
		b.ReportMetric(median(cpu[v]), v+"-cpu-ns/msg")
		b.ReportMetric(float64(allocs[v])/float64(rounds*b.N), v+"-allocs/msg")
	}
	b.ReportMetric(median(cpu["jetkit"])-median(cpu["raw+headers"]), "jetkit-extra-cpu-ns/msg")
}

var benchStreams atomic.Int64

// benchPublishRound publishes b.N messages to a fresh stream and returns
// the wall and CPU time it took, every ack included.
func benchPublishRound(b *testing.B, ctx context.Context, c *Conn, async bool, publish func(string, *Topic[benchEvent]) error) (wall, cpu time.Duration) {
	n := benchStreams.Add(1)
	subject := fmt.Sprintf("pb%d.created.v1", n)
	stream := fmt.Sprintf("PB%d", n)
	if _, err := c.JS.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.JS.DeleteStream(ctx, stream) }()
	topic := MustNewTopic[benchEvent](subject)
	t0, c0 := time.Now(), benchCPUTime()
	b.StartTimer()
	for i := range b.N {
		if err := publish(subject, topic); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
	}
	if async {
		if err := c.FlushAsync(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	return time.Since(t0), benchCPUTime() - c0
}

func benchRawPublish(ctx context.Context, c *Conn, async bool, msg *nats.Msg) error {
	if !async {
		_, err := c.JS.PublishMsg(ctx, msg)
		return err
	}
	_, err := c.JS.PublishMsgAsync(msg)
	return err
}

// benchCPUTime is the process's user+system CPU time.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
