// Package embedded runs nats-servers with JetStream inside the process:
// one server (Run) or a cluster of them (RunCluster), listening on
// 127.0.0.1, for local development (jetkit dev) and for tests. It does not
// import package testing, so a program can link it; tests use the
// t-helpers of package testenv, which start these servers and stop them
// at the test's cleanup.
//
// It is meant for development and tests, not production: the servers
// listen on the loopback address only, with no authentication unless
// Options.Configure adds it.
//
//	srv, err := embedded.Run(embedded.Options{})
//	if err != nil {
//		return err
//	}
//	defer srv.Shutdown()
//	svc, err := framework.New(ctx, srv.Config("order"))
package embedded

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetkit/jetkit/framework"
)

// Options configure an embedded server. The zero value is a fresh server
// on a random 127.0.0.1 port with a temporary file store.
type Options struct {
	// Port to listen on; 0 picks a free one (-1 in nats-server terms).
	Port int
	// StoreDir keeps JetStream data; empty uses a temporary directory that
	// Shutdown removes.
	StoreDir string
	// ServerName names the server; defaults to "jetkit-embedded".
	ServerName string
	// MaxPayload overrides the server's max_payload (default 1 MiB).
	MaxPayload int32
	// Configure adjusts the nats-server options before start (auth, TLS, ...).
	Configure func(*server.Options)
}

// Server is a running embedded nats-server.
type Server struct {
	// NS is the nats-server, for advanced use.
	NS      *server.Server
	opts    *server.Options
	tempDir string
}

// Run starts an embedded server and waits until it accepts connections.
func Run(o Options) (*Server, error) {
	opts := &server.Options{
		Host:       "127.0.0.1",
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		ServerName: o.ServerName,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: o.MaxPayload,
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if opts.ServerName == "" {
		opts.ServerName = "jetkit-embedded"
	}
	s := &Server{opts: opts}
	if opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "jetkit-js-")
		if err != nil {
			return nil, fmt.Errorf("embedded: temporary store: %w", err)
		}
		opts.StoreDir, s.tempDir = dir, dir
	}
	if o.Configure != nil {
		o.Configure(opts)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("embedded: configure nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		s.cleanup()
		return nil, errors.New("embedded: nats-server not ready for connections within 10s")
	}
	s.NS = ns
	return s, nil
}

// URL is the client URL, nats://127.0.0.1:<port>.
func (s *Server) URL() string { return s.NS.ClientURL() }

// StoreDir is the JetStream store directory.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Config returns a framework.Config pointing at this server, with short
// timeouts suited to tests and local runs.
func (s *Server) Config(serviceName string) framework.Config {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = serviceName
	cfg.URLs = []string{s.URL()}
	cfg.RequestTimeout = 5 * time.Second
	return cfg
}

// Shutdown stops the server and removes a temporary store.
func (s *Server) Shutdown() {
	s.NS.Shutdown()
	s.NS.WaitForShutdown()
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}
