package middleware

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jetkit/jetkit/framework"
)

// record is the JSON value stored under an idempotency key.
type record struct {
	// State is "processing" while a handler holds the claim, "done" after.
	State string `json:"state"`
	// Owner identifies the claiming delivery (processing only).
	Owner string `json:"owner,omitempty"`
	// LeaseMS is the claim's lease; it runs from the entry's server time.
	LeaseMS int64 `json:"lease_ms,omitempty"`
	// Subject and StreamSeq name the delivery that claimed or did the work.
	Subject   string `json:"subject,omitempty"`
	StreamSeq uint64 `json:"stream_seq,omitempty"`
	// At is when the event was done.
	At time.Time `json:"at,omitzero"`
}

func encodeRecord(r record) []byte {
	b, _ := json.Marshal(r) // a struct of strings, numbers and a time cannot fail
	return b
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("value %.40q is not an idempotency record: %w", b, err)
	}
	if r.State != stateProcessing && r.State != stateDone {
		return r, fmt.Errorf("value %.40q has unknown state %q", b, r.State)
	}
	return r, nil
}

// defaultIdempotencyKey is <stream>.<consumer>.<event id>, each part
// encoded as a KV key token.
func defaultIdempotencyKey(m *framework.Message) string {
	if m.Envelope.ID == "" {
		return ""
	}
	return keyToken(m.Stream) + "." + keyToken(m.Consumer) + "." + keyToken(m.Envelope.ID)
}

// keyToken makes s one valid KV key token: s itself when it only holds
// letters, digits, '-' and '_' (most event ids), otherwise '=' followed by
// its unpadded base64url form. '=' never appears in the first form, so the
// two cannot collide.
func keyToken(s string) string {
	if s != "" && plainToken(s) {
		return s
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

func plainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
