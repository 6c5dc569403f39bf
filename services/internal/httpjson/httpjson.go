// Package httpjson holds the JSON plumbing the sample services' HTTP APIs
// share: strict request decoding with a body limit and a required
// Content-Type, and JSON responses and errors of the form {"error": "..."}.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Decode reads one JSON value of at most limit bytes from r's body into v,
// rejecting unknown fields and trailing data. The body must be labelled
// Content-Type: application/json (charset utf-8, if any): a browser cannot
// send that cross-site without the API's consent (CORS), so a web page
// cannot place orders with a form or a simple fetch. On error it returns
// the HTTP status to answer with (415 for another Content-Type, 413 for a
// body over limit, else 400) and an error whose message can be shown to
// the client.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) (int, error) {
	if err := requireJSON(r); err != nil {
		return http.StatusUnsupportedMediaType, err
	}
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

// requireJSON checks that r's Content-Type header is application/json.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return errors.New(`Content-Type header missing; send the body as JSON with "Content-Type: application/json"`)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf(`Content-Type %q not supported; send the body as JSON with "Content-Type: application/json"`, ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf(`Content-Type %q: charset %q not supported; send UTF-8 JSON`, ct, cs)
	}
	return nil
}

// NoBody reads r's body, which must be empty: a request that declares a
// length, or sends a chunked body with any byte in it, gets an error whose
// message can be shown to the client (answer 400). what names the request,
// e.g. "cancel".
func NoBody(r *http.Request, what string) error {
	if r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength < 0 { // chunked or until close: empty only if it ends at once
		var one [1]byte
		if n, _ := io.ReadFull(r.Body, one[:]); n == 0 {
			return nil
		}
	}
	return fmt.Errorf("%s takes no request body; send none", what)
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
