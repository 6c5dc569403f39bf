package order

import (
	"context"
	"errors"
	"net/http"

	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/healthroutes"
	"github.com/jetkit/jetkit/services/internal/httpjson"
	"github.com/jetkit/jetkit/services/internal/kvstate"
)

// maxBody bounds request bodies: enough for events.MaxLines lines.
const maxBody = 64 << 10

// Handler serves the order HTTP API:
//
//	POST /orders              {"customer_id": "c-1", "items": [{"sku": "apple", "qty": 2}]} → 202 {"id", "status": "pending"}
//	GET  /orders/{id}         the order, its status and history
//	POST /orders/{id}/cancel  cancel a pending or confirmed order
//	GET  /livez               the process is up (framework/health)
//	GET  /readyz              connected, JetStream, the consumers and the orders store answer, not shutting down
//	GET  /metrics             Prometheus metrics, when probes include health.WithMetrics
//
// POST /orders takes Content-Type: application/json only (415 otherwise),
// and the cancel no body at all. Errors are JSON: {"error": "..."}; bad
// input is a 4xx and publishes nothing. See httpjson.Guard for paths that
// are not canonical and cross-origin browser requests.
func (s *Service) Handler(probes ...health.Option) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.place)
	mux.HandleFunc("GET /orders/{id}", s.get)
	mux.HandleFunc("POST /orders/{id}/cancel", s.cancel)
	mux.HandleFunc("/orders", httpjson.MethodNotAllowed("POST"))
	mux.HandleFunc("/orders/{id}", httpjson.MethodNotAllowed("GET"))
	mux.HandleFunc("/orders/{id}/cancel", httpjson.MethodNotAllowed("POST"))
	store := health.WithCheck("orders store", func(ctx context.Context) error { return kvstate.Writable(ctx, s.svc, s.orders) })
	healthroutes.Mount(mux, s.svc, append([]health.Option{store}, probes...)...)
	mux.HandleFunc("/", httpjson.NoRoute)
	return httpjson.Guard(mux)
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
	if status, err := httpjson.Decode(w, r, maxBody, &req); err != nil {
		httpjson.Error(w, status, err.Error())
		return
	}
	o, err := s.Place(r.Context(), req.CustomerID, req.Items)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/orders/"+o.ID)
	httpjson.Write(w, http.StatusAccepted, PlaceResponse{ID: o.ID, Status: o.Status})
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	o, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, o)
}

func (s *Service) cancel(w http.ResponseWriter, r *http.Request) {
	// The cancel takes no body; refuse one rather than ignore it.
	if err := httpjson.NoBody(r, "POST /orders/{id}/cancel"); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	o, err := s.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, o)
}

// fail maps an error to its status: 400 bad input, 404 unknown order, 409
// wrong status, 503 for anything else (the backend failed; retry).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var in *InputError
	switch {
	case errors.As(err, &in):
		httpjson.Error(w, http.StatusBadRequest, in.Msg)
	case errors.Is(err, ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		httpjson.Error(w, http.StatusConflict, err.Error())
	default:
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		httpjson.Error(w, http.StatusServiceUnavailable, "order service temporarily unavailable; retry later")
	}
}
