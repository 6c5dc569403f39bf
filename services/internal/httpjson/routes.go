package httpjson

import (
	"fmt"
	"net/http"
)

// MethodNotAllowed returns a handler that answers 405 with a JSON error and
// an Allow header set to allow (e.g. "GET, PUT"). Register it on a bare
// path after the method-specific patterns of that path.
func MethodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		Error(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, allow))
	}
}

// NoRoute answers 404 with a JSON error naming the method and path; mount
// it on "/" so unknown routes get JSON like every other error.
func NoRoute(w http.ResponseWriter, r *http.Request) {
	Error(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
}
