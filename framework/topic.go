package framework

import (
	"fmt"
	"strings"

	"github.com/jetkit/jetkit/internal/wire"
)

// Topic is a typed event declared once and used to publish and subscribe:
//
//	var OrderCreated = framework.MustNewTopic[OrderCreatedV1]("orders.created.v1")
//
// The subject follows <domain>.<event>.v<N>. A topic declared Keyed
// carries a key on every message, appended at publish time with WithKey
// (orders.created.v1.<key>); an unkeyed topic publishes on the subject
// itself. Either way its subscriptions filter one subject, which keeps
// the server on its fast single-filter path.
type Topic[T any] struct {
	subject   string
	eventType string
	codec     Codec
	keyed     bool
}

// TopicOption configures a Topic.
type TopicOption func(*topicConfig)

type topicConfig struct {
	eventType string
	codec     Codec
	keyed     bool
	limits    *DecodeLimits
}

// EventType sets the CloudEvents type; it defaults to the subject.
func EventType(t string) TopicOption { return func(c *topicConfig) { c.eventType = t } }

// WithCodec sets the payload codec; JSON is the default.
func WithCodec(c Codec) TopicOption { return func(tc *topicConfig) { tc.codec = c } }

// WithDecodeLimits sets the bounds a payload of the topic must keep within
// to be decoded, instead of the defaults (see DecodeLimits), e.g. for a
// topic whose events are legitimately large:
//
//	framework.MustNewTopic[Report]("reports.ready.v1",
//		framework.WithDecodeLimits(framework.DecodeLimits{MaxBytes: 32 << 20}))
func WithDecodeLimits(l DecodeLimits) TopicOption {
	return func(tc *topicConfig) { tc.limits = &l }
}

// Keyed declares that every event of the topic is published with a key
// (WithKey), one subject per key: orders.created.v1.<order id>. Each
// entity's events then have their own subject, so a reader can fetch one
// key's latest event (jetstream.Stream.GetLastMsgForSubject). Publishing
// a keyed topic without WithKey, or an unkeyed topic with it, is an error
// wrapping ErrInvalidSubject and sends nothing.
//
//	var OrderCreated = framework.MustNewTopic[OrderCreatedV1]("orders.created.v1", framework.Keyed())
//	OrderCreated.Publish(ctx, svc, ev, framework.WithKey(ev.OrderID))
func Keyed() TopicOption { return func(c *topicConfig) { c.keyed = true } }

// MustNewTopic is NewTopic for package-level declarations: like
// regexp.MustCompile it panics if the topic is invalid, naming the problem.
//
//	var OrderCreated = framework.MustNewTopic[OrderCreatedV1]("orders.created.v1", framework.Keyed())
func MustNewTopic[T any](subject string, opts ...TopicOption) *Topic[T] {
	t, err := NewTopic[T](subject, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

// NewTopic declares a typed topic on subject, <domain>.<event>.v<N>. The
// error, wrapping ErrInvalidSubject, names what is wrong with subject or
// opts.
func NewTopic[T any](subject string, opts ...TopicOption) (*Topic[T], error) {
	if err := wire.ValidateSubject(subject); err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	tc := topicConfig{eventType: subject, codec: JSON}
	for _, o := range opts {
		o(&tc)
	}
	if tc.codec == nil {
		return nil, fmt.Errorf("topic %q: nil codec", subject)
	}
	if strings.TrimSpace(tc.eventType) == "" {
		return nil, fmt.Errorf("topic %q: empty event type", subject)
	}
	// It travels as ce-type: refuse what a subscriber would (limits.go).
	if err := checkEnvelopeValue(tc.eventType); err != nil {
		return nil, fmt.Errorf("topic %q: event type: %w", subject, err)
	}
	if strings.TrimSpace(tc.eventType) != tc.eventType {
		return nil, fmt.Errorf("topic %q: event type %q: leading or trailing spaces do not survive a header", subject, tc.eventType)
	}
	if err := checkEnvelopeValue(tc.codec.ContentType()); err != nil { // travels as ce-datacontenttype
		return nil, fmt.Errorf("topic %q: codec content type: %w", subject, err)
	}
	if tc.limits != nil {
		tc.codec = limitedCodec{Codec: tc.codec, limits: tc.limits.withDefaults()}
	}
	return &Topic[T]{subject: subject, eventType: tc.eventType, codec: tc.codec, keyed: tc.keyed}, nil
}

// Decode decodes m's payload as an event of this topic, as a typed
// Subscribe does before calling its handler: the event type must be the
// topic's, the content type its codec's, and the payload within the
// topic's decode limits (WithDecodeLimits). Use it in handlers given to
// SubscribeHandler. Its errors are permanent (the message is
// dead-lettered with reason "decode"); return them as they are.
func (t *Topic[T]) Decode(m *Message) (T, error) {
	var ev T
	if m.Envelope.Type != t.eventType {
		return ev, decodeError("event type %q on subject %s, expected %q", m.Envelope.Type, m.Subject, t.eventType)
	}
	err := decodeEvent(t.codec, m.Envelope, m.Data, &ev) // content type, size, depth (limits.go)
	return ev, err
}

// Subject is the topic's base subject.
func (t *Topic[T]) Subject() string { return t.subject }

// EventType is the CloudEvents type written on publish and required on receive.
func (t *Topic[T]) EventType() string { return t.eventType }

// Codec is the topic's payload codec.
func (t *Topic[T]) Codec() Codec { return t.codec }

// Keyed reports whether the topic was declared with Keyed.
func (t *Topic[T]) Keyed() bool { return t.keyed }

// filters is the consumer's filter: one subject, the base subject or every
// key below it. One filter, not both, on purpose: a consumer with several
// filters makes the server intersect them for every message it delivers
// (LoadNextMsgMulti), which cost sync-ack consumption about 10% of its
// throughput in jetkit bench.
func (t *Topic[T]) filters() []string {
	if t.keyed {
		return []string{t.subject + ".>"}
	}
	return []string{t.subject}
}
