package capacity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// HistoryStream is the stream OpenHistory keeps estimates in, one subject
// per watched consumer: jetkit.capacity.<stream>.<consumer>.
const HistoryStream = "JETKIT_CAPACITY"

// historySubjectPrefix roots the history subjects.
const historySubjectPrefix = "jetkit.capacity"

// historyRecordMax bounds a stored point; larger records are skipped on
// load (the stream is written by whoever may publish to it: untrusted).
const historyRecordMax = 4096

// HistoryPoint is one estimate as the history keeps it: what the page charts over
// time. Zero means unknown for ServiceRate, Capacity and ReplicasNeeded.
type HistoryPoint struct {
	At             time.Time `json:"at"`
	Status         Status    `json:"status"`
	Backlog        float64   `json:"backlog"`
	Arrival        float64   `json:"arrival"`
	ArrivalErr     float64   `json:"arrival_err,omitempty"` // standard error of Arrival
	Processed      float64   `json:"processed"`
	ServiceRate    float64   `json:"mu"`
	Instances      int       `json:"instances"`
	Capacity       float64   `json:"capacity"`
	TimeLag        float64   `json:"time_lag_s"`
	ReplicasNeeded int       `json:"replicas_needed"`
}

// pointOf is the history point of est.
func pointOf(est Estimate) HistoryPoint {
	return HistoryPoint{
		At: est.At, Status: est.Status, Backlog: est.Backlog, Arrival: est.Arrival.PerSecond, ArrivalErr: est.Arrival.StdErr,
		Processed: est.Processed.PerSecond, ServiceRate: est.ServiceRate.PerSecond, Instances: est.Instances,
		Capacity: est.Capacity, TimeLag: time.Duration(est.TimeLag).Seconds(), ReplicasNeeded: max(est.ReplicasNeeded, 0),
	}
}

// valid reports whether a point read back is sane: a known status, finite
// non-negative figures and bounded counts.
func (p HistoryPoint) valid() bool {
	switch p.Status {
	case StatusOK, StatusWarn, StatusStall, StatusStop:
	default:
		return false
	}
	for _, f := range []float64{p.Backlog, p.Arrival, p.ArrivalErr, p.Processed, p.ServiceRate, p.Capacity, p.TimeLag} {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return false
		}
	}
	return !p.At.IsZero() && p.Instances >= 0 && p.Instances <= 1<<20 && p.ReplicasNeeded >= 0 && p.ReplicasNeeded <= 1<<20
}

// History is the estimates of one consumer over time, newest last, for the
// page's charts: kept in memory (NewHistory) or also in the stream
// JETKIT_CAPACITY (OpenHistory), so that it outlives the watching process
// and every watcher of the consumer sees the same past.
type History struct {
	keep time.Duration
	max  int

	js      jetstream.JetStream // nil: memory only
	subject string

	mu      sync.Mutex
	points  []HistoryPoint
	skipped int // records read back that were malformed or out of bounds
}

// NewHistory keeps in memory the estimates of the last keep, at most max
// of them (defaults: 24 hours, 10,000).
func NewHistory(keep time.Duration, max int) *History {
	if keep <= 0 {
		keep = 24 * time.Hour
	}
	if max <= 0 {
		max = 10000
	}
	return &History{keep: keep, max: max}
}

// OpenHistory is NewHistory kept in the stream JETKIT_CAPACITY as well: it
// creates the stream if it is missing (file storage, MaxAge keep, max
// points per consumer; an existing stream is used as it is configured) and
// loads what it holds of stream/consumer from the last keep.
func OpenHistory(ctx context.Context, js jetstream.JetStream, stream, consumer string, keep time.Duration, max int) (*History, error) {
	h := NewHistory(keep, max)
	h.js = js
	h.subject = historySubjectPrefix + "." + wire.KVKeyToken(stream) + "." + wire.KVKeyToken(consumer)
	st, err := js.Stream(ctx, HistoryStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: HistoryStream, Description: "jetkit capacity estimates over time (jetkit capacity --web)",
			Subjects: []string{historySubjectPrefix + ".>"}, MaxAge: h.keep, MaxMsgsPerSubject: int64(h.max),
			MaxMsgSize: historyRecordMax, Storage: jetstream.FileStorage, Discard: jetstream.DiscardOld,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, HistoryStream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("capacity history stream %s: %w", HistoryStream, err)
	}
	if err := h.load(ctx, st); err != nil {
		return nil, fmt.Errorf("capacity history %s: load: %w", h.subject, err)
	}
	return h, nil
}

// load reads the consumer's points of the last keep.
func (h *History) load(ctx context.Context, st jetstream.Stream) error {
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{h.subject}, DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime: ptr(time.Now().Add(-h.keep)),
	})
	if err != nil {
		return err
	}
	if cons.CachedInfo().NumPending == 0 {
		return nil
	}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return err
		}
		n := 0
		var last jetstream.Msg
		for m := range batch.Messages() {
			n++
			last = m
			h.add(m.Data())
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 || last == nil {
			return nil
		}
		if md, err := last.Metadata(); err != nil || md.NumPending == 0 {
			return err
		}
	}
}

func ptr[T any](v T) *T { return &v }

// add appends a point read back, if it is sane.
func (h *History) add(data []byte) {
	var p HistoryPoint
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(data) > historyRecordMax || json.Unmarshal(data, &p) != nil || !p.valid() {
		h.skipped++
		return
	}
	h.appendLocked(p)
}

func (h *History) appendLocked(p HistoryPoint) {
	if n := len(h.points); n > 0 && !p.At.After(h.points[n-1].At) {
		return // out of order or repeated: the chart needs time order
	}
	h.points = append(h.points, p)
	cut := 0
	for cut < len(h.points) && p.At.Sub(h.points[cut].At) > h.keep { // relative to the newest: no clock involved
		cut++
	}
	if over := len(h.points) - cut - h.max; over > 0 {
		cut += over
	}
	if cut > 0 {
		h.points = append(h.points[:0:0], h.points[cut:]...)
	}
}

// Record adds est to the history, and to the stream when the history is
// kept there; a failed publish keeps the point in memory and returns the
// error.
func (h *History) Record(ctx context.Context, est Estimate) error {
	p := pointOf(est)
	h.mu.Lock()
	h.appendLocked(p)
	h.mu.Unlock()
	if h.js == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: h.subject, Data: b}); err != nil {
		return fmt.Errorf("capacity history: publish to %s: %w", h.subject, err)
	}
	return nil
}

// Points returns the history, oldest first.
func (h *History) Points() []HistoryPoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HistoryPoint(nil), h.points...)
}

// Skipped is how many records read back were malformed or out of bounds.
func (h *History) Skipped() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.skipped
}

// SamplePoints are a sampler's window as history points, for a chart
// without a History: each sample's backlog, the rates between consecutive
// samples (over a few intervals, so that one late sample does not spike)
// and the status of est.
func SamplePoints(samples []Sample, est Estimate) []HistoryPoint {
	const span = 3
	var out []HistoryPoint
	for i, b := range samples {
		p := HistoryPoint{At: b.At, Status: est.Status, Backlog: b.Backlog()}
		if i > 0 {
			arr, proc := rates([]Sample{samples[max(0, i-span)], b})
			p.Arrival, p.Processed = arr.PerSecond, proc.PerSecond
		}
		out = append(out, p)
	}
	return out
}
