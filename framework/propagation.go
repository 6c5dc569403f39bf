package framework

import (
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/jetkit/jetkit/internal/wire"
)

// HeaderCarrier adapts nats.Header to OpenTelemetry's TextMapCarrier. It
// writes lower-case keys (traceparent, tracestate, baggage), as W3C and
// other-language clients do, and reads keys case-insensitively because
// nats.Header.Get is case-sensitive.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, matched case-insensitively.
func (c HeaderCarrier) Get(key string) string { return wire.HeaderValue(nats.Header(c), key) }

// Set stores value under the lower-cased key.
func (c HeaderCarrier) Set(key, value string) { c[strings.ToLower(key)] = []string{value} }

// Keys lists the header keys.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
