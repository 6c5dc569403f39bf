package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderReplayedFrom is set on a replayed message: <dead-letter stream>:<seq>.
const HeaderReplayedFrom = "Jetkit-Replayed-From"

// ReplayOptions adjust Replay.
type ReplayOptions struct {
	// DryRun reports what would be replayed and changes nothing.
	DryRun bool
	// Keep leaves replayed entries in the dead-letter stream. Running the
	// replay again then publishes them again; the server drops the repeat
	// only inside the target stream's duplicates window.
	Keep bool
}

// Replayed is one entry Replay published.
type Replayed struct {
	Entry Entry
	// Stream and Seq are where the replayed message was stored.
	Stream string
	Seq    uint64
	// Duplicate is true when the target stream already had this replay
	// (same dead-letter sequence, inside its duplicates window).
	Duplicate bool
	// FromCopy is true when the original was no longer in its stream and
	// the dead letter's copy of headers and payload was published.
	FromCopy bool
}

// Failure is one entry Replay could not replay; it stays dead-lettered.
type Failure struct {
	Entry Entry
	Err   error
}

// ReplayResult is what Replay did.
type ReplayResult struct {
	Replayed []Replayed
	Failed   []Failure
}

// Err joins the failures, or is nil.
func (r ReplayResult) Err() error {
	errs := make([]error, len(r.Failed))
	for i, f := range r.Failed {
		errs[i] = fmt.Errorf("dead letter %d: %w", f.Entry.Seq, f.Err)
	}
	return errors.Join(errs...)
}

// Replay re-publishes every entry f selects to its original subject, as a
// new message that consumers receive with a fresh delivery count, then
// deletes the entry from the dead-letter stream (unless Keep).
//
// A run works on the entries that existed when it started: it stops at the
// dead-letter stream's last sequence at that moment, so a replay whose
// handler fails again (and is dead-lettered again, as a new entry) is not
// replayed again in the same run, and a dry run selects what the real run
// then replays.
//
// It is safe to run twice, or from two terminals at once: each replay
// carries Nats-Msg-Id jetkit-replay.<dead-letter stream>.<seq>, so the
// target stream stores a given entry once inside its duplicates window,
// and a replayed entry is deleted, so a later run does not find it. The
// event keeps its CloudEvents id; note that every consumer of the original
// subject receives the replay, so consumers that had already handled the
// event should use middleware.Idempotency, which skips it.
//
// A dead letter is written by the service that gave up on it, and replay
// usually runs with more rights than that service, so Replay trusts an
// entry only as far as it holds together: it was written to the
// dead-letter subject of the stream and consumer it names, and its
// original subject is one that stream stores and that consumer reads (if
// it still exists), never a $ (system, JetStream, KV), _INBOX or
// dead-letter subject. What it publishes is the original message read back
// from that stream at the entry's stream sequence (which must be on the
// same subject); only when the stream no longer has it is the dead
// letter's copy published (Replayed.FromCopy), and never a copy whose
// payload was cut to fit. Other entries are not published and are
// recorded as failures wrapping ErrRefused, in dry runs too. Replay needs
// permission to read stream and consumer info and messages of the streams
// it replays to.
//
// A failure to publish or delete one entry is recorded in the result and
// the replay goes on; the error returned is only for failing to read the
// dead-letter stream or ctx ending.
func (s *Store) Replay(ctx context.Context, f Filter, o ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	if err := f.Validate(); err != nil {
		return res, err
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("replay from %s: read its last sequence: %w", s.name, err)
	}
	last := info.State.LastSeq
	if last == 0 || f.FromSeq > last {
		return res, nil
	}
	if f.ToSeq == 0 || f.ToSeq > last {
		f.ToSeq = last
	}
	check := newTargets(s.js, s.name)
	err = s.Each(ctx, f, func(e Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Subject == "" {
			res.Failed = append(res.Failed, Failure{Entry: e, Err: errors.New("no original subject header; not replayable")})
			return nil
		}
		if err := check.check(ctx, e); err != nil {
			res.Failed = append(res.Failed, Failure{Entry: e, Err: err})
			return nil
		}
		orig, err := check.original(ctx, e)
		if err != nil {
			res.Failed = append(res.Failed, Failure{Entry: e, Err: err})
			return nil
		}
		if o.DryRun {
			res.Replayed = append(res.Replayed, Replayed{Entry: e, FromCopy: orig == nil})
			return nil
		}
		ack, err := s.js.PublishMsg(ctx, s.replayMsg(e, orig), jetstream.WithExpectStream(e.Stream))
		if err != nil {
			res.Failed = append(res.Failed, Failure{Entry: e, Err: fmt.Errorf("publish to %s: %w", e.Subject, err)})
			return nil
		}
		r := Replayed{Entry: e, Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate, FromCopy: orig == nil}
		if !o.Keep {
			if err := s.stream.DeleteMsg(ctx, e.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				res.Failed = append(res.Failed, Failure{Entry: e, Err: fmt.Errorf("replayed to %s/%d but not deleted from %s (a rerun is de-duplicated only inside the duplicates window): %w",
					ack.Stream, ack.Sequence, s.name, err)})
				return nil
			}
		}
		res.Replayed = append(res.Replayed, r)
		return nil
	})
	return res, err
}

// replayMsg is the message as it was first published: the original read
// back from its stream, or else the dead letter's copy without the
// dead-letter headers; either way without any Nats-* header (server
// directives such as Nats-Rollup or Nats-TTL, which the dead letter's
// writer may have added and the target stream may obey).
func (s *Store) replayMsg(e Entry, orig *jetstream.RawStreamMsg) *nats.Msg {
	from, data := e.Header, e.Data
	if orig != nil {
		from, data = orig.Header, orig.Data
	}
	h := make(nats.Header, len(from)+2)
	for k, v := range from {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "jetkit-dlq-") || strings.HasPrefix(lk, "nats-") {
			continue
		}
		h[k] = v
	}
	seq := strconv.FormatUint(e.Seq, 10)
	h.Set(HeaderReplayedFrom, s.name+":"+seq)
	h.Set(nats.MsgIdHdr, "jetkit-replay."+s.name+"."+seq)
	return &nats.Msg{Subject: e.Subject, Header: h, Data: data}
}

// Purge deletes every entry f selects and returns how many it deleted. An
// empty filter purges the whole dead-letter stream in one request.
func (s *Store) Purge(ctx context.Context, f Filter) (int, error) {
	if f == (Filter{}) {
		info, err := s.stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("purge dead-letter stream %s: %w", s.name, err)
		}
		if err := s.stream.Purge(ctx); err != nil {
			return 0, fmt.Errorf("purge dead-letter stream %s: %w", s.name, err)
		}
		return int(info.State.Msgs), nil
	}
	n := 0
	err := s.Each(ctx, f, func(e Entry) error {
		if err := s.stream.DeleteMsg(ctx, e.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("delete dead letter %s/%d: %w", s.name, e.Seq, err)
		}
		n++
		return nil
	})
	return n, err
}
