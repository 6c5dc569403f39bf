// Package wire is jetkit's wire format, shared by package framework and
// the tools that read what it writes (dead letters, the CLI, telemetry):
// the CloudEvents binary-mode header names, the dead-letter headers and
// subjects, the limits on received headers, and subject validation. It is
// internal: users meet the envelope as framework.Envelope and its reading
// and writing through framework.
package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// CloudEvents 1.0 binary-mode header names, lower-case as other-language
// clients write them. Header names are case-insensitive: a received
// message spelling one of them twice is malformed, and WithHeader refuses
// them in any spelling.
const (
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderSpecVersion = "ce-specversion"
	HeaderTime        = "ce-time"
	// HeaderDataContentType carries the payload's MIME type in binary
	// mode, as the CloudEvents NATS binding maps datacontenttype.
	HeaderDataContentType = "ce-datacontenttype"
	// HeaderContentType is read as the payload's MIME type when
	// ce-datacontenttype is absent (producers before the binding, and
	// jetkit before it followed the binding); application/cloudevents+json
	// marks a structured-mode event.
	HeaderContentType = "content-type"
	// HeaderMsgID is JetStream's de-duplication header; jetkit sets it to the event id.
	HeaderMsgID = nats.MsgIdHdr
	// SpecVersion is the CloudEvents version jetkit writes and accepts.
	SpecVersion = "1.0"
)

// Limits on what a subscription accepts from the wire. Everything a
// consumer receives is untrusted input: a message breaking one of these is
// dead-lettered (reason "decode") before any handler sees it.
const (
	// MaxHeaders is the most header values a received message may carry.
	// jetkit writes 8 plus trace context; 64 leaves room for application
	// headers while bounding per-message work.
	MaxHeaders = 64
	// MaxHeaderBytes bounds the encoded size of a received message's headers.
	MaxHeaderBytes = 32 << 10
	// MaxEnvelopeValueLen bounds ce-id, ce-type, ce-source and
	// ce-specversion, which end up in logs, metrics and dead-letter headers.
	MaxEnvelopeValueLen = 1024
)

// Dead-letter headers added to the copy of a dead-lettered message.
const (
	// DeadLetterSubjectPrefix roots the dead-letter subjects:
	// jetkit.deadletter.<stream>.<consumer>.
	DeadLetterSubjectPrefix = "jetkit.deadletter"

	HeaderDLQReason    = "Jetkit-Dlq-Reason"     // decode, permanent, max-deliver
	HeaderDLQError     = "Jetkit-Dlq-Error"      // the handler's error, one line
	HeaderDLQSubject   = "Jetkit-Dlq-Subject"    // original subject
	HeaderDLQStream    = "Jetkit-Dlq-Stream"     // original stream
	HeaderDLQConsumer  = "Jetkit-Dlq-Consumer"   // consumer that gave up
	HeaderDLQStreamSeq = "Jetkit-Dlq-Stream-Seq" // original stream sequence
	HeaderDLQDelivered = "Jetkit-Dlq-Delivered"  // deliveries made
	HeaderDLQTime      = "Jetkit-Dlq-Time"       // when it was dead-lettered (RFC 3339)
)

// StreamPartitionsMetadata is the stream metadata key recording the
// partition count of a stream declared with StreamSpec.Partitions; the
// partition p of a partitioned group with durable d is consumed by the
// durable PartitionConsumer(d, p).
const StreamPartitionsMetadata = "jetkit.partitions"

// PartitionConsumer is the durable of partition p of the partitioned
// consumer group durable.
func PartitionConsumer(durable string, p int) string { return durable + "-p" + strconv.Itoa(p) }

// Dead-letter reasons, the values of HeaderDLQReason.
const (
	ReasonDecode     = "decode"
	ReasonPermanent  = "permanent"
	ReasonMaxDeliver = "max-deliver"
)

// Dead-letter headers added when the copy had to be cut to fit max_payload.
const (
	// HeaderDLQHeadersDropped counts original header values left out of the copy.
	HeaderDLQHeadersDropped = "Jetkit-Dlq-Headers-Dropped"
	// HeaderDLQTruncated is the original payload size when the copy's payload was cut.
	HeaderDLQTruncated = "Jetkit-Dlq-Truncated"
)

// DeadLetterSubject is where messages of stream/consumer are dead-lettered.
func DeadLetterSubject(stream, consumer string) string {
	return DeadLetterSubjectPrefix + "." + stream + "." + consumer
}

