// Package httpjson holds the JSON plumbing the sample services' HTTP APIs
// share: strict request decoding with a body limit, and JSON responses and
// errors of the form {"error": "..."}.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Decode reads one JSON value of at most limit bytes from r's body into v,
// rejecting unknown fields and trailing data. On error it returns the HTTP
// status to answer with (413 for a body over limit, else 400) and an error
// whose message can be shown to the client.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			return http.StatusBadRequest, errors.New("empty body; expected a JSON object")
		default:
			return http.StatusBadRequest, fmt.Errorf("malformed JSON body: %w", err)
		}
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("malformed JSON body: more than one JSON value")
	}
	return 0, nil
}

// Write answers with status and v encoded as JSON.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// Error answers with status and the JSON body {"error": msg}.
func Error(w http.ResponseWriter, status int, msg string) {
	Write(w, status, map[string]string{"error": msg})
}
