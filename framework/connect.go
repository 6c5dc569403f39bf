package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/jetkit/jetkit/framework/internal/observe"
	"github.com/jetkit/jetkit/framework/internal/testhook"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a NATS connection with its JetStream context and a health view.
// Connect creates it; Service owns one.
type Conn struct {
	// NC is the underlying core NATS connection.
	NC *nats.Conn
	// JS is the JetStream API on NC.
	JS jetstream.JetStream

	cfg       Config
	log       *slog.Logger
	asyncErrs *asyncErrors
	observer  observe.Observer // instrumentation hooks; nil costs nothing (observer.go)

	perms permissionWatch // permission violations for waiting calls (permission.go)

	record testhook.Record // non-nil: a frameworktest recorder, no connection (testhooks.go)
	// declared holds the names of the streams EnsureStream reconciled on
	// this connection: their info may be read (Subscription.sizePull).
	declared    sync.Map
	deadLetters deadLetterHealth // consumers whose dead-letter copies fail (deadletter.go)
}

// Connect dials the servers in cfg.URLs with cfg's credentials and TLS,
// logs connection events through log, and returns once connected (or, with
// RetryOnFailedConnect, once the first attempt is under way). ctx bounds
// the initial dial.
func Connect(ctx context.Context, cfg Config, log *slog.Logger) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Conn{cfg: cfg, log: log, asyncErrs: &asyncErrors{}}
	opts, err := c.natsOptions()
	if err != nil {
		return nil, err
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
		done <- result{nc, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to NATS %s: %w", c.serverList(), ctx.Err())
	}
	if res.err != nil {
		return nil, fmt.Errorf("connect to NATS %s as %q: %w (check %s and the credentials)", c.serverList(), c.clientName(), res.err, cfg.envName("NATS_URL"))
	}
	c.NC = res.nc
	js, err := jetstream.New(res.nc,
		jetstream.WithDefaultTimeout(cfg.RequestTimeout),
		jetstream.WithPublishAsyncMaxPending(cfg.PublishAsyncMaxPending),
		jetstream.WithPublishAsyncErrHandler(c.asyncErrs.record),
	)
	if err != nil {
		res.nc.Close()
		return nil, fmt.Errorf("open JetStream on %s: %w", c.serverList(), err)
	}
	c.JS = js
	log.Info("nats connected", "url", redactURL(res.nc.ConnectedUrl()), "server", res.nc.ConnectedServerName(), "client", c.clientName())
	return c, nil
}

// Close closes the connection at once. Prefer Service shutdown, which drains.
func (c *Conn) Close() { c.NC.Close() }

func (c *Conn) clientName() string {
	if c.cfg.ClientName != "" {
		return c.cfg.ClientName
	}
	return c.cfg.ServiceName
}

func (c *Conn) serverList() string {
	out := make([]string, len(c.cfg.URLs))
	for i, u := range c.cfg.URLs {
		out[i] = redactURL(u)
	}
	return strings.Join(out, ",")
}

func (c *Conn) natsOptions() ([]nats.Option, error) {
	cfg := c.cfg
	opts := []nats.Option{
		nats.Name(c.clientName()),
		nats.CustomInboxPrefix(cfg.inboxPrefix()), // replies only this service may read (permissions)
		nats.Timeout(cfg.ConnectTimeout),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.MaxReconnects(cfg.MaxReconnects),
		nats.RetryOnFailedConnect(cfg.RetryOnFailedConnect),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil { // a deliberate Close or Drain
				c.log.Debug("nats disconnected by the client")
				return
			}
			c.log.Warn("nats disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("nats reconnected", "url", redactURL(nc.ConnectedUrl()))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			c.log.Info("nats connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if c.perms.record(err) {
				c.log.Error("nats permission denied", "error", err)
				return
			}
			c.log.Error("nats async error", "subject", subj, "error", err)
		}),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %w (expected a file holding an NKey user seed, SU...)", ErrInvalidConfig, cfg.envName("NATS_NKEY_FILE"), cfg.NKeyFile, err)
		}
		opts = append(opts, o)
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password.Reveal()))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token.Reveal()))
	}
	if cfg.TLSCAFile != "" || cfg.TLSCertFile != "" || cfg.TLSServerName != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, cfg.envName("NATS_TLS_CA_FILE"), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s %q holds no PEM certificate", ErrInvalidConfig, cfg.envName("NATS_TLS_CA_FILE"), cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s/%s: %w", ErrInvalidConfig, cfg.envName("NATS_TLS_CERT_FILE"), cfg.envName("NATS_TLS_KEY_FILE"), err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// drain flushes outgoing data (acks, publishes) and closes the connection,
// bounded by ctx.
func (c *Conn) drain(ctx context.Context) error {
	closed := make(chan struct{})
	c.NC.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := c.NC.Drain(); err != nil {
		c.NC.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		c.NC.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}
