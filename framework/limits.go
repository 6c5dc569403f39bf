package framework

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// DecodeLimits bound the work and memory one payload may cost to decode.
// Set them on a topic with WithDecodeLimits; a zero field (and a topic
// without them) takes the default: 8 MiB (the largest max_payload NATS
// recommends), depth 64, one million values.
type DecodeLimits struct {
	// MaxBytes is the largest payload decoded (it is also bounded by the
	// server's max_payload). 0 means 8 MiB.
	MaxBytes int
	// MaxDepth is the deepest nesting of JSON objects and arrays.
	// 0 means 64.
	MaxDepth int
	// MaxValues bounds the JSON values (array elements and object members)
	// in one payload, which bounds the allocations decoding makes.
	// 0 means one million (1<<20).
	MaxValues int
}

// defaultDecodeLimits apply where a topic sets no limits.
var defaultDecodeLimits = DecodeLimits{MaxBytes: 8 << 20, MaxDepth: 64, MaxValues: 1 << 20}

func (l DecodeLimits) withDefaults() DecodeLimits {
	d := defaultDecodeLimits
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxValues <= 0 {
		l.MaxValues = d.MaxValues
	}
	return l
}

// limitedCodec is a topic's codec with its decode limits (WithDecodeLimits).
type limitedCodec struct {
	Codec
	limits DecodeLimits
}

func (c limitedCodec) decodeLimits() DecodeLimits { return c.limits }

// decodeEvent checks an untrusted payload against the envelope's content
// type and the codec's limits, then decodes it into v. Every failure is a
// permanent decode error naming what is wrong.
func decodeEvent(c Codec, env Envelope, data []byte, v any) error {
	want := mediaType(c.ContentType())
	if env.ContentType != "" {
		if got := mediaType(env.ContentType); got != want {
			return decodeError("content-type %q of %s event %s; this subscription decodes %q", env.ContentType, env.Type, env.ID, c.ContentType())
		}
	}
	limits := defaultDecodeLimits
	if lc, ok := c.(interface{ decodeLimits() DecodeLimits }); ok {
		limits = lc.decodeLimits()
	}
	if len(data) > limits.MaxBytes {
		return decodeError("payload of %s event %s is %d bytes, over the decode limit of %d (raise it with WithDecodeLimits)", env.Type, env.ID, len(data), limits.MaxBytes)
	}
	if want == "application/json" || strings.HasSuffix(want, "+json") {
		if err := checkJSON(data, limits); err != nil {
			return decodeError("payload of %s event %s: %v", env.Type, env.ID, err)
		}
	}
	if err := c.Unmarshal(data, v); err != nil {
		return decodeError("payload of %s event %s as %T: %v", env.Type, env.ID, v, err)
	}
	return nil
}

// mediaType is the lower-case type/subtype without parameters.
func mediaType(ct string) string {
	if plainMediaType(ct) { // the usual case, e.g. application/json: nothing to parse (hot path)
		return ct
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// plainMediaType reports whether ct is already a lower-case type/subtype
// without parameters or spaces, which mime.ParseMediaType would return as is.
func plainMediaType(ct string) bool {
	slash := strings.IndexByte(ct, '/')
	if slash <= 0 || slash == len(ct)-1 {
		return false
	}
	for i := 0; i < len(ct); i++ {
		b := ct[i]
		switch {
		case i == slash:
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$&-^_.+", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkJSON scans data once, without allocating, and rejects invalid UTF-8
// (which encoding/json would silently replace), nesting deeper than
// MaxDepth and more than MaxValues values. Syntax errors are left to the
// decoder, which reports them with an offset.
func checkJSON(data []byte, l DecodeLimits) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("not valid UTF-8 (JSON must be UTF-8)")
	}
	depth, values := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		b := data[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			default: // skip plain string bytes up to the next quote or backslash (hot path)
				rest := data[i:]
				next := bytes.IndexByte(rest, '"')
				if next < 0 {
					next = len(rest)
				}
				if bs := bytes.IndexByte(rest[:next], '\\'); bs >= 0 {
					next = bs
				}
				i += next - 1
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > l.MaxDepth {
				return fmt.Errorf("JSON nested deeper than %d levels at byte %d", l.MaxDepth, i)
			}
			values++
		case '}', ']':
			depth--
		case ',':
			values++
		}
		if values > l.MaxValues {
			return fmt.Errorf("JSON holds more than %d values", l.MaxValues)
		}
	}
	return nil
}

// parseUntrusted checks a received message's headers against the limits
// above and parses its binary-mode envelope (envelope_read.go), rejecting
// envelope values that are not printable UTF-8.
func parseUntrusted(h nats.Header) (Envelope, error) {
	e, err := scanHeaders(h)
	if err != nil {
		return Envelope{}, err
	}
	return e.binaryEnvelope()
}

func checkEnvelopeValue(v string) error {
	if len(v) > wire.MaxEnvelopeValueLen {
		return fmt.Errorf("%d bytes long, over the limit of %d", len(v), wire.MaxEnvelopeValueLen)
	}
	if printableASCII(v) { // ids, types and sources usually are (hot path)
		return nil
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%q is not valid UTF-8", v)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%q contains non-printable character %U", v, r)
		}
	}
	return nil
}

