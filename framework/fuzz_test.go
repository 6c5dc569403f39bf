package framework

// Fuzz targets for everything jetkit reads from the wire or the
// environment. The seed corpora in testdata/fuzz/<Target>/ run as ordinary
// tests in `go test`; explore with e.g.
//
//	go test ./framework -run '^$' -fuzz '^FuzzEnvelopeDecode$' -fuzztime 60s

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/internal/wire"
)

// headerFromText builds headers from "Key: value" lines, the way a
// hostile producer could send them (any key, any value, repeats).
func headerFromText(text string) nats.Header {
	h := nats.Header{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h[k] = append(h[k], strings.TrimPrefix(v, " "))
	}
	return h
}

type fuzzEvent struct {
	ID    string         `json:"id"`
	Qty   int            `json:"qty"`
	Lines []fuzzLine     `json:"lines"`
	Attrs map[string]any `json:"attrs"`
}

type fuzzLine struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// FuzzEnvelopeDecode feeds arbitrary headers and payloads through what a
// subscription does with a delivery before the handler: header limits,
// envelope parsing, content-type and bounded JSON decoding, and the
// dead-letter copy that must fit max_payload. Nothing may panic, and
// whatever is accepted must satisfy the envelope's guarantees.
func FuzzEnvelopeDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, headerText string, payload []byte, maxPayload uint16) {
		h := headerFromText(headerText)
		env, err := parseUntrusted(h)
		if err != nil {
			if !errors.Is(err, ErrDecode) || !IsPermanent(err) {
				t.Fatalf("envelope error is not a permanent decode error: %v", err)
			}
		} else {
			if env.SpecVersion != wire.SpecVersion || env.ID == "" || env.Type == "" || env.Source == "" {
				t.Fatalf("accepted an incomplete envelope %+v", env)
			}
			for _, v := range []string{env.ID, env.Type, env.Source, env.ContentType} {
				if len(v) > wire.MaxEnvelopeValueLen || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) {
					t.Fatalf("accepted envelope value %q", v)
				}
			}
			var ev fuzzEvent
			derr := decodeEvent(JSON, env, payload, &ev)
			if derr == nil && (!json.Valid(payload) || !utf8.Valid(payload)) {
				t.Fatalf("decoded invalid JSON %q", payload)
			}
			if derr != nil && (!errors.Is(derr, ErrDecode) || !IsPermanent(derr)) {
				t.Fatalf("decode error is not a permanent decode error: %v", derr)
			}
			var anything any
			_ = decodeEvent(limitedCodec{Codec: JSON, limits: DecodeLimits{MaxDepth: 4, MaxValues: 16}.withDefaults()}, env, payload, &anything)
		}
		// The dead-letter copy fits max_payload whenever our own headers do.
		dh := nats.Header{}
		for k, v := range h {
			dh[k] = v
		}
		dh[wire.HeaderDLQReason] = []string{wire.ReasonDecode}
		dh[wire.HeaderDLQError] = []string{oneLine(headerText, maxDLQErrorHeaderLen)}
		own := nats.Msg{Header: nats.Header{wire.HeaderDLQReason: dh[wire.HeaderDLQReason], wire.HeaderDLQError: dh[wire.HeaderDLQError],
			wire.HeaderDLQHeadersDropped: {"999999"}, wire.HeaderDLQTruncated: {"99999999"}}}
		limit := int64(maxPayload)
		data := fitDeadLetter(dh, payload, limit)
		out := nats.Msg{Header: dh, Data: data}
		if limit > 0 && int64(own.Size()) <= limit && int64(out.Size()) > limit {
			t.Fatalf("dead-letter copy is %d bytes, over max_payload %d", out.Size(), limit)
		}
		if len(data) > len(payload) || string(payload[:len(data)]) != string(data) {
			t.Fatalf("dead-letter payload is not a prefix of the original")
		}
		if dh.Get(wire.HeaderDLQReason) != wire.ReasonDecode {
			t.Fatalf("dead-letter copy lost its reason")
		}
	})
}

// FuzzContentModes feeds arbitrary headers and payloads through
// readEnvelope, which picks binary mode, structured mode or (if allowed)
// no envelope. Nothing may panic; errors are permanent decode errors; an
// accepted envelope is complete (or marked as missing) with printable
// values, and the data handed on is no larger than the payload.
func FuzzContentModes(f *testing.F) {
	f.Add("content-type: application/cloudevents+json", []byte(`{"specversion":"1.0","id":"a","type":"t","source":"s","data":{"x":1}}`), false)
	f.Add("content-type: application/cloudevents+json", []byte(`{"id":"a"}`), false)
	f.Add("", []byte(`{"specversion":"1.0","id":"a","type":"t","source":"s","datacontenttype":"text/plain","data":"hi\u00e9"}`), false)
	f.Add("", []byte(`{"specversion":"1.0","id":"a","type":"t","source":"s","data_base64":"aGk="}`), true)
	f.Add("Nats-Msg-Id: m-1\ncontent-type: application/json", []byte(`{"x":1}`), true)
	f.Add("ce-specversion: 1.0\nce-id: a\nCE-ID: b\nce-type: t\nce-source: s", []byte(`{}`), false)
	f.Fuzz(func(t *testing.T, headerText string, payload []byte, allowMissing bool) {
		s := &Subscription{opts: subOptions{allowMissingEnvelope: allowMissing}}
		m := &Message{Subject: "orders.created.v1", Header: headerFromText(headerText), Data: payload, StreamSeq: 7}
		if err := s.readEnvelope(m); err != nil {
			if !errors.Is(err, ErrDecode) || !IsPermanent(err) {
				t.Fatalf("envelope error is not a permanent decode error: %v", err)
			}
			return
		}
		env := m.Envelope
		switch {
		case env.SpecVersion == "" && !allowMissing:
			t.Fatalf("accepted a message without an envelope: %+v", env)
		case env.SpecVersion != "" && (env.SpecVersion != wire.SpecVersion || env.ID == "" || env.Type == "" || env.Source == ""):
			t.Fatalf("accepted an incomplete envelope %+v", env)
		case env.ID == "" || env.Type == "":
			t.Fatalf("no id or type: %+v", env)
		}
		for _, v := range []string{env.ID, env.Type, env.Source, env.ContentType} {
			if len(v) > wire.MaxEnvelopeValueLen || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Fatalf("accepted envelope value %q", v)
			}
		}
		if len(m.Data) > len(payload) {
			t.Fatalf("data of %d bytes from a payload of %d", len(m.Data), len(payload))
		}
	})
}

