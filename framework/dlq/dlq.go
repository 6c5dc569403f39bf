// Package dlq reads and manages the dead-letter stream as a library: list
// and show dead-lettered messages, replay them to their original subject,
// purge them. The jetkit dlq CLI is a thin shell over it.
//
//	store, err := dlq.Open(ctx, svc.Conn().JS, svc.Config().DeadLetterStream)
//	entries, err := store.List(ctx, dlq.Filter{Consumer: "billing", Reason: dlq.ReasonMaxDeliver}, 100)
//	res, err := store.Replay(ctx, dlq.Filter{Consumer: "billing"}, dlq.ReplayOptions{})
//
// Entries are addressed by their sequence in the dead-letter stream.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// ErrNotFound is returned by Get for a sequence that holds no dead letter.
var ErrNotFound = errors.New("dead letter not found")

// Entry is one dead-lettered message with what the framework recorded
// about why.
type Entry struct {
	// Seq is the entry's sequence in the dead-letter stream; Get, Replay
	// and Purge address entries by it.
	Seq uint64 `json:"seq"`
	// Stored is when the dead-letter stream stored the copy.
	Stored time.Time `json:"stored"`
	// Reason is decode, permanent or max-deliver (ReasonDecode, ...).
	Reason string `json:"reason"`
	// Error is the handler's error, one line.
	Error string `json:"error"`
	// Subject is the original subject, where Replay publishes.
	Subject string `json:"subject"`
	// Stream and Consumer are where the message was consumed from.
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// StreamSeq is the message's sequence in its original stream.
	StreamSeq uint64 `json:"stream_seq"`
	// Delivered is how many deliveries were made before giving up.
	Delivered uint64 `json:"delivered"`
	// DeadLettered is when the framework dead-lettered it.
	DeadLettered time.Time `json:"dead_lettered"`
	// EventID and EventType are the CloudEvents id and type, if present.
	EventID   string `json:"event_id,omitempty"`
	EventType string `json:"event_type,omitempty"`
	// Header holds every header of the copy, the Jetkit-Dlq-* ones included.
	Header nats.Header `json:"header,omitempty"`
	// Data is the original payload.
	Data []byte `json:"data,omitempty"`

	path string // the dead-letter subject it was written to
}

// Filter selects entries; zero fields match everything.
type Filter struct {
	// Stream and Consumer select by the original stream and consumer, as
	// the dead-letter subject names them (a writer cannot choose another).
	// A Partitioned group's durable also selects the dead letters of its
	// partitions' consumers (<durable>-p0, <durable>-p1, ...).
	Stream   string
	Consumer string
	// Reason selects by dead-letter reason (decode, permanent, max-deliver).
	Reason string
	// FromSeq and ToSeq bound the dead-letter stream sequence, inclusive;
	// 0 leaves that end open.
	FromSeq, ToSeq uint64
}

// Validate reports what is wrong with f, naming the field: a stream or
// consumer that is not a single subject token, a reason that is not one
// of decode, permanent or max-deliver, or FromSeq after ToSeq.
func (f Filter) Validate() error {
	for _, v := range [][2]string{{"stream", f.Stream}, {"consumer", f.Consumer}} {
		if v[1] != "" {
			if err := wire.ValidateToken(v[1]); err != nil {
				return fmt.Errorf("dead-letter filter %s: %w", v[0], err)
			}
		}
	}
	if f.Reason != "" && !slices.Contains(reasons, f.Reason) {
		return fmt.Errorf("dead-letter filter reason %q: %w: use one of %s", f.Reason, ErrUnknownReason, strings.Join(reasons, ", "))
	}
	if f.ToSeq != 0 && f.FromSeq > f.ToSeq {
		return fmt.Errorf("dead-letter filter: from sequence %d is after to sequence %d", f.FromSeq, f.ToSeq)
	}
	return nil
}

// ErrUnknownReason is wrapped by Filter.Validate for a reason the framework
// never writes.
var ErrUnknownReason = errors.New("unknown dead-letter reason")

// Dead-letter reasons, the values of Entry.Reason and Filter.Reason.
const (
	// ReasonDecode: the message could not be decoded (envelope, content
	// type, limits or payload); retrying cannot help.
	ReasonDecode = wire.ReasonDecode
	// ReasonPermanent: the handler returned a permanent error.
	ReasonPermanent = wire.ReasonPermanent
	// ReasonMaxDeliver: the message failed on its last allowed delivery.
	ReasonMaxDeliver = wire.ReasonMaxDeliver
)