// printableASCII reports whether every byte of v is printable ASCII
// (space included), which unicode.IsPrint accepts as well.
func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkAppHeaders rejects WithHeader headers a subscriber would refuse or
// read differently: a key that spells an envelope header or Nats-Msg-Id
// in any case (it would travel next to jetkit's), and a value with CR or
// LF (nats.go would turn them into spaces).
func checkAppHeaders(h map[string]string) error {
	for k, v := range h {
		if envelopeHeader(k) >= 0 || strings.EqualFold(k, wire.HeaderMsgID) {
			return fmt.Errorf("%w: WithHeader(%q): jetkit sets this envelope header, and header names are case-insensitive; use WithEventID, WithTime or the topic's codec", ErrInvalidHeader, k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%w: WithHeader(%q): the value contains CR or LF, which cannot travel in a header; encode it (e.g. percent-encoding)", ErrInvalidHeader, k)
		}
	}
	return nil
}

// checkOutgoing rejects a message the server or a jetkit subscriber would
// refuse: invalid header keys, more header values than wire.MaxHeaders or
// header bytes than wire.MaxHeaderBytes (counted as scanHeaders counts them),
// or headers and payload together over max_payload (the server counts
// both). Nothing is sent when it fails.
func checkOutgoing(c *Conn, msg *nats.Msg, eventType, id string) error {
	values, hsize := 0, 0
	for k, vs := range msg.Header {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			return fmt.Errorf("publish %s event %s: %w: header key %q: must be printable ASCII without spaces or ':'", eventType, id, ErrInvalidHeader, k)
		}
		values += len(vs)
		for _, v := range vs {
			hsize += len(k) + len(v) + 4
		}
	}
	if values > wire.MaxHeaders {
		return fmt.Errorf("publish %s event %s: %w: %d header values, more than the %d a jetkit subscriber accepts",
			eventType, id, ErrInvalidHeader, values, wire.MaxHeaders)
	}
	if hsize > wire.MaxHeaderBytes {
		return fmt.Errorf("publish %s event %s: %w: %w: headers take %d bytes, more than the %d a jetkit subscriber accepts",
			eventType, id, ErrInvalidHeader, ErrMessageTooLarge, hsize, wire.MaxHeaderBytes)
	}
	max := c.maxPayload()
	if max <= 0 || int64(len(msg.Data)+headerSizeBound(msg.Header)) <= max {
		return nil // fits without encoding the headers to measure them (hot path)
	}
	size := msg.Size() - len(msg.Subject) - len(msg.Reply)
	if int64(size) > max {
		return fmt.Errorf("publish %s event %s: %w: %d bytes (payload %d + headers %d), the server's max_payload is %d",
			eventType, id, ErrMessageTooLarge, size, len(msg.Data), size-len(msg.Data), max)
	}
	return nil
}

// headerSizeBound is at least the encoded size of h: "NATS/1.0\r\n", a
// "key: value\r\n" line per value (encoding may only trim values) and the
// closing "\r\n".
func headerSizeBound(h nats.Header) int {
	n := 12
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// fitDeadLetter makes a dead-letter copy fit within maxPayload, so a
// message near the limit (or with oversized headers) can still be
// dead-lettered instead of being retried forever: first it drops the
// original headers (keeping the Jetkit-Dlq-* ones), then it cuts the
// payload. h is edited in place; the payload to send is returned.
func fitDeadLetter(h nats.Header, data []byte, maxPayload int64) []byte {
	if maxPayload <= 0 {
		return data
	}
	size := func() int64 {
		m := nats.Msg{Header: h, Data: data}
		return int64(m.Size())
	}
	if size() <= maxPayload {
		return data
	}
	dropped := 0
	drop := func(keep func(k string, vs []string) bool) {
		for k, vs := range h {
			if !strings.HasPrefix(k, "Jetkit-Dlq-") && k != nats.MsgIdHdr && !keep(k, vs) {
				dropped += len(vs)
				delete(h, k)
			}
		}
		if dropped > 0 {
			h[wire.HeaderDLQHeadersDropped] = []string{strconv.Itoa(dropped)}
		}
	}
	// First keep the envelope (small ce-* values), which says what the
	// event was; then, if that is still too much, keep only our headers.
	drop(func(k string, vs []string) bool {
		lk := strings.ToLower(k)
		return (strings.HasPrefix(lk, "ce-") || lk == wire.HeaderContentType) && len(vs) == 1 && len(vs[0]) <= wire.MaxEnvelopeValueLen
	})
	if size() <= maxPayload {
		return data
	}
	// cut shortens the payload just enough, if that can be enough.
	cut := func() ([]byte, bool) {
		h[wire.HeaderDLQTruncated] = []string{strconv.Itoa(len(data))}
		if over := size() - maxPayload; over > 0 && over < int64(len(data)) {
			return data[:int64(len(data))-over], true
		}
		delete(h, wire.HeaderDLQTruncated)
		return nil, false
	}
	if d, ok := cut(); ok {
		return d
	}
	drop(func(string, []string) bool { return false })
	if size() <= maxPayload {
		return data
	}
	if d, ok := cut(); ok {
		return d
	}
	// Our own headers alone are too large: send them without the payload.
	h[wire.HeaderDLQTruncated] = []string{strconv.Itoa(len(data))}
	return nil
}

// isStreamMsgTooLarge reports the stream's refusal of a message over its
// MaxMsgSize (StreamSpec.MaxMsgSize), which is smaller than max_payload.
func isStreamMsgTooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}