// FuzzSubjectValidation checks jetkit's subject rules against each other
// and against nats-server's: what jetkit accepts, the server accepts too.
func FuzzSubjectValidation(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if wire.ValidateToken(s) == nil {
			if s == "" || !utf8.ValidString(s) || strings.ContainsAny(s, ".*> \t\r\n") {
				t.Fatalf("token %q accepted", s)
			}
			if wire.ValidateSubject("orders.created.v1."+s) != nil {
				t.Fatalf("a valid token %q makes an invalid keyed subject", s)
			}
		}
		if err := wire.ValidateSubject(s); err == nil {
			if !server.IsValidLiteralSubject(s) {
				t.Fatalf("subject %q accepted by jetkit, refused by nats-server", s)
			}
			for _, tok := range strings.Split(s, ".") {
				if wire.ValidateToken(tok) != nil {
					t.Fatalf("subject %q accepted with invalid token %q", s, tok)
				}
			}
			if wire.ValidateFilter(s) != nil {
				t.Fatalf("subject %q is not a valid filter", s)
			}
		} else if !errors.Is(err, ErrInvalidSubject) {
			t.Fatalf("subject error does not wrap ErrInvalidSubject: %v", err)
		}
		if err := wire.ValidateFilter(s); err == nil {
			if !server.IsValidSubject(s) {
				t.Fatalf("filter %q accepted by jetkit, refused by nats-server", s)
			}
		} else if !errors.Is(err, ErrInvalidSubject) {
			t.Fatalf("filter error does not wrap ErrInvalidSubject: %v", err)
		}
		if _, err := NewTopic[fuzzEvent](s); (err == nil) != (wire.ValidateSubject(s) == nil) {
			t.Fatalf("NewTopic(%q) and wire.ValidateSubject disagree: %v", s, err)
		}
	})
}

// fuzzSecret is put in every secret variable; it must never be echoed.
const fuzzSecret = "FuzzS3cretValue"

// FuzzLoadConfig sets arbitrary values in the variables LoadConfig reads:
// it must never panic, must accept only configurations that validate, must
// report problems as a *ConfigError, and must never echo a secret.
func FuzzLoadConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, natsURL, urlRest, ackWait, maxDeliver, concurrency, ackMode, replicas, serviceName, user, dlq string) {
		for _, v := range []string{natsURL, urlRest, ackWait, maxDeliver, concurrency, ackMode, replicas, serviceName, user, dlq} {
			if strings.ContainsRune(v, 0) || strings.Contains(v, fuzzSecret) {
				return // environment values cannot hold NUL; the secret must come only from us
			}
		}
		const p = "JKFUZZ"
		set := func(k, v string) {
			if v != "" {
				t.Setenv(p+"_"+k, v)
			}
		}
		// The URL list always carries a password, a token and a user alone
		// (a token to NATS); the fuzzer shapes the rest.
		set("NATS_URL", natsURL+",nats://u:"+fuzzSecret+"@"+urlRest+",nats://"+fuzzSecret+"t@"+urlRest+",tls://"+fuzzSecret+"u@"+urlRest)
		set("ACK_WAIT", ackWait)
		set("MAX_DELIVER", maxDeliver)
		set("CONCURRENCY", concurrency)
		set("ACK_MODE", ackMode)
		set("STREAM_REPLICAS", replicas)
		set("SERVICE_NAME", serviceName)
		set("NATS_USER", user)
		set("NATS_PASSWORD", fuzzSecret+"pw")
		set("NATS_TOKEN", fuzzSecret+"tok")
		set("DEAD_LETTER_STREAM", dlq)
		cfg, err := LoadConfig(p)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("LoadConfig accepted a config that does not validate: %v", verr)
			}
		} else {
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) || len(ce.Problems) == 0 {
				t.Fatalf("LoadConfig error is not a *ConfigError: %v", err)
			}
			if leaks(err.Error()) {
				t.Fatalf("LoadConfig error echoes a secret: %v", err)
			}
		}
		for _, text := range []string{cfg.String(), cfg.GoString()} {
			if leaks(text) {
				t.Fatalf("Config.String echoes a secret: %s", text)
			}
		}
	})
}

// leaks reports whether text shows the fuzz secret. A URL whose user info
// the fuzzer made unparsable may show it only percent-encoded by url, so
// check the decoded form too.
func leaks(text string) bool {
	if strings.Contains(text, fuzzSecret) {
		return true
	}
	if un, err := url.PathUnescape(text); err == nil && strings.Contains(un, fuzzSecret) {
		return true
	}
	return false
}
