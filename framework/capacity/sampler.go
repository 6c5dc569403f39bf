package capacity

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/humanize"
	"github.com/jetkit/jetkit/internal/wire"
)

// Sample is one reading of a consumer and its stream.
type Sample struct {
	// At is when the reading was taken (the middle of the ConsumerInfo call).
	At time.Time `json:"at"`
	// NumPending is messages matching the filter not yet delivered.
	NumPending uint64 `json:"num_pending"`
	// NumAckPending is messages delivered and not yet acknowledged.
	NumAckPending int `json:"num_ack_pending"`
	// NumRedelivered is ack-pending messages delivered more than once.
	NumRedelivered int `json:"num_redelivered"`
	// NumWaiting is open pull requests: instances asking for work.
	NumWaiting int `json:"num_waiting"`
	// MaxAckPending is the consumer's limit on NumAckPending (-1: none).
	MaxAckPending int `json:"max_ack_pending"`
	// Delivered is the last delivery: consumer sequence (counts every
	// delivery, redeliveries included) and stream sequence (the read
	// position: every matching message up to it was delivered once).
	Delivered jetstream.SequenceInfo `json:"delivered"`
	// AckFloor is the highest sequence below which everything is acked.
	AckFloor jetstream.SequenceInfo `json:"ack_floor"`
	// Filtered is true when the consumer sees only some of the stream.
	Filtered bool `json:"filtered"`
	// StreamFirstSeq, StreamLastSeq and their times describe the stream.
	StreamFirstSeq  uint64    `json:"stream_first_seq"`
	StreamLastSeq   uint64    `json:"stream_last_seq"`
	StreamFirstTime time.Time `json:"stream_first_ts"`
	StreamLastTime  time.Time `json:"stream_last_ts"`
	// OldestSeq is the stream sequence of the oldest unprocessed message
	// (0 when nothing is unprocessed or it could not be read).
	OldestSeq uint64 `json:"oldest_seq,omitempty"`
	// OldestTime is that message's stored timestamp; zero when not read.
	OldestTime time.Time `json:"oldest_ts,omitzero"`
	// OldestErr says why the oldest message could not be read.
	OldestErr string `json:"oldest_err,omitempty"`
	// Local is the handler timing of subscriptions in this process, if any.
	Local *LocalTiming `json:"local,omitempty"`
	// Registered is the handler timing of every instance reading the
	// consumer, from the registrations jetkit services keep in the KV
	// bucket jetkit_instances (nil when there are none);
	// RegisteredErr says why they could not be read.
	Registered    *LocalTiming `json:"registered,omitempty"`
	RegisteredErr string       `json:"registered_err,omitempty"`
	// IgnoredRegistrations counts registrations that were malformed or
	// out of bounds (a registration is written by a service, so it is not
	// trusted).
	IgnoredRegistrations int `json:"ignored_registrations,omitempty"`
	// Busy lists the registered instances with handlers running now, the
	// one running longest first (at most maxBusy): the estimate names
	// them when the consumer stalls.
	Busy []BusyInstance `json:"busy,omitempty"`
	// Partitions is the partition count when the sample reads a
	// partitioned consumer group (framework.SubscribeOptions.Partitioned): the consumer
	// name is the group's durable, and the counts and sequences above are
	// sums over its partitions' consumers (<durable>-p<N>), which mean
	// something only as they move between samples; OldestSeq is the
	// oldest unprocessed message of any partition.
	Partitions int `json:"partitions,omitempty"`
}

// Backlog is B = pending + ack-pending: everything not yet processed.
func (s Sample) Backlog() float64 { return float64(s.NumPending) + float64(s.NumAckPending) }

