package framework

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/internal/rawperm"
)

// PermissionError is a NATS permissions violation: the server refused to
// let this connection publish or subscribe to Subject. NATS reports it
// asynchronously and the refused request would otherwise just time out;
// jetkit ends the call at once and returns this instead.
type PermissionError struct {
	// Operation is "publish" or "subscribe".
	Operation string
	// Subject is the subject the server refused.
	Subject string
}

// Error names the subject and the permission to grant.
func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s: the NATS server refused to let this user %s %q; grant %s permission on it in the user's authorization (see docs/security.md)",
		ErrPermissionDenied, e.Operation, e.Subject, e.Operation)
}

// Unwrap lets errors.Is(err, ErrPermissionDenied) and
// errors.Is(err, nats.ErrPermissionViolation) match.
func (e *PermissionError) Unwrap() []error {
	return []error{ErrPermissionDenied, nats.ErrPermissionViolation}
}

// permissionRe matches the server's -ERR text, e.g.
// Permissions Violation for Publish to "$JS.API.STREAM.CREATE.ORDERS".
var permissionRe = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// asPermissionError extracts the violation from a nats.go error, or nil.
func asPermissionError(err error) *PermissionError {
	var pe *PermissionError
	if errors.As(err, &pe) {
		return pe
	}
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	m := permissionRe.FindStringSubmatch(err.Error())
	if m == nil {
		return &PermissionError{Operation: "use", Subject: "(unknown subject)"}
	}
	op := "publish"
	if strings.EqualFold(m[1], "subscription") {
		op = "subscribe"
	}
	return &PermissionError{Operation: op, Subject: m[2]}
}

// permissionWatch hands permission violations, which nats.go reports only
// to the connection's error handler, to the calls waiting on them.
type permissionWatch struct {
	mu      sync.Mutex
	waiters map[*permissionGuard]struct{}
	// routed are the last violations record handed out (their error
	// text): a call that did not get one does not take it from the
	// connection's last error either.
	routed [16]string
	next   int

	sends sendReaper // ends publish sends past their deadline (publish_send.go)
}

// record offers err to the waiting calls whose subjects it concerns most
// specifically, and reports whether err was a permission violation. A call
// watching a whole API ("$JS.") does not take a refusal meant for a call
// watching that very subject: the instance registrations run beside
// Subscribe, and their refusal must not fail it.
func (w *permissionWatch) record(err error) bool {
	pe := asPermissionError(err)
	if pe == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routed[w.next%len(w.routed)] = err.Error()
	w.next++
	best := w.longestMatchLocked(pe.Subject)
	for g := range w.waiters {
		if n := g.matchLen(pe.Subject); n > 0 && n == best {
			g.offer(pe)
		}
	}
	return true
}

// longestMatchLocked is the longest prefix of subject a waiting call
// watches (0: none).
func (w *permissionWatch) longestMatchLocked(subject string) int {
	best := 0
	for g := range w.waiters {
		best = max(best, g.matchLen(subject))
	}
	return best
}

// claims reports whether the violation text on subject, read from the
// connection's last error, is g's: record has not handed it out already
// (had it been g's, g would hold it), g watches the subject, and no
// waiting call watches it more specifically.
func (w *permissionWatch) claims(g *permissionGuard, subject, text string) bool {
	n := g.matchLen(subject)
	if n == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.routed {
		if r == text {
			return false
		}
	}
	return n >= w.longestMatchLocked(subject)
}

// permissionGuard watches one call (a provisioning step, a publish) for
// violations on the subjects it uses.
type permissionGuard struct {
	conn     *Conn
	prefixes []string
	pfx      [2]string               // a publish guard's prefixes (no separate allocation)
	cancel   context.CancelCauseFunc // ends watchPermissions' ctx; nil for a publish guard
	before   string                  // the connection's last error when the call began

	mu       sync.Mutex
	seen     *PermissionError
	armed    context.CancelFunc // a publish guard: ends the send under way
	deadline time.Time          // when the send under way times out (sendReaper)
	expired  bool               // the send under way was ended by its deadline
	refuse   chan struct{}      // closed once seen is set; made only when a publish pauses between sends
}

// watchPermissions starts a guard for subjects beginning with one of
// prefixes; a violation on one ends the returned ctx at once. Call done
// when the call returns, and explain on its error.
func (c *Conn) watchPermissions(ctx context.Context, prefixes ...string) (context.Context, *permissionGuard) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &permissionGuard{conn: c, prefixes: prefixes, cancel: cancel}
	c.perms.add(g)
	return ctx, g
}

// watchPublish starts a guard for one synchronous publish: violations on
// subject or on the reply inbox. It has no context of its own, which would
// cost a second context per publish: each send arms it with the cancel
// func of that send's context (arm), so a violation ends the send waiting
// at that moment. Call done when the publish returns, and explain on its
// error.
func (c *Conn) watchPublish(subject string) *permissionGuard {
	g := &permissionGuard{conn: c}
	g.pfx = [2]string{subject, c.inboxPrefix()}
	g.prefixes = g.pfx[:]
	c.perms.add(g)
	return g
}