var reasons = []string{ReasonDecode, ReasonPermanent, ReasonMaxDeliver}

// subject is the dead-letter subject filter for the stream and consumer.
func (f Filter) subject() (string, error) {
	if err := f.Validate(); err != nil {
		return "", err
	}
	stream := f.Stream
	if stream == "" {
		stream = "*"
	}
	// The consumer is matched by match: a group's partition consumers
	// have names of their own.
	return wire.DeadLetterSubjectPrefix + "." + stream + ".*", nil
}

func (f Filter) match(e Entry) bool {
	return (f.Reason == "" || f.Reason == e.Reason) && (f.ToSeq == 0 || e.Seq <= f.ToSeq) && f.matchConsumer(e.path)
}

// matchConsumer reports whether the dead-letter subject path names
// f.Consumer or one of its partition consumers.
func (f Filter) matchConsumer(path string) bool {
	if f.Consumer == "" {
		return true
	}
	c := path[strings.LastIndexByte(path, '.')+1:]
	if c == f.Consumer {
		return true
	}
	p, ok := strings.CutPrefix(c, f.Consumer+"-p")
	if !ok || p == "" {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && wire.PartitionConsumer(f.Consumer, n) == c
}

// Store is a dead-letter stream.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string
}

// Open looks up the dead-letter stream named name (Config.DeadLetterStream).
func Open(ctx context.Context, js jetstream.JetStream, name string) (*Store, error) {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open dead-letter stream %s: %w (is JETKIT_DEAD_LETTER_STREAM right, and has a jetkit service run on this server?)", name, err)
	}
	return &Store{js: js, stream: st, name: name}, nil
}

// Name is the dead-letter stream's name.
func (s *Store) Name() string { return s.name }

// Each calls fn for every entry f selects, in sequence order, until fn
// returns an error (returned as is) or the entries run out.
func (s *Store) Each(ctx context.Context, f Filter, fn func(Entry) error) error {
	subj, err := f.subject()
	if err != nil {
		return err
	}
	seq := max(f.FromSeq, 1)
	for f.ToSeq == 0 || seq <= f.ToSeq {
		raw, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read dead-letter stream %s from sequence %d: %w", s.name, seq, err)
		}
		e := entryOf(raw)
		if !f.match(e) {
			if f.ToSeq != 0 && e.Seq > f.ToSeq {
				return nil
			}
			seq = raw.Sequence + 1
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
		seq = raw.Sequence + 1
	}
	return nil
}

// List returns up to limit entries f selects (limit <= 0: all).
func (s *Store) List(ctx context.Context, f Filter, limit int) ([]Entry, error) {
	var out []Entry
	errEnough := errors.New("enough")
	err := s.Each(ctx, f, func(e Entry) error {
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return out, err
	}
	return out, nil
}

// Get returns the entry at seq, or ErrNotFound.
func (s *Store) Get(ctx context.Context, seq uint64) (Entry, error) {
	raw, err := s.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, fmt.Errorf("%w: %s has no message at sequence %d (replayed, purged or never there)", ErrNotFound, s.name, seq)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read dead letter %s/%d: %w", s.name, seq, err)
	}
	if !strings.HasPrefix(raw.Subject, wire.DeadLetterSubjectPrefix+".") {
		return Entry{}, fmt.Errorf("%w: %s/%d is on subject %s, not a jetkit dead letter", ErrNotFound, s.name, seq, raw.Subject)
	}
	return entryOf(raw), nil
}

func entryOf(raw *jetstream.RawStreamMsg) Entry {
	h := raw.Header
	get := func(k string) string { return wire.HeaderValue(h, k) }
	num := func(k string) uint64 { n, _ := strconv.ParseUint(get(k), 10, 64); return n }
	at, _ := time.Parse(time.RFC3339Nano, get(wire.HeaderDLQTime))
	return Entry{
		Seq: raw.Sequence, Stored: raw.Time,
		Reason: get(wire.HeaderDLQReason), Error: get(wire.HeaderDLQError),
		Subject: get(wire.HeaderDLQSubject), Stream: get(wire.HeaderDLQStream),
		Consumer: get(wire.HeaderDLQConsumer), StreamSeq: num(wire.HeaderDLQStreamSeq),
		Delivered: num(wire.HeaderDLQDelivered), DeadLettered: at,
		EventID: get(wire.HeaderID), EventType: get(wire.HeaderType),
		Header: h, Data: raw.Data, path: raw.Subject,
	}
}
