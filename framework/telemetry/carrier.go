package telemetry

import (
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/internal/wire"
)

// headerFields is a read-only propagation carrier over NATS headers for the
// W3C keys. One pass over the header map finds them case-insensitively
// (producers in other languages write lower-case keys, nats.Header.Get is
// case-sensitive), instead of one full scan per key the propagators ask
// for: most messages carry no baggage, and a missing key costs a scan.
// Other keys (a custom propagator's) are looked up in the headers.
type headerFields struct {
	h                                nats.Header
	traceparent, tracestate, baggage string
}

func readHeaderFields(h nats.Header) headerFields {
	f := headerFields{h: h}
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch len(k) {
		case len("traceparent"):
			if strings.EqualFold(k, "traceparent") {
				f.traceparent = v[0]
			}
		case len("tracestate"):
			if strings.EqualFold(k, "tracestate") {
				f.tracestate = v[0]
			}
		case len("baggage"):
			if strings.EqualFold(k, "baggage") {
				f.baggage = v[0]
			}
		}
	}
	return f
}

// Get implements propagation.TextMapCarrier for the W3C keys.
func (f *headerFields) Get(key string) string {
	switch strings.ToLower(key) {
	case "traceparent":
		return f.traceparent
	case "tracestate":
		return f.tracestate
	case "baggage":
		return f.baggage
	}
	return wire.HeaderValue(f.h, key)
}

// Set implements propagation.TextMapCarrier; the carrier is read-only.
func (f *headerFields) Set(string, string) {}

// Keys implements propagation.TextMapCarrier.
func (f *headerFields) Keys() []string { return observe.HeaderCarrier(f.h).Keys() }
