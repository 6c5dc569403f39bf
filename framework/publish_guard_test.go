package framework

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/internal/wire"
)

// A publish guard has no context of its own: a violation must end the send
// it is armed with, stop the next send, and wake a pause between sends.
func TestPublishGuardEndsTheArmedSendAndRefusesTheNext(t *testing.T) {
	g := &permissionGuard{conn: &Conn{}}
	g.pfx = [2]string{"orders.created.v1", nats.InboxPrefix}
	g.prefixes = g.pfx[:]

	send, cancel := context.WithCancel(context.Background())
	defer cancel()
	if pe := g.arm(cancel, time.Now().Add(time.Hour)); pe != nil {
		t.Fatalf("arm before any violation: %v", pe)
	}
	pause := g.refused()
	g.offer(&PermissionError{Operation: "publish", Subject: "payments.>"}) // not ours
	if send.Err() != nil {
		t.Fatal("a violation on another subject ended the send")
	}
	select {
	case <-pause:
		t.Fatal("a violation on another subject woke the pause")
	default:
	}

	g.offer(&PermissionError{Operation: "publish", Subject: "orders.created.v1"})
	if send.Err() == nil {
		t.Fatal("the violation did not end the armed send")
	}
	select {
	case <-pause:
	case <-time.After(10 * time.Second):
		t.Fatal("the violation did not wake the pause")
	}
	select {
	case <-g.refused(): // made after the violation: closed already
	default:
		t.Fatal("refused() made after the violation is not closed")
	}
	_, next := context.WithCancel(context.Background())
	defer next()
	pe := g.arm(next, time.Now().Add(time.Hour))
	if pe == nil || pe.Subject != "orders.created.v1" {
		t.Fatalf("arm after the violation = %v, want the violation on orders.created.v1", pe)
	}
	// A second violation keeps the first and does not close twice.
	g.offer(&PermissionError{Operation: "publish", Subject: nats.InboxPrefix + "x"})
	if g.seen.Subject != "orders.created.v1" {
		t.Fatalf("seen = %v, want the first violation", g.seen)
	}
}

// outgoingFits may only say yes where checkOutgoing would: keys and sizes
// it passes must pass checkOutgoing too.
func TestOutgoingFitsAgreesWithCheckOutgoing(t *testing.T) {
	c := guardTestConn(t)
	max := int(c.NC.MaxPayload())
	base := func() nats.Header {
		h := make(nats.Header)
		writeEnvelope(h, benchEnvelope())
		return h
	}
	cases := map[string]func(h nats.Header) []byte{
		"envelope only": func(nats.Header) []byte { return make([]byte, 128) },
		"app header":    func(h nats.Header) []byte { h["x-tenant"] = []string{"acme"}; return nil },
		"traceparent": func(h nats.Header) []byte {
			h["traceparent"] = []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			return nil
		},
		"space in key":  func(h nats.Header) []byte { h["bad key"] = []string{"v"}; return nil },
		"colon in key":  func(h nats.Header) []byte { h["bad:key"] = []string{"v"}; return nil },
		"empty key":     func(h nats.Header) []byte { h[""] = []string{"v"}; return nil },
		"non-ASCII key": func(h nats.Header) []byte { h["clé"] = []string{"v"}; return nil },
		"control key":   func(h nats.Header) []byte { h["a\x01"] = []string{"v"}; return nil },
		"too large":     func(nats.Header) []byte { return make([]byte, max) },
		"just fits":     func(h nats.Header) []byte { return make([]byte, max-headerSizeBound(h)) },
		"large header":  func(h nats.Header) []byte { h["x-blob"] = []string{string(make([]byte, max))}; return nil },
		"wire.MaxHeaders values": func(h nats.Header) []byte {
			for i := len(h); i < wire.MaxHeaders; i++ {
				h[fmt.Sprintf("x-%d", i)] = []string{"v"}
			}
			return nil
		},
		"one value over wire.MaxHeaders": func(h nats.Header) []byte {
			for i := len(h); i <= wire.MaxHeaders; i++ {
				h[fmt.Sprintf("x-%d", i)] = []string{"v"}
			}
			return nil
		},
		"headers over wire.MaxHeaderBytes": func(h nats.Header) []byte {
			h["x-blob"] = []string{string(make([]byte, wire.MaxHeaderBytes))}
			return nil
		},
	}
	for name, edit := range cases {
		h := base()
		msg := &nats.Msg{Subject: "orders.created.v1", Header: h}
		msg.Data = edit(h)
		fits, err := outgoingFits(c, msg), checkOutgoing(c, msg, "orders.created.v1", "id")
		if fits && err != nil {
			t.Errorf("%s: outgoingFits says yes, checkOutgoing: %v", name, err)
		}
		if !fits && err == nil {
			t.Errorf("%s: outgoingFits says no to a message checkOutgoing accepts", name)
		}
	}
}

// guardTestConn connects to an embedded nats-server started for the test
// (testenv imports this package, so it cannot be used here).
func guardTestConn(t *testing.T) *Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded nats-server not ready within 10s")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	cfg := DefaultConfig()
	cfg.ServiceName = "guard"
	cfg.URLs = []string{ns.ClientURL()}
	c, err := Connect(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// The connection's one send timer ends each send at (not before) its own
// deadline, whatever order the sends start in, leaves alone sends that
// finish in time, and is set again by sends started after it went idle.
func TestSendReaperEndsEachSendAtItsDeadline(t *testing.T) {
	c := guardTestConn(t)
	check := func(deadlines []time.Duration) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(deadlines))
		for _, d := range deadlines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := c.watchPublish("orders.created.v1")
				defer g.done()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				deadline := time.Now().Add(d)
				if pe := g.arm(cancel, deadline); pe != nil {
					errs <- pe
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(d + 20*time.Second):
					errs <- fmt.Errorf("send with a %s deadline still running %s later", d, d+20*time.Second)
					return
				}
				if now := time.Now(); now.Before(deadline) {
					errs <- fmt.Errorf("send ended %s before its deadline", deadline.Sub(now))
				}
				if !g.disarm() {
					errs <- fmt.Errorf("send ended by its deadline not reported as expired")
				}
			}()
		}
		// A send that completes in time is neither ended nor reported expired.
		g := c.watchPublish("orders.created.v1")
		ctx, cancel := context.WithCancel(context.Background())
		g.arm(cancel, time.Now().Add(time.Hour))
		wg.Wait()
		if ctx.Err() != nil || g.disarm() {
			t.Error("a send within its deadline was ended")
		}
		cancel()
		g.done()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	check([]time.Duration{300 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond})
	check([]time.Duration{30 * time.Millisecond}) // after the timer went idle
}
