package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework/internal/observe"
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
	observer   observe.Observer
	registry   *registry // instance registrations (instances.go)

	mu         sync.Mutex
	subs       []*Subscription
	onShutdown []func(context.Context) error
	closed     bool           // Shutdown has begun: no new subscription
	starting   sync.WaitGroup // Subscribe calls between begin and finish
	draining   atomic.Bool
	shut       atomic.Bool // Shutdown has finished: publishing fails with ErrClosed
	done       chan struct{}

	// stopCtx is cancelled when Shutdown begins, ending subscriptions that
	// are still being set up.
	stopCtx    context.Context
	stopCancel context.CancelFunc
}

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// Use adds service-wide middleware for the subscriptions created from now
// on, inside what earlier calls added; SubscribeOptions.Middleware adds a
// subscription's own, inside all of these. Middleware that needs the
// service's connection, such as an idempotency store, joins the same way:
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
	s.registry = newRegistry(s)
	s.stopCtx, s.stopCancel = context.WithCancel(context.Background())
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
	if _, err := ensureDeadLetterStream(ctx, s.conn); err != nil {
		if s.ownsConn {
			s.conn.Close()
		}
		return nil, fmt.Errorf("declare dead-letter stream: %w", err)
	}
	return s, nil
}

func (s *Service) publishConn() (*Conn, error) {
	if s.shut.Load() {
		return nil, ErrClosed
	}
	return s.conn, nil
}

// Conn is the service's connection.
func (s *Service) Conn() *Conn { return s.conn }

// Config is the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Logger is the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

// EnsureStream declares a stream. A stream belongs to one service, its
// Owner (by default the calling service), which is recorded in the
// stream's metadata (jetkit.owner) when it is created:
//
//   - The owner's EnsureStream creates the stream if missing and updates
//     what JetStream can change in place (subjects, limits, replicas).
//   - Another service that names the owner in Owner (a consumer using the
//     producer's declaration) only creates the stream if it is missing,
//     recording the owner; otherwise it checks that the stream stores
//     Subjects and changes nothing: the owner's current declaration wins.
//   - Another service that claims the stream (Owner empty or its own name)
//     while the server records a different owner changes nothing: a
//     declaration that differs is refused with ErrIncompatibleChange
//     naming each field and the owner.
//   - A stream that records no owner (made with the nats CLI or an older
//     jetkit) is adopted by the first declaration, which may widen it but
//     not narrow it (fewer subjects, shorter MaxAge or Duplicates, lower
//     MaxBytes, MaxMsgs, MaxMsgSize or Replicas).
//
// A service that only consumes a stream need not declare it at all:
// Subscribe finds it by subject. Storage and retention cannot change in
// place; a differing declaration returns ErrIncompatibleChange naming the
// field.
//
// After Shutdown it returns ErrClosed.
func (s *Service) EnsureStream(ctx context.Context, spec StreamSpec) (jetstream.Stream, error) {
	if s.draining.Load() {
		return nil, fmt.Errorf("declare stream %s: %w", spec.Name, ErrClosed)
	}
	return declareStream(ctx, s.conn, spec)
}

// Subscriptions lists the service's running subscriptions.
func (s *Service) Subscriptions() []*Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Subscription(nil), s.subs...)
}

// untrack forgets a subscription stopped on its own (Subscription.Stop).
func (s *Service) untrack(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = slices.DeleteFunc(s.subs, func(x *Subscription) bool { return x == sub })
}

// beginSubscribe registers a subscription being set up, so that Shutdown
// waits for it to be tracked (or to fail) before stopping subscriptions.
// The returned context is cancelled when Shutdown begins.
func (s *Service) beginSubscribe() (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.starting.Add(1)
	return s.stopCtx, nil
}

// track adds a started subscription unless Shutdown has begun meanwhile;
// then the caller stops it. The caller calls s.starting.Done() after
// either, so Shutdown drains the connection only once it is settled.
func (s *Service) track(sub *Subscription) (tracked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.subs = append(s.subs, sub)
	s.registry.run()
	return true
}

// Ready reports whether the service can do its work: connected, JetStream
// reachable, dead-letter copies stored (not failing) and not shutting
// down. The error says why not.
func (s *Service) Ready(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if err := s.conn.health(ctx); err != nil {
		return err
	}
	return s.conn.deadLetters.problem(s.cfg.DeadLetterStream)
}

// Run blocks until ctx is done, then shuts the service down within
// Config.ShutdownTimeout (see Shutdown) and returns Shutdown's error. It
// does not watch process signals: give it a context that ends on them,
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	err := svc.Run(ctx)
//
// If Shutdown is called meanwhile, Run returns nil once it has finished.
func (s *Service) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.done:
		return nil
	}
	s.log.Info("shutting down", "budget", s.cfg.ShutdownTimeout)
	budget, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(budget)
}

// OnShutdown registers f to run when Shutdown begins, before the
// subscriptions stop, with Shutdown's context: for what feeds the service
// and must stop first, such as its HTTP API (http.Server.Shutdown). The
// functions run in the order registered; their errors join Shutdown's.
func (s *Service) OnShutdown(f func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onShutdown = append(s.onShutdown, f)
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
	s.mu.Unlock()
	s.draining.Store(true)
	s.stopCancel()    // subscriptions still being set up give up now
	s.starting.Wait() // and are tracked or failed once this returns
	s.mu.Lock()
	subs, first := slices.Clone(s.subs), slices.Clone(s.onShutdown)
	s.mu.Unlock()
	defer close(s.done)
	defer s.shut.Store(true)

	var errs []error
	for _, f := range first {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}

	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); sub.stop(ctx) }()
	}
	wg.Wait()
	s.registry.stop()
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
