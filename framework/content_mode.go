package framework

import (
	"errors"
	"strconv"

	"github.com/jetkit/jetkit/internal/wire"
)

// readEnvelope checks m's headers and reads its envelope in the content
// mode it came in, setting m.Envelope and, in structured mode, m.Data to
// the event's data:
//
//   - binary mode: ce-* headers (what jetkit writes; the hot path);
//   - structured mode: content-type application/cloudevents+json, or no
//     envelope header and a JSON payload with specversion (how the
//     CloudEvents SDKs send structured events over NATS);
//   - no envelope at all: only with AllowMissingEnvelope.
//
// Anything else is a permanent decode error naming what is wrong.
func (s *Subscription) readEnvelope(m *Message) error {
	e, err := scanHeaders(m.Header)
	if err != nil {
		return err
	}
	structured, err := structuredContentType(e.vals[ehContentType])
	switch {
	case err != nil:
		return err
	case structured && e.binary():
		return decodeError("both binary-mode ce-* headers and content-type %q (structured mode); send one or the other", e.vals[ehContentType])
	case structured:
		err := readStructured(m)
		if errors.Is(err, errNotStructured) { // declared structured: not a fall-through case
			return decodeError("structured event (content-type %q): missing attribute specversion", e.vals[ehContentType])
		}
		return err
	case e.binary():
		m.Envelope, err = e.binaryEnvelope()
		return err
	}
	// No envelope header.
	if e.vals[ehContentType] == "" && looksStructured(m.Data) {
		if err := readStructured(m); !errors.Is(err, errNotStructured) {
			return err
		}
	}
	if s.opts.allowMissingEnvelope {
		return s.bareEnvelope(m, e.vals[ehContentType])
	}
	m.Envelope, err = e.binaryEnvelope() // names the missing header
	return err
}

func readStructured(m *Message) error {
	env, data, err := parseStructured(m.Data)
	if errors.Is(err, errNotStructured) {
		return err
	}
	m.Envelope = env
	if err != nil {
		return err
	}
	m.Data = data
	return nil
}

// bareEnvelope gives a message without an envelope one: its id is the
// Nats-Msg-Id header or else the stream sequence, its type the topic's
// event type (the subject for SubscribeHandler), its time when the stream
// stored it, its source empty.
func (s *Subscription) bareEnvelope(m *Message, contentType string) error {
	env := Envelope{ID: wire.HeaderValue(m.Header, wire.HeaderMsgID), Type: s.opts.eventType, Time: m.Timestamp, ContentType: contentType}
	if env.ID == "" {
		env.ID = strconv.FormatUint(m.StreamSeq, 10)
	}
	if env.Type == "" {
		env.Type = m.Subject
	}
	if err := checkEnvelope(env, [4]string{"header " + wire.HeaderMsgID, "subject", "source", "header " + wire.HeaderContentType}); err != nil {
		return err
	}
	m.Envelope = env
	return nil
}
