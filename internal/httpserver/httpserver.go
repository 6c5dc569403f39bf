// Package httpserver builds the HTTP servers jetkit runs: the sample
// services' APIs, jetkit dev and capacity, and framework/health's probe
// server (which generated services use). Every one bounds how long a
// client may take to send a request, to read the answer and to idle
// between requests, and how many connections are open at once, so that
// slow or idle clients cannot hold the process's file descriptors.
package httpserver

import (
	"context"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// The defaults of Options.
const (
	// DefaultReadHeaderTimeout bounds the request line and headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds the whole request, body included.
	DefaultReadTimeout = 15 * time.Second
	// DefaultWriteTimeout bounds the handler and writing its answer.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection idle this long.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes bounds the request line and headers.
	DefaultMaxHeaderBytes = 64 << 10
	// maxConnsCap is the most connections served at once by default; the
	// default is lower when the process may open few files (see
	// defaultMaxConns).
	maxConnsCap = 1024
)

// Options tune a Server; zero values mean the defaults above.
type Options struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConns is the most connections served at once. Further clients
	// wait in the listen backlog, holding no descriptor of this process,
	// until a connection closes. Default: half the open-files limit, at
	// most 1024.
	MaxConns int
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxConns <= 0 {
		o.MaxConns = defaultMaxConns()
	}
	return o
}

// Server is an http.Server with the timeouts and connection limit of its
// Options.
type Server struct {
	srv      *http.Server
	maxConns int
}

// New returns a server for h.
func New(h http.Handler, o Options) *Server {
	o = o.withDefaults()
	return &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    DefaultMaxHeaderBytes,
		},
		maxConns: o.MaxConns,
	}
}

// Serve serves on ln, at most MaxConns connections at once, until
// Shutdown; then it returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(netutil.LimitListener(ln, s.maxConns))
}

// Shutdown stops accepting connections, then waits for the requests in
// progress to finish, bounded by ctx (http.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }
