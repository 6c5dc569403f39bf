package order

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/services/events"
)

// maxBody bounds request bodies: enough for events.MaxLines lines.
const maxBody = 64 << 10

// Handler serves the order HTTP API:
//
//	POST /orders              {"customer_id": "c-1", "items": [{"sku": "apple", "qty": 2}]} → 202 {"id", "status": "pending"}
//	GET  /orders/{id}         the order, its status and history
//	POST /orders/{id}/cancel  cancel a pending or confirmed order
//	GET  /livez               the process is up (framework/health)
//	GET  /readyz              connected, JetStream and the consumers answer, not shutting down
//	GET  /metrics             Prometheus metrics, when probes include health.WithMetrics
//
// Errors are JSON: {"error": "..."}; bad input is a 4xx and publishes nothing.
func (s *Service) Handler(probes ...health.Option) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.place)
	mux.HandleFunc("GET /orders/{id}", s.get)
	mux.HandleFunc("POST /orders/{id}/cancel", s.cancel)
	mux.HandleFunc("/orders", methodNotAllowed("POST"))
	mux.HandleFunc("/orders/{id}", methodNotAllowed("GET"))
	mux.HandleFunc("/orders/{id}/cancel", methodNotAllowed("POST"))
	h := health.New(s.svc, probes...)
	mux.Handle("GET /livez", h)
	mux.Handle("GET /readyz", h)
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// PlaceRequest is the body of POST /orders.
type PlaceRequest struct {
	// CustomerID: 1-64 characters of A-Z a-z 0-9 _ -.
	CustomerID string `json:"customer_id"`
	// Items: 1 to events.MaxLines lines, qty 1 to events.MaxQty.
	Items []events.Line `json:"items"`
}

// PlaceResponse is the answer to POST /orders.
type PlaceResponse struct {
	// ID of the new order.
	ID string `json:"id"`
	// Status is always pending: the inventory answers asynchronously.
	Status string `json:"status"`
}

func (s *Service) place(w http.ResponseWriter, r *http.Request) {
	var req PlaceRequest
	if status, err := decodeJSON(w, r, &req); err != nil {
		writeError(w, status, err.Error())
		return
	}
	o, err := s.Place(r.Context(), req.CustomerID, req.Items)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/orders/"+o.ID)
	writeJSON(w, http.StatusAccepted, PlaceResponse{ID: o.ID, Status: o.Status})
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	o, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Service) cancel(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > 0 {
		// The cancel takes no body; refuse one rather than ignore it.
		writeError(w, http.StatusBadRequest, "cancel takes no request body")
		return
	}
	o, err := s.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// fail maps an error to its status: 400 bad input, 404 unknown order, 409
// wrong status, 503 for anything else (the backend failed; retry).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var in *InputError
	switch {
	case errors.As(err, &in):
		writeError(w, http.StatusBadRequest, in.Msg)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "order service temporarily unavailable; retry later")
	}
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, allow))
	}
}

// decodeJSON reads one JSON object of at most maxBody bytes into v,
// rejecting unknown fields and trailing data. It returns the HTTP status to
// answer with on error.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			return http.StatusBadRequest, errors.New("empty body; expected a JSON object")
		default:
			return http.StatusBadRequest, fmt.Errorf("malformed JSON body: %v", err)
		}
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("malformed JSON body: more than one JSON value")
	}
	return 0, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