// LocalTiming is the handler timing of the instances reading the
// consumer: local subscriptions (Sample.Local) or registered instances
// (Sample.Registered).
type LocalTiming struct {
	// Instances is how many instances (or local subscriptions) read the consumer.
	Instances int `json:"instances"`
	// Concurrency is the handlers running at once per instance (mean).
	Concurrency float64 `json:"concurrency"`
	// AvgHandler is the moving-average handler time (mean over instances).
	AvgHandler time.Duration `json:"avg_handler_ns"`
	// Received is deliveries handled so far (all instances).
	Received uint64 `json:"received"`
	// Source is "registered" for Sample.Registered, "" for local
	// subscriptions.
	Source string `json:"source,omitempty"`
}

// Sampler reads a consumer's and its stream's state every interval and
// keeps the last Window samples. It uses only the JetStream API, so it
// works with any server or cluster a jetstream.JetStream reaches.
type Sampler struct {
	js       jetstream.JetStream
	stream   string
	consumer string
	interval time.Duration
	window   int
	readOld  bool
	timeout  time.Duration
	local    []*framework.Subscription
	readReg  bool

	mu      sync.Mutex
	regKV   jetstream.KeyValue
	samples []Sample
	lastErr error
	st      jetstream.Stream
}

// SamplerOption configures a Sampler.
type SamplerOption func(*Sampler)

// Interval sets how often Run samples (default 1s).
func Interval(d time.Duration) SamplerOption { return func(s *Sampler) { s.interval = d } }

// Window sets how many samples are kept (default 120).
func Window(n int) SamplerOption { return func(s *Sampler) { s.window = n } }

// ReadOldest controls whether each sample reads the oldest unprocessed
// message to get its timestamp (default true). Without it, time lag is
// interpolated from the samples.
func ReadOldest(on bool) SamplerOption { return func(s *Sampler) { s.readOld = on } }

// Registrations controls whether each sample reads the instance
// registrations jetkit services keep in the KV bucket jetkit_instances
// (default true): they give the instance count and the service rate μ
// from outside the services.
func Registrations(on bool) SamplerOption { return func(s *Sampler) { s.readReg = on } }

// RequestTimeout bounds each JetStream API call (default 5s).
func RequestTimeout(d time.Duration) SamplerOption { return func(s *Sampler) { s.timeout = d } }

// Local adds subscriptions in this process that read the consumer: their
// handler timing gives the service rate μ without waiting for saturation.
func Local(subs ...*framework.Subscription) SamplerOption {
	return func(s *Sampler) { s.local = append(s.local, subs...) }
}

// NewSampler prepares a sampler of stream/consumer; nothing is read until
// Sample or Run.
func NewSampler(js jetstream.JetStream, stream, consumer string, opts ...SamplerOption) (*Sampler, error) {
	s := &Sampler{js: js, stream: stream, consumer: consumer, interval: time.Second, window: 120, readOld: true, readReg: true, timeout: 5 * time.Second}
	for _, o := range opts {
		o(s)
	}
	var errs []error
	if js == nil {
		errs = append(errs, errors.New("nil JetStream"))
	}
	if stream == "" || consumer == "" {
		errs = append(errs, errors.New("stream and consumer names are required"))
	}
	if s.interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %s: must be positive", s.interval))
	}
	if s.window < 2 {
		errs = append(errs, fmt.Errorf("window %d: must keep at least 2 samples to measure rates", s.window))
	}
	if s.timeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout %s: must be positive", s.timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("capacity sampler %s/%s: %w", stream, consumer, err)
	}
	return s, nil
}

// Stream and Consumer name what is sampled.
func (s *Sampler) Stream() string { return s.stream }

// Consumer is the durable consumer sampled.
func (s *Sampler) Consumer() string { return s.consumer }

// IntervalDuration is the sampling interval.
func (s *Sampler) IntervalDuration() time.Duration { return s.interval }

