package httpjson

import (
	"fmt"
	"net/http"
	"path"
)

// Guard wraps an API's mux so that every answer stays JSON and no web page
// can change state cross-site:
//
//   - a path that is not in canonical form (/stock/., //orders, /a/../b),
//     which http.ServeMux would redirect with an HTML body, is answered
//     400 with a JSON error naming the canonical path;
//   - a cross-origin POST, PUT, PATCH or DELETE from a browser (by its
//     Sec-Fetch-Site or Origin header, http.CrossOriginProtection) is
//     answered 403 with a JSON error. Clients that are not browsers (curl,
//     services) send neither header and pass.
func Guard(mux http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && p != canonicalPath(p) {
			Error(w, http.StatusBadRequest, fmt.Sprintf("path %q is not canonical; use %q", p, canonicalPath(p)))
			return
		}
		if err := cop.Check(r); err != nil {
			Error(w, http.StatusForbidden, fmt.Sprintf("%s %s: cross-origin request refused: %v", r.Method, r.URL.Path, err))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// canonicalPath is the path http.ServeMux would redirect p to: rooted,
// without . or .. elements or repeated slashes, keeping a trailing slash.
func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
