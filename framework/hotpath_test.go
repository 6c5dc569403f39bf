package framework

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/internal/wire"
)

// checkJSONBytewise is checkJSON's rule applied one byte at a time, the
// reference the fast string-skipping version must agree with.
func checkJSONBytewise(data []byte, l DecodeLimits) error {
	depth, values := 0, 0
	inString, escaped := false, false
	for i, b := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
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

func TestCheckJSONSkipsStringsLikeTheBytewiseScan(t *testing.T) {
	l := DecodeLimits{MaxBytes: 1 << 20, MaxDepth: 3, MaxValues: 6}
	inputs := []string{
		`{"a":"plain text"}`,
		`{"a":"{{{{[[[[,,,,,,,,"}`,         // brackets and commas inside a string do not count
		`{"a":"quote \" then {{{{{{"}`,     // escaped quote keeps the string open
		`{"a":"backslash \\"}{{{{`,         // escaped backslash closes it: the braces count
		`{"a":"\\\\\" still inside {{{{"}`, // three backslashes then a quote: escaped
		`{"a":"unterminated {{{{`,
		`{"a":[[[[1]]]]}`,
		`[1,2,3,4,5,6,7]`,
		`{"a":"x","b":"y","c":"z","d":"w"}`,
		`""`, `"\"`, `"abc\`, `{`, ``,
	}
	for _, in := range inputs {
		want, got := checkJSONBytewise([]byte(in), l), checkJSON([]byte(in), l)
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("checkJSON(%s) = %v, the bytewise scan says %v", in, got, want)
		}
	}
}

func TestPlainMediaTypeMatchesParsing(t *testing.T) {
	for _, ct := range []string{"application/json", "application/cloudevents+json", "text/plain",
		"application/vnd.acme-v2+json", "Application/JSON", "application/json; charset=utf-8",
		" application/json", "application", "/json", "application/", "application/json/x"} {
		if plainMediaType(ct) && mediaType(ct) != ct {
			t.Errorf("plainMediaType(%q) is true, but it parses to %q", ct, mediaType(ct))
		}
	}
	if !plainMediaType("application/json") {
		t.Error("application/json should take the fast path")
	}
	if got := mediaType("Application/JSON; charset=utf-8"); got != "application/json" {
		t.Errorf("mediaType with parameters = %q, want application/json", got)
	}
}

func TestHeaderSizeBoundIsAtLeastTheEncodedSize(t *testing.T) {
	h := make(nats.Header)
	writeEnvelope(h, Envelope{ID: "id-1", Type: "orders.created.v1", Source: "svc", Time: time.Now(), ContentType: "application/json"})
	h["X-Padded"] = []string{"  value with spaces  ", "second"}
	h["traceparent"] = []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	msg := &nats.Msg{Subject: "s", Header: h}
	exact := msg.Size() - len(msg.Subject)
	if bound := headerSizeBound(h); bound < exact {
		t.Fatalf("headerSizeBound = %d, below the encoded size %d", bound, exact)
	}
}

func TestWriteEnvelopeRoundTrips(t *testing.T) {
	at := time.Date(2026, 11, 27, 15, 4, 5, 6, time.UTC)
	env := Envelope{ID: "id-1", Type: "orders.created.v1", Source: "svc", SpecVersion: wire.SpecVersion, Time: at, ContentType: "application/json"}
	h := make(nats.Header)
	writeEnvelope(h, env)
	h[wire.HeaderID][0] = "id-1" // values are independent slices: appending to one must not touch another
	h[wire.HeaderType] = append(h[wire.HeaderType], "extra")
	if h[wire.HeaderSource][0] != "svc" || h[wire.HeaderMsgID][0] != "id-1" {
		t.Fatalf("header values alias each other: %v", h)
	}
	h[wire.HeaderType] = h[wire.HeaderType][:1]
	got, err := parseUntrusted(h)
	if err != nil {
		t.Fatal(err)
	}
	if got != env {
		t.Fatalf("round trip: got %+v, want %+v", got, env)
	}
}

func TestJSONCodecErrorsDoNotQuoteThePayload(t *testing.T) {
	var v struct {
		Qty int `json:"qty"`
	}
	err := JSON.Unmarshal([]byte(`{"qty":"secret-card-number"}`), &v)
	var te interface{ Error() string }
	if err == nil || !errors.As(err, &te) {
		t.Fatalf("decoding a string into an int: err = %v, want an error", err)
	}
	if strings.Contains(err.Error(), "secret-card-number") {
		t.Fatalf("decode error quotes the payload: %v", err)
	}
	if err := JSON.Unmarshal([]byte(`{"qty":3}`), &v); err != nil || v.Qty != 3 {
		t.Fatalf("decode: %v, qty %d", err, v.Qty)
	}
}

func TestPrintableASCIIAgreesWithIsPrint(t *testing.T) {
	for b := 0; b < 0x80; b++ {
		v := string(rune(b))
		if printableASCII(v) != (checkEnvelopeValueSlow(v) == nil) {
			t.Errorf("byte %#x: printableASCII %v, unicode.IsPrint disagrees", b, printableASCII(v))
		}
	}
	for _, v := range []string{"orders.created.v1", "2aQnC8kq4W5sTfR0bZ3Jx1", "svc with space", "tab\there", "bell\a", "del\x7f", "ünïcode", "\xff"} {
		if (checkEnvelopeValue(v) == nil) != (checkEnvelopeValueSlow(v) == nil) {
			t.Errorf("checkEnvelopeValue(%q) = %v, the rune-by-rune check says %v", v, checkEnvelopeValue(v), checkEnvelopeValueSlow(v))
		}
	}
}

// checkEnvelopeValueSlow is checkEnvelopeValue without the ASCII fast path.
func checkEnvelopeValueSlow(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("non-printable %U", r)
		}
	}
	return nil
}
