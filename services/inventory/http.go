package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/healthroutes"
	"github.com/jetkit/jetkit/services/internal/httpjson"
	"github.com/jetkit/jetkit/services/internal/kvstate"
)

// maxBody bounds request bodies; the API's bodies are a few bytes.
const maxBody = 4 << 10

// Handler serves the inventory HTTP API:
//
//	GET /stock          SKU levels sorted by SKU, a page at a time:
//	                    ?limit=N (default DefaultStockPage, at most MaxStockPage)
//	                    &cursor=<next_cursor of the previous page>;
//	                    {"items": [...], "next_cursor": "..."} (no next_cursor on the last page)
//	GET /stock/{sku}    one SKU's level
//	PUT /stock/{sku}    set the level: {"available": 42}
//	GET /livez          the process is up (framework/health)
//	GET /readyz         connected, JetStream, the consumers and both stores answer, not shutting down
//	GET /metrics        Prometheus metrics, when probes include health.WithMetrics
//
// PUT bodies must be Content-Type: application/json (415 otherwise).
// Errors are JSON: {"error": "..."}; see httpjson.Guard for paths that are
// not canonical and cross-origin browser requests.
func (s *Service) Handler(probes ...health.Option) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stock", s.listStock)
	mux.HandleFunc("GET /stock/{sku}", s.getStock)
	mux.HandleFunc("PUT /stock/{sku}", s.putStock)
	mux.HandleFunc("/stock", httpjson.MethodNotAllowed("GET"))
	mux.HandleFunc("/stock/{sku}", httpjson.MethodNotAllowed("GET, PUT"))
	stores := []health.Option{
		health.WithCheck("stock store", func(ctx context.Context) error { return kvstate.Writable(ctx, s.svc, s.stock) }),
		health.WithCheck("reservations store", func(ctx context.Context) error { return kvstate.Writable(ctx, s.svc, s.reservations) }),
	}
	healthroutes.Mount(mux, s.svc, append(stores, probes...)...)
	mux.HandleFunc("/", httpjson.NoRoute)
	return httpjson.Guard(mux)
}

// stockPage is the answer to GET /stock.
type stockPage struct {
	Items      []StockLevel `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

func (s *Service) listStock(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultStockPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxStockPage {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("limit %q: expected a number from 1 to %d", v, MaxStockPage))
			return
		}
		limit = n
	}
	cursor := q.Get("cursor")
	if cursor != "" {
		if err := events.ValidateSKU(cursor); err != nil {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("cursor: %v; pass the next_cursor of the previous page", err))
			return
		}
	}
	levels, next, err := s.StockPage(r.Context(), cursor, limit)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, stockPage{Items: levels, NextCursor: next})
}

func (s *Service) getStock(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if err := events.ValidateSKU(sku); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	l, err := s.Stock(r.Context(), sku)
	switch {
	case errors.Is(err, ErrUnknownSKU):
		httpjson.Error(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.unavailable(w, r, err)
	default:
		httpjson.Write(w, http.StatusOK, l)
	}
}

// setStockRequest is the body of PUT /stock/{sku}.
type setStockRequest struct {
	Available *int `json:"available"`
}

func (s *Service) putStock(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if err := events.ValidateSKU(sku); err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	var req setStockRequest
	if status, err := httpjson.Decode(w, r, maxBody, &req); err != nil {
		httpjson.Error(w, status, err.Error())
		return
	}
	if req.Available == nil {
		httpjson.Error(w, http.StatusBadRequest, `body must set "available", e.g. {"available": 42}`)
		return
	}
	if *req.Available < 0 || *req.Available > MaxStock {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("available %d: expected 0 to %d", *req.Available, MaxStock))
		return
	}
	l, err := s.SetStock(r.Context(), sku, *req.Available)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, l)
}

// unavailable answers a failure of the store: the request was fine, the
// backend was not, so the client may retry.
func (s *Service) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	httpjson.Error(w, http.StatusServiceUnavailable, "stock store unavailable; retry later")
}
