// Package healthroutes mounts the framework's health endpoints on a sample
// service's HTTP API.
package healthroutes

import (
	"net/http"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
)

// Mount serves GET /livez, GET /readyz and GET /metrics (the last only
// answers when probes include health.WithMetrics) on mux, from one
// framework/health handler for svc.
func Mount(mux *http.ServeMux, svc *framework.Service, probes ...health.Option) {
	h := health.New(svc, probes...)
	mux.Handle("GET /livez", h)
	mux.Handle("GET /readyz", h)
	mux.Handle("GET /metrics", h)
}