// Samples returns a copy of the window, oldest first.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// Err is the error of the last failed sample, nil after a good one.
func (s *Sampler) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Run samples every interval until ctx ends. A failed sample is kept as
// Err and retried at the next tick; Run returns ctx's error.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		_, _ = s.Sample(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Sample reads the consumer and stream now and adds the result to the window.
func (s *Sampler) Sample(ctx context.Context) (Sample, error) {
	smp, err := s.read(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err != nil {
		return smp, err
	}
	s.samples = append(s.samples, smp)
	if over := len(s.samples) - s.window; over > 0 {
		s.samples = append(s.samples[:0:0], s.samples[over:]...)
	}
	return smp, nil
}

func (s *Sampler) read(ctx context.Context) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st, err := s.streamHandle(ctx)
	if err != nil {
		return Sample{}, err
	}
	sinfo, err := st.Info(ctx)
	if err != nil {
		s.forgetStream()
		return Sample{}, fmt.Errorf("read stream %s info (is it still there? check the name with `nats stream ls`): %w", s.stream, err)
	}
	before := time.Now()
	// Consumer fetches the consumer's info once; CachedInfo is that reply.
	cons, err := st.Consumer(ctx, s.consumer)
	if n, _ := strconv.Atoi(sinfo.Config.Metadata[wire.StreamPartitionsMetadata]); n > 0 && errors.Is(err, jetstream.ErrConsumerNotFound) {
		return s.readGroup(ctx, st, sinfo, n, before)
	}
	if err != nil {
		return Sample{}, fmt.Errorf("read consumer %s/%s info%s: %w", s.stream, s.consumer, s.consumerHint(ctx, st, err), err)
	}
	ci := cons.CachedInfo()
	at := before.Add(time.Since(before) / 2)
	filters := ci.Config.FilterSubjects
	if ci.Config.FilterSubject != "" {
		filters = append(filters, ci.Config.FilterSubject)
	}
	smp := Sample{
		At: at, NumPending: ci.NumPending, NumAckPending: ci.NumAckPending,
		NumRedelivered: ci.NumRedelivered, NumWaiting: ci.NumWaiting, MaxAckPending: ci.Config.MaxAckPending,
		Delivered: ci.Delivered, AckFloor: ci.AckFloor, Filtered: isFiltered(filters, sinfo.Config.Subjects),
		StreamFirstSeq: sinfo.State.FirstSeq, StreamLastSeq: sinfo.State.LastSeq,
		StreamFirstTime: sinfo.State.FirstTime, StreamLastTime: sinfo.State.LastTime,
	}
	if smp.Backlog() > 0 {
		// The oldest unprocessed message is the first one matching the
		// filter after the ack floor: everything at or below it is acked.
		smp.OldestSeq = max(ci.AckFloor.Stream+1, sinfo.State.FirstSeq)
		if s.readOld {
			s.readOldest(ctx, st, filters, &smp)
		}
	}
	smp.Local = s.localTiming()
	s.registered(ctx, &smp)
	return smp, nil
}

// readGroup reads the n partition consumers of the partitioned consumer
// group s.consumer and sums them into one sample.
func (s *Sampler) readGroup(ctx context.Context, st jetstream.Stream, sinfo *jetstream.StreamInfo, n int, before time.Time) (Sample, error) {
	smp := Sample{
		Filtered: true, Partitions: n,
		StreamFirstSeq: sinfo.State.FirstSeq, StreamLastSeq: sinfo.State.LastSeq,
		StreamFirstTime: sinfo.State.FirstTime, StreamLastTime: sinfo.State.LastTime,
	}
	var filters []string
	for p := range n {
		name := wire.PartitionConsumer(s.consumer, p)
		cons, err := st.Consumer(ctx, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return Sample{}, fmt.Errorf("read partitioned group %s/%s: partition %d has no consumer %s yet (each appears when an instance first owns the partition: start the service): %w", s.stream, s.consumer, p, name, err)
		}
		if err != nil {
			return Sample{}, fmt.Errorf("read partitioned group %s/%s: consumer %s: %w", s.stream, s.consumer, name, err)
		}
		ci := cons.CachedInfo()
		smp.NumPending += ci.NumPending
		smp.NumAckPending += ci.NumAckPending
		smp.NumRedelivered += ci.NumRedelivered
		smp.NumWaiting += ci.NumWaiting
		if ci.Config.MaxAckPending > 0 && smp.MaxAckPending >= 0 {
			smp.MaxAckPending += ci.Config.MaxAckPending
		} else {
			smp.MaxAckPending = -1 // one partition without a limit: the group has none
		}
		smp.Delivered.Consumer += ci.Delivered.Consumer
		smp.Delivered.Stream += ci.Delivered.Stream
		smp.AckFloor.Consumer += ci.AckFloor.Consumer
		smp.AckFloor.Stream += ci.AckFloor.Stream
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			if seq := max(ci.AckFloor.Stream+1, sinfo.State.FirstSeq); smp.OldestSeq == 0 || seq < smp.OldestSeq {
				smp.OldestSeq = seq
			}
		}
		filters = append(filters, ci.Config.FilterSubjects...)
		if ci.Config.FilterSubject != "" {
			filters = append(filters, ci.Config.FilterSubject)
		}
	}
	smp.At = before.Add(time.Since(before) / 2)
	if smp.OldestSeq > 0 && s.readOld {
		s.readOldest(ctx, st, filters, &smp)
	}
	smp.Local = s.localTiming()
	s.registered(ctx, &smp)
	return smp, nil
}

