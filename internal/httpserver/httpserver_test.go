package httpserver_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/internal/httpserver"
	"github.com/jetkit/jetkit/testenv"
)

// countingListener counts the connections the server holds open.
type countingListener struct {
	net.Listener
	open, peak atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// serve runs h with o on a local port until the test ends.
func serve(t *testing.T, h http.Handler, o httpserver.Options) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := httpserver.New(h, o)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(cl) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), cl
}

// livez answers 200 after reading the whole body.
func livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// slowBody opens a connection that sends a request announcing a 1000-byte
// body, then one byte every 100 ms until the server hangs up; closed
// receives the time it did.
func slowBody(t *testing.T, addr string, closed chan<- time.Time) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if _, err := c.Write([]byte("x")); err != nil {
				break
			}
		}
	}()
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.Copy(io.Discard, c) // until the server closes the connection
		closed <- time.Now()
	}()
	return c
}

func get(addr string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/livez")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// A client that sends its body a byte at a time is cut off once the read
// timeout has passed, not held for as long as it keeps trickling.
func TestSlowBodyIsCutOffAfterReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	addr, cl := serve(t, livez(), httpserver.Options{ReadTimeout: readTimeout})
	closed := make(chan time.Time, 1)
	start := time.Now()
	slowBody(t, addr, closed)
	select {
	case at := <-closed:
		if took := at.Sub(start); took < readTimeout || took > readTimeout+5*time.Second {
			t.Errorf("slow client cut off after %v, want just after the %v read timeout", took, readTimeout)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("slow client still connected after 20 s (read timeout %v)", readTimeout)
	}
	testenv.Eventually(t, 5*time.Second, "the server closes its side", func() bool { return cl.open.Load() == 0 })
}

// Idle keep-alive connections are closed after the idle timeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	addr, cl := serve(t, livez(), httpserver.Options{IdleTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	testenv.Eventually(t, 5*time.Second, "the idle keep-alive connection is closed", func() bool { return cl.open.Load() == 0 })
}

// Connections beyond MaxConns wait in the backlog (no descriptor of the
// server's) and are served once a connection closes.
func TestConnectionsBeyondTheLimitWait(t *testing.T) {
	const limit = 4
	addr, cl := serve(t, livez(), httpserver.Options{MaxConns: limit, ReadHeaderTimeout: 30 * time.Second})
	held := make([]net.Conn, limit)
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held[i] = c // sends nothing: holds a slot until closed
	}
	testenv.Eventually(t, 5*time.Second, "the server holds the limit's connections", func() bool { return cl.open.Load() == limit })
	if err := get(addr, 300*time.Millisecond); err == nil {
		t.Fatal("a request beyond the limit was served while every slot was held")
	}
	_ = held[0].Close()
	if err := get(addr, 5*time.Second); err != nil {
		t.Fatalf("request after a slot freed: %v", err)
	}
	if peak := cl.peak.Load(); peak > limit {
		t.Errorf("the server held %d connections at once, limit %d", peak, limit)
	}
}

// /livez keeps answering while many slow clients are connected: they are
// cut off at the read timeout, and never hold more than MaxConns
// descriptors.
func TestLivezAnswersWhileSlowClientsAreConnected(t *testing.T) {
	const limit, slow = 32, 100
	addr, cl := serve(t, livez(), httpserver.Options{MaxConns: limit, ReadTimeout: time.Second})
	closed := make(chan time.Time, slow)
	for range slow {
		slowBody(t, addr, closed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if err := get(addr, 2*time.Second); err == nil {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("/livez did not answer within 15 s of %d slow clients", slow)
	}
	for range slow {
		select {
		case <-closed:
		case <-ctx.Done():
			t.Fatal("slow clients still connected after 15 s")
		}
	}
	if peak := cl.peak.Load(); peak > limit {
		t.Errorf("the server held %d connections at once, limit %d", peak, limit)
	}
}
