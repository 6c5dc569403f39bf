package framework

import (
	"encoding/json"
)

// Codec turns events into payload bytes and back. The content type it
// names travels in the content-type header.
type Codec interface {
	// ContentType is the MIME type of the encoded payload, e.g. application/json.
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: encoding/json, content type application/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string { return "application/json" }

func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