// registered reads the registrations of the consumer's instances into
// smp.Registered. Registrations older than wire.InstanceStale (by this
// machine's clock, so clocks must agree within a few seconds) are of
// instances that stopped refreshing them and do not count.
func (s *Sampler) registered(ctx context.Context, smp *Sample) {
	if !s.readReg {
		return
	}
	s.mu.Lock()
	kv := s.regKV
	s.mu.Unlock()
	if kv == nil {
		var err error
		kv, err = s.js.KeyValue(ctx, wire.InstanceBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return // no service registers here
		}
		if err != nil {
			smp.RegisteredErr = fmt.Sprintf("read KV bucket %s: %v", wire.InstanceBucket, err)
			return
		}
		s.mu.Lock()
		s.regKV = kv
		s.mu.Unlock()
	}
	keys, err := kv.ListKeysFiltered(ctx, wire.InstanceKeyPrefix(s.stream, s.consumer)+"*")
	if err != nil {
		smp.RegisteredErr = fmt.Sprintf("list registrations in %s: %v", wire.InstanceBucket, err)
		return
	}
	lt := &LocalTiming{Source: "registered"}
	var conc float64
	var avg time.Duration
	var timed int
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil || time.Since(e.Created()) > wire.InstanceStale {
			continue
		}
		var r wire.InstanceRecord
		if len(e.Value()) > wire.InstanceRecordMax || json.Unmarshal(e.Value(), &r) != nil ||
			r.Concurrency < 0 || r.Concurrency > maxRegisteredConcurrency ||
			r.AvgHandlerNS < 0 || r.AvgHandlerNS > int64(time.Hour) ||
			r.Running < 0 || r.Running > maxRegisteredConcurrency || r.OldestRunningNS < 0 || r.OldestRunningNS > int64(30*24*time.Hour) {
			smp.IgnoredRegistrations++
			continue
		}
		lt.Instances++
		conc += float64(r.Concurrency)
		if r.AvgHandlerNS > 0 {
			avg += time.Duration(r.AvgHandlerNS)
			timed++
		}
		lt.Received += r.Received
		if r.Running > 0 {
			smp.Busy = append(smp.Busy, BusyInstance{Instance: strings.TrimPrefix(k, wire.InstanceKeyPrefix(s.stream, s.consumer)),
				Service: safeName(r.Service), Running: r.Running, Oldest: time.Duration(r.OldestRunningNS)})
		}
	}
	slices.SortFunc(smp.Busy, func(a, b BusyInstance) int { return cmp.Compare(b.Oldest, a.Oldest) })
	if len(smp.Busy) > maxBusy {
		smp.Busy = smp.Busy[:maxBusy]
	}
	if lt.Instances == 0 {
		return
	}
	lt.Concurrency = conc / float64(lt.Instances)
	if timed > 0 {
		lt.AvgHandler = avg / time.Duration(timed)
	}
	smp.Registered = lt
}

