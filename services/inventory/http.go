package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/services/events"
)

// maxBody bounds request bodies; the API's bodies are a few bytes.
const maxBody = 4 << 10

// Handler serves the inventory HTTP API:
//
//	GET /stock          every SKU's level
//	GET /stock/{sku}    one SKU's level
//	PUT /stock/{sku}    set the level: {"available": 42}
//	GET /livez          the process is up (framework/health)
//	GET /readyz         connected, JetStream and the consumers answer, not shutting down
//	GET /metrics        Prometheus metrics, when probes include health.WithMetrics
//
// Errors are JSON: {"error": "..."}.
func (s *Service) Handler(probes ...health.Option) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stock", s.listStock)
	mux.HandleFunc("GET /stock/{sku}", s.getStock)
	mux.HandleFunc("PUT /stock/{sku}", s.putStock)
	mux.HandleFunc("/stock", methodNotAllowed("GET"))
	mux.HandleFunc("/stock/{sku}", methodNotAllowed("GET, PUT"))
	h := health.New(s.svc, probes...)
	mux.Handle("GET /livez", h)
	mux.Handle("GET /readyz", h)
	mux.Handle("GET /metrics", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Service) listStock(w http.ResponseWriter, r *http.Request) {
	levels, err := s.StockLevels(r.Context())
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": levels})
}

func (s *Service) getStock(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if err := events.ValidateSKU(sku); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	l, err := s.Stock(r.Context(), sku)
	switch {
	case errors.Is(err, ErrUnknownSKU):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.unavailable(w, r, err)
	default:
		writeJSON(w, http.StatusOK, l)
	}
}

// setStockRequest is the body of PUT /stock/{sku}.
type setStockRequest struct {
	Available *int `json:"available"`
}

func (s *Service) putStock(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if err := events.ValidateSKU(sku); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req setStockRequest
	if status, err := decodeJSON(w, r, &req); err != nil {
		writeError(w, status, err.Error())
		return
	}
	if req.Available == nil {
		writeError(w, http.StatusBadRequest, `body must set "available", e.g. {"available": 42}`)
		return
	}
	if *req.Available < 0 || *req.Available > MaxStock {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("available %d: expected 0 to %d", *req.Available, MaxStock))
		return
	}
	l, err := s.SetStock(r.Context(), sku, *req.Available)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// unavailable answers a failure of the store: the request was fine, the
// backend was not, so the client may retry.
func (s *Service) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusServiceUnavailable, "stock store unavailable; retry later")
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
