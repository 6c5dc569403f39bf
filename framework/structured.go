package framework

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/jetkit/jetkit/internal/wire"
)

// Structured content mode: the CloudEvents JSON event format is the whole
// payload, attributes and data together. The binding marks it with the
// content-type application/cloudevents+json; the CloudEvents SDKs send it
// over NATS without any header.

// errNotStructured: the payload is not a JSON object with a specversion
// member, so it is no structured-mode event.
var errNotStructured = errors.New("not a structured-mode CloudEvent")

// structuredContentType reports whether the content-type header ct marks
// a structured-mode event; other cloudevents media types are refused.
func structuredContentType(ct string) (bool, error) {
	if ct == "" {
		return false, nil
	}
	mt := mediaType(ct)
	if !strings.HasPrefix(mt, "application/cloudevents") {
		return false, nil
	}
	switch mt {
	case "application/cloudevents+json", "application/cloudevents":
		return true, nil
	case "application/cloudevents-batch+json", "application/cloudevents-batch":
		return false, decodeError("content-type %q: batch mode is not supported; publish one event per message", ct)
	}
	return false, decodeError("content-type %q: only the JSON event format (application/cloudevents+json) is supported", ct)
}

// looksStructured is a cheap first test for a headerless structured-mode
// event: a JSON object naming specversion.
func looksStructured(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{' && bytes.Contains(data, []byte(`"specversion"`))
}

// structuredAttrs are the attributes jetkit reads; extensions are ignored.
var structuredAttrs = [...]string{"specversion", "id", "type", "source", "time", "datacontenttype", "data", "data_base64"}

// parseStructured reads a structured-mode event: its envelope and its data
// (the JSON value of data, the text of a data string of another type, or
// the bytes of data_base64). Attribute names are case-sensitive and
// appear once; errNotStructured means there is no specversion member.
func parseStructured(payload []byte) (Envelope, []byte, error) {
	limits := defaultDecodeLimits
	limits.MaxDepth++ // the data sits one level down
	if err := checkJSON(payload, limits); err != nil {
		return Envelope{}, nil, decodeError("structured event: %v", err)
	}
	var attrs [len(structuredAttrs)]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Envelope{}, nil, decodeError("structured event: the payload is not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Envelope{}, nil, decodeError("structured event: %v", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Envelope{}, nil, decodeError("structured event: attribute %q: %v", key, err)
		}
		for i, name := range structuredAttrs {
			if key != name {
				continue
			}
			if attrs[i] != nil {
				return Envelope{}, nil, decodeError("structured event: attribute %q appears twice", key)
			}
			attrs[i] = raw
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Envelope{}, nil, decodeError("structured event: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Envelope{}, nil, decodeError("structured event: data after the JSON object")
	}
	if attrs[0] == nil {
		return Envelope{}, nil, errNotStructured
	}
	var s [6]string // the string attributes, in structuredAttrs order
	for i := range s {
		if attrs[i] == nil || string(attrs[i]) == "null" {
			continue
		}
		if err := json.Unmarshal(attrs[i], &s[i]); err != nil {
			return Envelope{}, nil, decodeError("structured event: attribute %s must be a string", structuredAttrs[i])
		}
	}
	env := Envelope{SpecVersion: s[0], ID: s[1], Type: s[2], Source: s[3], ContentType: s[5]}
	switch {
	case env.SpecVersion != wire.SpecVersion:
		return env, nil, decodeError("structured event: specversion is %q; only %q is supported", env.SpecVersion, wire.SpecVersion)
	case env.ID == "":
		return env, nil, decodeError("structured event: missing attribute id")
	case env.Type == "":
		return env, nil, decodeError("structured event: missing attribute type")
	case env.Source == "":
		return env, nil, decodeError("structured event: missing attribute source")
	}
	if err := checkEnvelope(env, [4]string{"structured event: attribute id", "structured event: attribute type",
		"structured event: attribute source", "structured event: attribute datacontenttype"}); err != nil {
		return Envelope{}, nil, err
	}
	if s[4] != "" {
		t, err := time.Parse(time.RFC3339Nano, s[4])
		if err != nil {
			return env, nil, decodeError("structured event: attribute time %q is not an RFC 3339 time", s[4])
		}
		env.Time = t
	}
	data, err := structuredData(env.ContentType, attrs[6], attrs[7])
	return env, data, err
}

// structuredData is the event's data as its content type reads it.
func structuredData(contentType string, data, data64 json.RawMessage) ([]byte, error) {
	if string(data) == "null" {
		data = nil
	}
	if string(data64) == "null" {
		data64 = nil
	}
	switch {
	case data != nil && data64 != nil:
		return nil, decodeError("structured event: both data and data_base64")
	case data64 != nil:
		var s string
		if err := json.Unmarshal(data64, &s); err != nil {
			return nil, decodeError("structured event: attribute data_base64 must be a string")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, decodeError("structured event: attribute data_base64: %v", err)
		}
		return b, nil
	case data == nil:
		return nil, nil
	}
	if mt := mediaType(contentType); contentType == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json") {
		return data, nil // JSON data is the JSON value itself
	}
	var s string // other data travels as a JSON string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, decodeError("structured event: data of type %q must be a JSON string (or use data_base64)", contentType)
	}
	return []byte(s), nil
}