// maxRegisteredConcurrency bounds the concurrency a registration may
// claim; larger claims are ignored.
const maxRegisteredConcurrency = 1 << 20

// maxBusy bounds Sample.Busy.
const maxBusy = 10

// BusyInstance is a registered instance with handlers running.
type BusyInstance struct {
	// Instance is the registration's instance id; Service the service
	// name it gave (reduced to letters, digits, '-', '_' and '.').
	Instance string `json:"instance"`
	Service  string `json:"service"`
	// Running is its handlers running, and Oldest how long the oldest of
	// them had run, when the instance last refreshed its registration
	// (every 5 s).
	Running int           `json:"running"`
	Oldest  time.Duration `json:"oldest_running_ns"`
}

func (b BusyInstance) String() string {
	return fmt.Sprintf("%s/%s (%d running, the oldest for %s)", b.Service, b.Instance, b.Running, humanize.Duration(b.Oldest))
}

// safeName keeps what a registration's service name may show: at most 64
// letters, digits, '-', '_' and '.' (it is printed on terminals and pages).
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "?"
	}
	return b.String()
}

// readOldest reads the first message matching the filters at or after
// smp.OldestSeq and records its sequence and timestamp.
func (s *Sampler) readOldest(ctx context.Context, st jetstream.Stream, filters []string, smp *Sample) {
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var best *jetstream.RawStreamMsg
	var errs []error
	for _, f := range filters {
		m, err := st.GetMsg(ctx, smp.OldestSeq, jetstream.WithGetMsgSubject(f))
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if best == nil || m.Sequence < best.Sequence {
			best = m
		}
	}
	switch {
	case best != nil:
		smp.OldestSeq, smp.OldestTime = best.Sequence, best.Time
	case len(errs) > 0:
		smp.OldestErr = errors.Join(errs...).Error()
	default:
		smp.OldestErr = "no message at or after the ack floor (removed by limits, or acked meanwhile)"
	}
}

func (s *Sampler) localTiming() *LocalTiming {
	if len(s.local) == 0 {
		return nil
	}
	lt := &LocalTiming{}
	var conc float64
	var avg time.Duration
	for _, sub := range s.local {
		if sub.Stream() != s.stream || sub.Durable() != s.consumer {
			continue
		}
		lt.Instances++
		conc += float64(sub.Concurrency())
		avg += sub.AvgHandlerTime()
		lt.Received += sub.Stats().Received
	}
	if lt.Instances == 0 {
		return nil
	}
	lt.Concurrency = conc / float64(lt.Instances)
	lt.AvgHandler = avg / time.Duration(lt.Instances)
	return lt
}

func (s *Sampler) streamHandle(ctx context.Context) (jetstream.Stream, error) {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", s.stream, err)
	}
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	return st, nil
}

func (s *Sampler) forgetStream() {
	s.mu.Lock()
	s.st = nil
	s.mu.Unlock()
}

// isFiltered reports whether the consumer's filters select less than the
// whole stream. Filters equal to the stream's subjects, or ">", do not.
func isFiltered(filters, streamSubjects []string) bool {
	if len(filters) == 0 {
		return false
	}
	for _, f := range filters {
		if f == ">" {
			return false
		}
	}
	if len(filters) != len(streamSubjects) {
		return true
	}
	have := map[string]bool{}
	for _, f := range streamSubjects {
		have[f] = true
	}
	for _, f := range filters {
		if !have[f] {
			return true
		}
	}
	return false
}

// consumerHint names the stream's consumers when the one asked for is not
// there, so a typo is obvious.
func (s *Sampler) consumerHint(ctx context.Context, st jetstream.Stream, err error) string {
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return ""
	}
	var names []string
	lister := st.ConsumerNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if len(names) == 0 {
		return " (the stream has no consumers)"
	}
	slices.Sort(names)
	return fmt.Sprintf(" (no such consumer; the stream has: %s)", strings.Join(names, ", "))
}