// add registers g; violations are offered to it until g.done.
func (w *permissionWatch) add(g *permissionGuard) {
	if le := g.conn.NC.LastError(); le != nil {
		g.before = le.Error()
	}
	w.mu.Lock()
	if w.waiters == nil {
		w.waiters = map[*permissionGuard]struct{}{}
	}
	w.waiters[g] = struct{}{}
	w.mu.Unlock()
}

// arm makes a violation call cancel, and the connection's sendReaper call
// it at deadline, for the send about to start; it returns the violation
// instead when one was already seen.
func (g *permissionGuard) arm(cancel context.CancelFunc, deadline time.Time) *PermissionError {
	g.mu.Lock()
	if g.seen != nil {
		g.mu.Unlock()
		return g.seen
	}
	g.armed, g.deadline, g.expired = cancel, deadline, false
	g.mu.Unlock()
	g.conn.perms.sends.due(&g.conn.perms, deadline)
	return nil
}

// disarm ends the send armed last and reports whether its deadline ended it.
func (g *permissionGuard) disarm() (expired bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.deadline = nil, time.Time{}
	return g.expired
}

// refused is closed once a violation is seen.
func (g *permissionGuard) refused() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refuse == nil {
		g.refuse = make(chan struct{})
		if g.seen != nil {
			close(g.refuse)
		}
	}
	return g.refuse
}

// watchCall watches one call made on the raw connection: the returned ctx
// ends when the server refuses a subject starting with one of prefixes;
// done returns the call's error wrapped with the *PermissionError that
// caused it. jetkit's own programs reach it through internal/rawperm.
func (c *Conn) watchCall(ctx context.Context, prefixes ...string) (context.Context, func(error) error) {
	ctx, g := c.watchPermissions(ctx, prefixes...)
	return ctx, func(err error) error {
		err = g.explain(err)
		g.done()
		return err
	}
}

func init() {
	rawperm.Register(func(ctx context.Context, conn any) (context.Context, func(error) error) {
		c := conn.(*Conn)
		return c.watchCall(ctx, c.jsPrefixes()...)
	})
}

// jsPrefixes are the subjects JetStream API calls and their replies use.
func (c *Conn) jsPrefixes() []string { return []string{"$JS.", "$KV.", c.inboxPrefix()} }

// inboxPrefix is where replies (and pulled messages) arrive.
func (c *Conn) inboxPrefix() string {
	if p := c.NC.Opts.InboxPrefix; p != "" {
		return p + "."
	}
	return nats.InboxPrefix
}

func (g *permissionGuard) matches(subject string) bool { return g.matchLen(subject) > 0 }

// matchLen is the length of the longest of g's prefixes subject begins
// with (0: none).
func (g *permissionGuard) matchLen(subject string) int {
	n := 0
	for _, p := range g.prefixes {
		if len(p) > n && strings.HasPrefix(subject, p) {
			n = len(p)
		}
	}
	return n
}

func (g *permissionGuard) offer(pe *PermissionError) {
	if !g.matches(pe.Subject) {
		return
	}
	g.mu.Lock()
	if g.seen == nil {
		g.seen = pe
		if g.refuse != nil {
			close(g.refuse)
		}
	}
	armed := g.armed
	g.mu.Unlock()
	if armed != nil {
		armed()
	}
	if g.cancel != nil {
		g.cancel(pe)
	}
}

// violation is the first violation seen for the guarded subjects: from the
// error handler, or from the connection's last error (set synchronously,
// so it is current right after a flush).
func (g *permissionGuard) violation() *PermissionError {
	g.mu.Lock()
	seen := g.seen
	g.mu.Unlock()
	if seen != nil {
		return seen
	}
	if le := g.conn.NC.LastError(); le != nil && le.Error() != g.before {
		if pe := asPermissionError(le); pe != nil {
			if g.conn.perms.claims(g, pe.Subject, le.Error()) {
				return pe
			}
			// claims waits for a record under way, which may have handed
			// the violation to g meanwhile.
			g.mu.Lock()
			seen = g.seen
			g.mu.Unlock()
			return seen
		}
	}
	return nil
}

// explain turns err into one naming the refused subject when a violation
// caused it; other errors pass unchanged.
func (g *permissionGuard) explain(err error) error {
	if err == nil {
		return nil // before the errors.As target, which escapes: no allocation on success
	}
	var already *PermissionError
	if errors.As(err, &already) {
		return err
	}
	if pe := g.violation(); pe != nil {
		return fmt.Errorf("%w; cause: %w", err, pe)
	}
	return err
}

// confirm flushes the connection, so that the server has answered every
// request sent so far, and reports a violation among them.
func (g *permissionGuard) confirm(ctx context.Context) error {
	if err := g.conn.NC.FlushWithContext(ctx); err != nil {
		return g.explain(fmt.Errorf("flush NATS connection: %w", err))
	}
	if pe := g.violation(); pe != nil {
		return pe
	}
	return nil
}

// done stops watching.
func (g *permissionGuard) done() {
	w := &g.conn.perms
	w.mu.Lock()
	delete(w.waiters, g)
	w.mu.Unlock()
	if g.cancel != nil {
		g.cancel(nil)
	}
}
