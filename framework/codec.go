package framework

import (
	"encoding/json"
	"fmt"

	fastjson "github.com/segmentio/encoding/json"
)

// Codec turns events into payload bytes and back. The content type it
// names travels in the ce-datacontenttype header.
type Codec interface {
	// ContentType is the MIME type of the encoded payload, e.g. application/json.
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec, content type application/json: encoding/json
// to encode, and github.com/segmentio/encoding/json (same rules, about ten
// times faster on small events) to decode; a payload it rejects is decoded
// again by encoding/json, whose error names the field and type but never
// quotes the payload.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string { return "application/json" }

func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

func (jsonCodec) Unmarshal(data []byte, v any) error {
	if fastjson.Unmarshal(data, v) == nil {
		return nil
	}
	return json.Unmarshal(data, v)
}

// Bytes is the codec of raw payloads, content type
// application/octet-stream: a Topic[[]byte] declared WithCodec(Bytes)
// publishes its events' bytes as they are and hands handlers the payload
// as it arrived.
//
//	var Blobs = framework.MustNewTopic[[]byte]("blobs.stored.v1", framework.WithCodec(framework.Bytes))
var Bytes Codec = bytesCodec{}

type bytesCodec struct{}

func (bytesCodec) ContentType() string { return "application/octet-stream" }

func (bytesCodec) Marshal(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case *[]byte:
		return *b, nil
	}
	return nil, fmt.Errorf("the Bytes codec encodes []byte, not %T", v)
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("the Bytes codec decodes into *[]byte, not %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}
