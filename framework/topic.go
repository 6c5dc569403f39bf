package framework

import (
	"fmt"
	"strings"
)

// Topic is a typed event declared once and used to publish and subscribe:
//
//	var OrderCreated = framework.NewTopic[OrderCreatedV1]("orders.created.v1")
//
// The subject follows <domain>.<event>.v<N>; a per-message key may be
// appended at publish time (orders.created.v1.<key>) with WithKey.
type Topic[T any] struct {
	subject   string
	eventType string
	codec     Codec
}

// TopicOption configures a Topic.
type TopicOption func(*topicConfig)

type topicConfig struct {
	eventType string
	codec     Codec
}

// EventType sets the CloudEvents type; it defaults to the subject.
func EventType(t string) TopicOption { return func(c *topicConfig) { c.eventType = t } }

// WithCodec sets the payload codec; JSON is the default.
func WithCodec(c Codec) TopicOption { return func(tc *topicConfig) { tc.codec = c } }

// NewTopic declares a typed topic on subject. Like regexp.MustCompile it is
// meant for package-level declarations and panics if subject is invalid,
// naming the problem; use NewTopicErr for subjects computed at run time.
func NewTopic[T any](subject string, opts ...TopicOption) *Topic[T] {
	t, err := NewTopicErr[T](subject, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

// NewTopicErr is NewTopic returning an error instead of panicking.
func NewTopicErr[T any](subject string, opts ...TopicOption) (*Topic[T], error) {
	if err := ValidateSubject(subject); err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	tc := topicConfig{eventType: subject, codec: JSON}
	for _, o := range opts {
		o(&tc)
	}
	if strings.TrimSpace(tc.eventType) == "" {
		return nil, fmt.Errorf("topic %q: empty event type", subject)
	}
	if tc.codec == nil {
		return nil, fmt.Errorf("topic %q: nil codec", subject)
	}
	return &Topic[T]{subject: subject, eventType: tc.eventType, codec: tc.codec}, nil
}

// Subject is the topic's base subject.
func (t *Topic[T]) Subject() string { return t.subject }

// EventType is the CloudEvents type written on publish and required on receive.
func (t *Topic[T]) EventType() string { return t.eventType }

// Codec is the topic's payload codec.
func (t *Topic[T]) Codec() Codec { return t.codec }

// filters are the consumer filter subjects: the subject itself and any keyed
// subject below it.
func (t *Topic[T]) filters() []string { return []string{t.subject, t.subject + ".>"} }
