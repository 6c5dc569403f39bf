package framework

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/internal/wire"
)

// maxDLQErrorHeaderLen bounds the handler error copied to a dead letter.
const maxDLQErrorHeaderLen = 1024

// ensureDeadLetterStream creates the dead-letter stream named in the config
// if it does not exist. An existing one is left as it is: it is shared by
// every service, and its limits, age and replicas are the operator's to tune,
// not whichever service started last. The stream is the framework's: it
// records no service as its owner. Under least privilege no service may
// create it: the error then says to create it as an operator.
func ensureDeadLetterStream(ctx context.Context, c *Conn) (_ jetstream.Stream, err error) {
	ctx, perm := c.watchPermissions(ctx, c.jsPrefixes()...) // a refused API call fails now, naming the subject
	defer func() { err = perm.explain(err); perm.done() }()
	spec := StreamSpec{Name: c.cfg.DeadLetterStream, Subjects: []string{wire.DeadLetterSubjectPrefix + ".>"}}
	st, err := retryTransient(ctx, c, "dead-letter stream", func(ctx context.Context) (jetstream.Stream, error) {
		return c.JS.Stream(ctx, spec.Name)
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err := ensureStream(ctx, c, spec, frameworkOwner)
		if errors.Is(err, ErrPermissionDenied) { // EnsureStream names the refused subject
			return nil, fmt.Errorf("dead-letter stream %s (%s) does not exist and this user may not create it: create it once as an operator, e.g. `nats stream add %s --subjects '%s.>'`: %w",
				spec.Name, c.cfg.envName("DEAD_LETTER_STREAM"), spec.Name, wire.DeadLetterSubjectPrefix, err)
		}
		return st, err
	}
	if err != nil {
		return nil, fmt.Errorf("look up dead-letter stream %s: %w", spec.Name, err)
	}
	return st, nil
}

func deadLetterReason(err error) string {
	var me *maxDeliverError
	switch {
	case errors.Is(err, ErrDecode):
		return wire.ReasonDecode
	case errors.As(err, &me):
		return wire.ReasonMaxDeliver
	case IsPermanent(err):
		return wire.ReasonPermanent
	default:
		return wire.ReasonMaxDeliver
	}
}

// oneLine makes an error safe for a header value: no line breaks, bounded.
func oneLine(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// deadLetter copies m with reason headers to the dead-letter stream, then
// terminates it. If the copy cannot be stored the message is retried later
// instead: it is never dropped. lctx is the delivery's context, for logs.
func (s *Subscription) deadLetter(lctx context.Context, m *Message, cause error) observe.Settlement {
	reason := deadLetterReason(cause)
	errText := oneLine(cause.Error(), maxDLQErrorHeaderLen)
	h := make(nats.Header, len(m.Header)+9)
	for k, v := range m.Header {
		if k == nats.MsgIdHdr || strings.HasPrefix(k, "Nats-Expected") {
			continue
		}
		h[k] = v
	}
	h[wire.HeaderDLQReason] = []string{reason}
	h[wire.HeaderDLQError] = []string{errText}
	h[wire.HeaderDLQSubject] = []string{m.Subject}
	h[wire.HeaderDLQStream] = []string{m.Stream}
	h[wire.HeaderDLQConsumer] = []string{m.Consumer}
	h[wire.HeaderDLQStreamSeq] = []string{strconv.FormatUint(m.StreamSeq, 10)}
	h[wire.HeaderDLQDelivered] = []string{strconv.FormatUint(m.NumDelivered, 10)}
	h[wire.HeaderDLQTime] = []string{time.Now().UTC().Format(time.RFC3339Nano)}
	// One dead-letter copy per stream message, even if this runs twice.
	h[nats.MsgIdHdr] = []string{"dlq." + m.Stream + "." + m.Consumer + "." + strconv.FormatUint(m.StreamSeq, 10)}

	ctx, cancel := context.WithTimeout(context.Background(), s.conn.cfg.RequestTimeout)
	data := m.Data
	if m.raw != nil {
		data = m.raw.Data() // the payload as stored: in structured mode m.Data is the event's data only
	}
	_, err := s.conn.JS.PublishMsg(ctx, &nats.Msg{Subject: wire.DeadLetterSubject(m.Stream, m.Consumer), Data: fitDeadLetter(h, data, s.conn.NC.MaxPayload()), Header: h})
	cancel()
	if err != nil {
		s.stats.deadLetterFailed.Add(1)
		failures := s.conn.deadLetters.failed(m.Stream, m.Consumer, err)
		delay := s.opts.backoff.Delay(m.NumDelivered)
		_ = m.raw.NakWithDelay(delay)
		s.log.ErrorContext(lctx, "dead-letter copy failed; message kept and retried, service not ready until a copy succeeds",
			"event_id", m.Envelope.ID, "subject", m.Subject, "stream_seq", m.StreamSeq, "dead_letter_stream", s.conn.cfg.DeadLetterStream,
			"dead_letter_subject", wire.DeadLetterSubject(m.Stream, m.Consumer), "reason", reason, "cause", errText,
			"failed_copies", failures, "retry_in", delay, "error", err)
		return observe.Settlement{Outcome: observe.DeadLetterFailed, Err: cause, Delay: delay, Reason: reason, SettleErr: err}
	}
	s.conn.deadLetters.stored(m.Stream, m.Consumer)
	if terr := m.raw.TermWithReason(oneLine(reason+": "+errText, 200)); terr != nil {
		// The copy is stored; a redelivery is dead-lettered again and
		// de-duplicated by its Msg-Id, so nothing is doubled.
		s.log.WarnContext(lctx, "term after dead-letter failed", "subject", m.Subject, "stream_seq", m.StreamSeq, "error", terr)
	}
	s.stats.deadLettered.Add(1)
	s.log.WarnContext(lctx, "dead-lettered", "event_id", m.Envelope.ID, "type", m.Envelope.Type, "subject", m.Subject,
		"stream_seq", m.StreamSeq, "delivery", m.NumDelivered, "reason", reason, "error", errText)
	return observe.Settlement{Outcome: observe.DeadLettered, Err: cause, Reason: reason}
}

// deadLetterHealth tracks consumers whose dead-letter copies fail (a
// sealed, full or missing dead-letter stream, a refused subject): their
// messages are retried, never dropped, and readiness fails naming them
// until a copy succeeds again.
type deadLetterHealth struct {
	mu      sync.Mutex
	failing map[string]deadLetterFailure // by stream.consumer
}

type deadLetterFailure struct {
	count uint64
	last  string
}

// failed records a failed copy and returns how many have failed in a row.
func (h *deadLetterHealth) failed(stream, consumer string, err error) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == nil {
		h.failing = map[string]deadLetterFailure{}
	}
	k := stream + "." + consumer
	f := h.failing[k]
	f.count++
	f.last = oneLine(err.Error(), 200)
	h.failing[k] = f
	return f.count
}

// stored clears the consumer's failures once a copy succeeds.
func (h *deadLetterHealth) stored(stream, consumer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failing) > 0 {
		delete(h.failing, stream+"."+consumer)
	}
}

// problem is the readiness error, or nil when every copy succeeds.
func (h *deadLetterHealth) problem(deadLetterStream string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failing) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h.failing))
	for k := range h.failing {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		f := h.failing[k]
		parts[i] = fmt.Sprintf("%s: %d failed copies, last: %s", k, f.count, f.last)
	}
	return fmt.Errorf("dead-letter copies to stream %s are failing (messages are kept and retried; check the stream and the dead-letter subjects' permissions): %s",
		deadLetterStream, strings.Join(parts, "; "))
}