// HeaderValue returns the first value of key in h, matching the key
// case-insensitively: nats.Header.Get is case-sensitive, and producers
// differ in how they spell keys.
func HeaderValue(h nats.Header, key string) string {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// ErrInvalidSubject is wrapped by every subject or token validation error
// (framework.ErrInvalidSubject is the same value).
var ErrInvalidSubject = errors.New("invalid subject")

// ValidateToken checks one subject token built from data (an order id, a
// customer key). It rejects what would change the meaning of a subject:
// empty tokens, '.', the wildcards '*' and '>', whitespace, control
// characters and invalid UTF-8.
func ValidateToken(token string) error {
	if token == "" {
		return fmt.Errorf("%w: empty token; use a non-empty key such as an id", ErrInvalidSubject)
	}
	if !utf8.ValidString(token) {
		return fmt.Errorf("%w: token %q is not valid UTF-8", ErrInvalidSubject, token)
	}
	for i, r := range token {
		switch {
		case r == '.':
			return fmt.Errorf("%w: token %q contains '.' at byte %d; a token cannot span subject levels (replace or encode the dot)", ErrInvalidSubject, token, i)
		case r == '*' || r == '>':
			return fmt.Errorf("%w: token %q contains wildcard %q at byte %d; wildcards are not allowed in published subjects", ErrInvalidSubject, token, r, i)
		case unicode.IsSpace(r):
			return fmt.Errorf("%w: token %q contains whitespace at byte %d", ErrInvalidSubject, token, i)
		case unicode.IsControl(r) || !unicode.IsPrint(r):
			return fmt.Errorf("%w: token %q contains non-printable character %U at byte %d", ErrInvalidSubject, token, r, i)
		}
	}
	return nil
}

// ValidateSubject checks a subject to publish to: one or more valid tokens
// separated by single dots.
func ValidateSubject(subject string) error {
	if subject == "" {
		return fmt.Errorf("%w: empty subject; expected tokens such as orders.created.v1", ErrInvalidSubject)
	}
	for i, tok := range strings.Split(subject, ".") {
		if err := ValidateToken(tok); err != nil {
			return fmt.Errorf("subject %q, token %d: %w", subject, i+1, err)
		}
	}
	return nil
}

// ValidateFilter checks a subscription filter: like ValidateSubject, but a
// token may be the wildcard '*', and the last token may be '>'.
func ValidateFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%w: empty filter subject", ErrInvalidSubject)
	}
	toks := strings.Split(filter, ".")
	for i, tok := range toks {
		if tok == "*" || (tok == ">" && i == len(toks)-1) {
			continue
		}
		if err := ValidateToken(tok); err != nil {
			return fmt.Errorf("filter %q, token %d: %w", filter, i+1, err)
		}
	}
	return nil
}

// KVKeyToken maps a name to characters a KV key token allows: letters,
// digits, '-' and '_' stay, any other byte becomes =XX.
func KVKeyToken(s string) string {
	var b strings.Builder
	for _, r := range []byte(s) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteByte(r)
		} else {
			fmt.Fprintf(&b, "=%02x", r)
		}
	}
	return b.String()
}

// Instance registrations: every running subscription keeps a key fresh in
// the KV bucket InstanceBucket, so that the capacity estimator knows, from
// outside the services, how many instances read a consumer and how fast
// each works.
const (
	InstanceBucket = "jetkit_instances"
	// InstanceBeat is how often a registration is refreshed.
	InstanceBeat = 5 * time.Second
	// InstanceStale is the age past which a registration no longer counts
	// (its instance stopped refreshing it: crashed or cut off).
	InstanceStale = 3*InstanceBeat + time.Second
	// InstanceTTL is the bucket's MaxAge: stale keys disappear.
	InstanceTTL = 6 * InstanceBeat
	// InstanceRecordMax bounds a registration's value; larger ones are
	// ignored by readers.
	InstanceRecordMax = 1024
)

// InstanceKeyPrefix is the prefix of the registrations of stream/durable;
// the instance's id follows it.
func InstanceKeyPrefix(stream, durable string) string {
	return KVKeyToken(stream) + "." + KVKeyToken(durable) + "."
}

// InstanceRecord is the value of a registration.
type InstanceRecord struct {
	Service string `json:"service"`
	// Concurrency is the handlers the instance runs at once for the
	// consumer (for a partitioned group: over the partitions it owns).
	Concurrency int `json:"concurrency"`
	// AvgHandlerNS is the moving-average handler time (0: none yet).
	AvgHandlerNS int64 `json:"avg_handler_ns"`
	// Received is the deliveries it has handled so far.
	Received uint64 `json:"received"`
	// Running is the handlers running now, and OldestRunningNS how long
	// the oldest of them has run: a hung instance shows here.
	Running         int   `json:"running"`
	OldestRunningNS int64 `json:"oldest_running_ns"`
}
