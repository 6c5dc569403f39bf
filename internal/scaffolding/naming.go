package scaffolding

import (
	"strings"
	"unicode"
)

// event is one subject a service consumes or publishes, with the names the
// templates use for it.
type event struct {
	// Subject is the NATS subject, e.g. orders.created.v1.
	Subject string
	// Ident is the Go type and handler name, e.g. OrdersCreatedV1.
	Ident string
	// File is the base file name without .go, e.g. orders_created_v1.
	File string
	// Durable is the durable consumer suffix, e.g. orders-created-v1.
	Durable string
	// Consumed is true when the service handles the event.
	Consumed bool
	// Keyed is true when the event is published with a key, one subject
	// per key (orders.created.v1.<key>): its topic is framework.Keyed().
	Keyed bool
	// Domain is the stream the event is stored in.
	Domain domain
}

// domain is the first subject token; each domain gets one stream.
type domain struct {
	// Token is the subject's first token, e.g. orders.
	Token string
	// Ident is the Go name prefix, e.g. Orders (var OrdersStream).
	Ident string
	// Stream is the stream name, e.g. ORDERS.
	Stream string
	// File is the stream file name without .go, e.g. orders_stream.
	File string
	// Owned is true when the service publishes into the domain, so it owns
	// and declares the stream; a domain it only consumes belongs to the
	// producer, which declares it.
	Owned bool
}

func newEvent(subject string, consumed bool) event {
	toks := strings.Split(subject, ".")
	var id strings.Builder
	for _, t := range toks {
		id.WriteString(ident(t))
	}
	flat := strings.Join(toks, "_")
	d := toks[0]
	return event{
		Subject:  subject,
		Ident:    id.String(),
		File:     strings.ToLower(strings.ReplaceAll(flat, "-", "_")),
		Durable:  strings.ToLower(strings.ReplaceAll(strings.Join(toks, "-"), "_", "-")),
		Consumed: consumed,
		Domain: domain{
			Token:  d,
			Ident:  ident(d),
			Stream: strings.ToUpper(strings.ReplaceAll(d, "-", "_")),
			File:   strings.ToLower(strings.ReplaceAll(d, "-", "_")) + "_stream",
		},
	}
}

// ident turns a token such as "created", "order-line" or "v1" into an
// exported Go name part: Created, OrderLine, V1.
func ident(tok string) string {
	var b strings.Builder
	upper := true
	for _, r := range tok {
		if r == '-' || r == '_' {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// envPrefix is the environment variable prefix of a service: order-api
// reads ORDER_API_NATS_URL.
func envPrefix(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}
