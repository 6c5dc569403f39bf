package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// ErrRefused marks a dead letter Replay would not publish because what it
// records does not hold together: its original subject is not one its
// stream stores (or its consumer reads), is a system subject, or its
// stream and consumer differ from the dead-letter subject it was written
// to. Such an entry may be forged by whoever can publish to that
// dead-letter subject; it stays in the dead-letter stream for inspection.
var ErrRefused = errors.New("replay refused")

// reservedPrefixes are subjects a replay never publishes to, whatever a
// stream stores: the server's and JetStream's APIs and internal subjects
// ($JS., $KV., $O., $SYS. and every other $ subject), reply inboxes, and
// the dead-letter subjects themselves.
var reservedPrefixes = []string{"$", "_INBOX.", wire.DeadLetterSubjectPrefix + "."}

// targets checks replay targets against the server's streams and
// consumers, looking each up once per replay run.
type targets struct {
	js        jetstream.JetStream
	deadName  string                      // the dead-letter stream
	streams   map[string]jetstream.Stream // looked up and storing subjects
	consumers map[string][]string         // stream/consumer -> filters; nil: none or no consumer
	errs      map[string]error            // stream or stream/consumer -> lookup failure
}

func newTargets(js jetstream.JetStream, deadName string) *targets {
	return &targets{js: js, deadName: deadName, streams: map[string]jetstream.Stream{}, consumers: map[string][]string{}, errs: map[string]error{}}
}

// check returns nil if e may be replayed to e.Subject, or an error
// wrapping ErrRefused that says why not.
func (t *targets) check(ctx context.Context, e Entry) error {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
	}
	if wire.ValidateToken(e.Stream) != nil || wire.ValidateToken(e.Consumer) != nil {
		return refuse("headers %s %q and %s %q are not a stream and consumer name", wire.HeaderDLQStream, e.Stream, wire.HeaderDLQConsumer, e.Consumer)
	}
	if want := wire.DeadLetterSubject(e.Stream, e.Consumer); e.path != want {
		return refuse("it claims stream %s consumer %s but was written to %s, not %s; only that consumer's service can write there, so it is forged or corrupt",
			e.Stream, e.Consumer, e.path, want)
	}
	if err := wire.ValidateSubject(e.Subject); err != nil {
		return refuse("original subject (%s): %v", wire.HeaderDLQSubject, err)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(e.Subject, p) {
			return refuse("original subject %q is a system, inbox or dead-letter subject (%s...), never a jetkit event", e.Subject, p)
		}
	}
	if e.Stream == t.deadName {
		return refuse("it claims to come from the dead-letter stream %s itself", e.Stream)
	}
	subjects, err := t.streamSubjects(ctx, e.Stream)
	if err != nil {
		return err
	}
	if !matchesAny(subjects, e.Subject) {
		return refuse("stream %s does not store %q (its subjects: %s)", e.Stream, e.Subject, strings.Join(subjects, ", "))
	}
	filters, err := t.consumerFilters(ctx, e.Stream, e.Consumer)
	if err != nil {
		return err
	}
	if len(filters) > 0 && !matchesAny(filters, e.Subject) {
		return refuse("consumer %s/%s does not read %q (its filters: %s)", e.Stream, e.Consumer, e.Subject, strings.Join(filters, ", "))
	}
	return nil
}

func (t *targets) streamSubjects(ctx context.Context, name string) ([]string, error) {
	st, err := t.stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return st.CachedInfo().Config.Subjects, nil
}

func (t *targets) stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if st, ok := t.streams[name]; ok {
		return st, nil
	}
	if err, ok := t.errs[name]; ok {
		return nil, err
	}
	st, err := t.js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		err = fmt.Errorf("%w: its stream %s does not exist, so nothing would store the replay", ErrRefused, name)
	case err != nil:
		err = fmt.Errorf("look up stream %s to check the replay target: %w", name, err)
	case len(st.CachedInfo().Config.Subjects) == 0:
		err = fmt.Errorf("%w: stream %s stores no subjects of its own (a mirror or sourced stream)", ErrRefused, name)
	default:
		t.streams[name] = st
		return st, nil
	}
	t.errs[name] = err
	return nil, err
}

// original is the message e was made from, read back from its stream, so
// that a replay publishes what the stream stored rather than what the
// dead letter's writer says it stored (and the whole payload, which the
// copy may have cut). It returns nil when the stream no longer has the
// message (age or size limits, interest or work-queue retention, a
// delete): then the copy is all there is, unless its payload was cut.
// Call it after check.
func (t *targets) original(ctx context.Context, e Entry) (*jetstream.RawStreamMsg, error) {
	refuse := func(format string, a ...any) (*jetstream.RawStreamMsg, error) {
		return nil, fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
	}
	if e.StreamSeq == 0 {
		return refuse("no %s header: which message of %s it was is unknown", wire.HeaderDLQStreamSeq, e.Stream)
	}
	st, err := t.stream(ctx, e.Stream)
	if err != nil {
		return nil, err
	}
	raw, err := st.GetMsg(ctx, e.StreamSeq)
	switch {
	case err == nil && raw.Subject != e.Subject:
		return refuse("%s sequence %d is on %s, not %s: the dead letter does not describe it", e.Stream, e.StreamSeq, raw.Subject, e.Subject)
	case err == nil:
		return raw, nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, fmt.Errorf("read the original %s/%d: %w", e.Stream, e.StreamSeq, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", e.Stream, err)
	}
	if e.StreamSeq > info.State.LastSeq {
		return refuse("%s has never had sequence %d (its last is %d)", e.Stream, e.StreamSeq, info.State.LastSeq)
	}
	if wire.HeaderValue(e.Header, wire.HeaderDLQTruncated) != "" {
		return refuse("its payload was cut to fit the dead-letter stream (%s) and the original is gone from %s", wire.HeaderDLQTruncated, e.Stream)
	}
	return nil, nil
}

// consumerFilters are the consumer's filter subjects; none when it has no
// filter or no longer exists (then the stream's subjects bound the replay).
func (t *targets) consumerFilters(ctx context.Context, stream, consumer string) ([]string, error) {
	key := stream + "/" + consumer
	if filters, ok := t.consumers[key]; ok {
		return filters, nil
	}
	if err, ok := t.errs[key]; ok {
		return nil, err
	}
	c, err := t.js.Consumer(ctx, stream, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.consumers[key] = nil
		return nil, nil
	}
	if err != nil {
		err = fmt.Errorf("look up consumer %s to check the replay target: %w", key, err)
		t.errs[key] = err
		return nil, err
	}
	cfg := c.CachedInfo().Config
	filters := slices.Clone(cfg.FilterSubjects)
	if cfg.FilterSubject != "" {
		filters = append(filters, cfg.FilterSubject)
	}
	t.consumers[key] = filters
	return filters, nil
}

func matchesAny(filters []string, subject string) bool {
	return slices.ContainsFunc(filters, func(f string) bool { return subjectMatches(f, subject) })
}

// subjectMatches reports whether the literal subject matches filter, with
// NATS wildcards: '*' one token, a final '>' one or more.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" && i == len(ft)-1 {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
