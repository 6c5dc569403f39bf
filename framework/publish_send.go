package framework

import (
	"sync"
	"sync/atomic"
	"time"
)

// sendReaper ends synchronous publish sends that outlive their attempt
// timeout, with one timer for the whole connection instead of one per
// send: arming and stopping a timer on every publish (context.WithTimeout)
// was a measurable part of a sync publish's own cost. The timer is set
// for the earliest deadline among the sends under way; when it fires it
// ends the sends that are due (their guard's cancel) and is set again for
// the next, so while publishes keep completing in time it fires about
// once per attempt timeout, and not at all when nothing is sent.
type sendReaper struct {
	next  atomic.Int64 // unix nanos the timer is set for; 0: not set
	mu    sync.Mutex   // guards timer; taken after permissionWatch.mu
	timer *time.Timer
}

// due makes sure the timer fires by deadline.
func (r *sendReaper) due(w *permissionWatch, deadline time.Time) {
	d := deadline.UnixNano()
	if n := r.next.Load(); n != 0 && n <= d {
		return // set for an earlier send: it will look at this one then (hot path)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.next.Load(); n != 0 && n <= d {
		return
	}
	r.next.Store(d)
	if r.timer == nil {
		r.timer = time.AfterFunc(time.Until(deadline), func() { r.reap(w) })
		return
	}
	r.timer.Reset(time.Until(deadline))
}

// reap ends every send past its deadline and sets the timer for the
// earliest one left. It first marks the timer unset, so that a send armed
// while it runs either is seen by its scan or sets the timer itself.
func (r *sendReaper) reap(w *permissionWatch) {
	r.mu.Lock()
	r.next.Store(0)
	r.mu.Unlock()
	w.mu.Lock()
	now := time.Now()
	var next time.Time
	for g := range w.waiters {
		g.mu.Lock()
		switch {
		case g.armed == nil || g.deadline.IsZero():
		case !now.Before(g.deadline):
			g.expired = true
			g.armed()
			g.armed = nil
		case next.IsZero() || g.deadline.Before(next):
			next = g.deadline
		}
		g.mu.Unlock()
	}
	w.mu.Unlock()
	if !next.IsZero() {
		r.due(w, next)
	}
}
