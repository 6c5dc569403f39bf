package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Service owns a connection, its subscriptions and their shutdown. Create
// it with New, declare streams with EnsureStream, add subscriptions with
// Subscribe, then block in Run.
type Service struct {
	cfg        Config
	log        *slog.Logger
	conn       *Conn
	ownsConn   bool
	middleware []Middleware
	observer   Observer

	mu       sync.Mutex
	subs     []*Subscription
	closed   bool
	draining atomic.Bool
	done     chan struct{}
}

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithMiddleware adds middleware to every subscription of the service,
// outside each subscription's own middleware.
func WithMiddleware(mws ...Middleware) Option {
	return func(s *Service) { s.middleware = append(s.middleware, mws...) }
}

// Use adds service-wide middleware for subscriptions created from now on,
// after any given with WithMiddleware (so inside them). It lets middleware
// that needs the service's connection, such as an idempotency store, join
// the service-wide chain:
//
//	svc, err := framework.New(ctx, cfg)
//	idem, err := middleware.NewIdempotency(ctx, svc, middleware.IdempotencyConfig{})
//	svc.Use(middleware.Defaults(middleware.Options{Idempotency: idem})...)
func (s *Service) Use(mws ...Middleware) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.middleware = append(s.middleware, mws...)
}

func (s *Service) serviceMiddleware() []Middleware {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Middleware(nil), s.middleware...)
}

// WithConn uses an existing connection instead of dialing; the service
// does not close it.
func WithConn(c *Conn) Option { return func(s *Service) { s.conn = c } }

// New validates cfg, connects (unless WithConn) and declares the
// dead-letter stream.
func New(ctx context.Context, cfg Config, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("service", cfg.ServiceName)
	if s.conn == nil {
		c, err := Connect(ctx, cfg, s.log)
		if err != nil {
			return nil, err
		}
		s.conn, s.ownsConn = c, true
	}
	if s.observer != nil {
		s.conn.observer = s.observer
	}
	if _, err := EnsureDeadLetterStream(ctx, s.conn); err != nil {
		if s.ownsConn {
			s.conn.Close()
		}
		return nil, fmt.Errorf("declare dead-letter stream: %w", err)
	}
	return s, nil
}

func (s *Service) publishConn() *Conn { return s.conn }

// Conn is the service's connection.
func (s *Service) Conn() *Conn { return s.conn }

// Config is the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Logger is the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

// EnsureStream declares a stream: see the package function EnsureStream.
func (s *Service) EnsureStream(ctx context.Context, spec StreamSpec) (jetstream.Stream, error) {
	return EnsureStream(ctx, s.conn, spec)
}

// Subscriptions lists the service's running subscriptions.
func (s *Service) Subscriptions() []*Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Subscription(nil), s.subs...)
}

func (s *Service) track(sub *Subscription) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.subs = append(s.subs, sub)
	return nil
}

func (s *Service) untrack(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.subs {
		if x == sub {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			return
		}
	}
}

// Draining reports whether shutdown has begun (readiness should fail).
func (s *Service) Draining() bool { return s.draining.Load() }

// Ready reports whether the service can do its work: connected, JetStream
// reachable and not shutting down. The error says why not.
func (s *Service) Ready(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if h := s.conn.Health(ctx); !h.OK() {
		return errors.New(h.Problem)
	}
	return nil
}

// Run blocks until ctx is cancelled or the process gets SIGINT or SIGTERM,
// then shuts down within Config.ShutdownTimeout.
func (s *Service) Run(ctx context.Context) error {
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-sigCtx.Done():
	case <-s.done:
		return nil
	}
	s.log.Info("shutting down", "budget", s.cfg.ShutdownTimeout)
	budget, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(budget)
}

// Shutdown stops every subscription (stop pulling, hand back buffered
// messages, let in-flight handlers finish until ctx ends, then hand back
// what is unfinished), flushes async publishes and drains the connection.
// No message is lost and none is left waiting for AckWait.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.mu.Unlock()
	s.draining.Store(true)
	defer close(s.done)

	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); sub.stop(ctx) }()
	}
	wg.Wait()
	var errs []error
	flushCtx, cancel := context.WithTimeout(context.Background(), max(time.Second, s.cfg.RequestTimeout))
	defer cancel()
	if err := s.conn.FlushAsync(flushCtx); err != nil {
		errs = append(errs, err)
	}
	if s.ownsConn {
		if err := s.conn.drain(flushCtx); err != nil {
			errs = append(errs, err)
		}
	}
	var total SubscriptionStats
	for _, sub := range subs {
		st := sub.Stats()
		total.Acked += st.Acked
		total.HandedBack += st.HandedBack
		total.DeadLettered += st.DeadLettered
	}
	s.log.Info("shut down", "acked", total.Acked, "dead_lettered", total.DeadLettered, "handed_back", total.HandedBack)
	return errors.Join(errs...)
}
