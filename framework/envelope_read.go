package framework

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/internal/wire"
)

// The envelope headers a received message is read by, as indexes into
// envelopeHeaders. Header names are case-insensitive (CloudEvents NATS
// binding, and NATS itself), so each may appear once, in one spelling,
// with one value: anything else is ambiguous, since readers disagree on
// which spelling or value counts.
const (
	ehSpecVersion = iota
	ehID
	ehType
	ehSource
	ehTime
	ehDataContentType
	ehContentType
	ehCount
)

var envelopeHeaderNames = [ehCount]string{wire.HeaderSpecVersion, wire.HeaderID, wire.HeaderType, wire.HeaderSource, wire.HeaderTime, wire.HeaderDataContentType, wire.HeaderContentType}

// envelopeHeader returns the index of k among the envelope headers,
// matched case-insensitively, or -1.
func envelopeHeader(k string) int {
	i := -1
	switch len(k) { // one candidate per length (hot path: most keys stop here)
	case len(wire.HeaderID):
		i = ehID
	case len(wire.HeaderType): // ce-type and ce-time
		switch {
		case k == wire.HeaderType:
			return ehType
		case k == wire.HeaderTime:
			return ehTime
		case strings.EqualFold(k, wire.HeaderType):
			return ehType
		case strings.EqualFold(k, wire.HeaderTime):
			return ehTime
		}
		return -1
	case len(wire.HeaderSource):
		i = ehSource
	case len(wire.HeaderContentType):
		i = ehContentType
	case len(wire.HeaderSpecVersion):
		i = ehSpecVersion
	case len(wire.HeaderDataContentType):
		i = ehDataContentType
	default:
		return -1
	}
	if name := envelopeHeaderNames[i]; k == name || strings.EqualFold(k, name) {
		return i
	}
	return -1
}

// envelopeHeaders are the envelope header values of a received message.
type envelopeHeaders struct {
	vals [ehCount]string
}

// scanHeaders checks a received message's headers against wire.MaxHeaders and
// wire.MaxHeaderBytes and collects the envelope headers, in one pass over the
// map. Two spellings or two values of one envelope header are malformed.
func scanHeaders(h nats.Header) (envelopeHeaders, error) {
	var e envelopeHeaders
	var keys [ehCount]string // the spelling seen, for the error
	n, size := 0, 0
	var dup error
	for k, vs := range h {
		n += len(vs)
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
		i := envelopeHeader(k)
		if i < 0 || len(vs) == 0 || dup != nil {
			continue
		}
		switch {
		case keys[i] != "":
			a, b := min(keys[i], k), max(keys[i], k) // the same text whatever the map order
			dup = decodeError("header %s appears as %q and %q; header names are case-insensitive, so the envelope is ambiguous", envelopeHeaderNames[i], a, b)
		case len(vs) > 1:
			dup = decodeError("header %s has %d values; an envelope header takes one", envelopeHeaderNames[i], len(vs))
		}
		keys[i], e.vals[i] = k, vs[0]
	}
	if n > wire.MaxHeaders {
		return e, decodeError("%d header values, more than the limit of %d", n, wire.MaxHeaders)
	}
	if size > wire.MaxHeaderBytes {
		return e, decodeError("headers take %d bytes, more than the limit of %d", size, wire.MaxHeaderBytes)
	}
	return e, dup
}

// binary reports whether any binary-mode envelope header is present.
func (e *envelopeHeaders) binary() bool {
	for _, v := range e.vals[:ehContentType] {
		if v != "" {
			return true
		}
	}
	return false
}

// contentType is the payload's MIME type: ce-datacontenttype, else
// content-type. The two must not disagree.
func (e *envelopeHeaders) contentType() (string, error) {
	dct, ct := e.vals[ehDataContentType], e.vals[ehContentType]
	switch {
	case dct == "":
		return ct, nil
	case ct != "" && mediaType(dct) != mediaType(ct):
		return "", decodeError("header %s %q and header %s %q disagree about the payload's type", wire.HeaderDataContentType, dct, wire.HeaderContentType, ct)
	}
	return dct, nil
}

// binaryEnvelope reads and checks a binary-mode envelope. The error names
// the header at fault; decode failures are permanent.
func (e *envelopeHeaders) binaryEnvelope() (Envelope, error) {
	env := Envelope{
		ID:          e.vals[ehID],
		Type:        e.vals[ehType],
		Source:      e.vals[ehSource],
		SpecVersion: e.vals[ehSpecVersion],
	}
	switch {
	case env.SpecVersion == "":
		return env, decodeError("missing header %s; jetkit expects a CloudEvents envelope (binary mode, or structured mode with content-type application/cloudevents+json); a subscription can accept messages without one with AllowMissingEnvelope", wire.HeaderSpecVersion)
	case env.SpecVersion != wire.SpecVersion:
		return env, decodeError("header %s is %q; only %q is supported", wire.HeaderSpecVersion, env.SpecVersion, wire.SpecVersion)
	case env.ID == "":
		return env, decodeError("missing header %s", wire.HeaderID)
	case env.Type == "":
		return env, decodeError("missing header %s", wire.HeaderType)
	case env.Source == "":
		return env, decodeError("missing header %s", wire.HeaderSource)
	}
	ct, err := e.contentType()
	if err != nil {
		return env, err
	}
	env.ContentType = ct
	if raw := e.vals[ehTime]; raw != "" {
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return env, decodeError("header %s %q is not an RFC 3339 time", wire.HeaderTime, raw)
		}
		env.Time = t
	}
	names := [4]string{"header " + wire.HeaderID, "header " + wire.HeaderType, "header " + wire.HeaderSource, "header " + wire.HeaderDataContentType}
	if e.vals[ehDataContentType] == "" {
		names[3] = "header " + wire.HeaderContentType
	}
	if err := checkEnvelope(env, names); err != nil {
		return Envelope{}, err // its values are not fit for logs
	}
	return env, nil
}

// checkEnvelope rejects envelope values that are too long or not
// printable UTF-8: they end up in logs, metrics and dead-letter headers.
// names are the id, type, source and content type as the error names them.
func checkEnvelope(env Envelope, names [4]string) error {
	for i, v := range [...]string{env.ID, env.Type, env.Source, env.ContentType} {
		if err := checkEnvelopeValue(v); err != nil {
			return decodeError("%s: %v", names[i], err)
		}
	}
	return nil
}
