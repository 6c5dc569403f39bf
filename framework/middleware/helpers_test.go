package middleware_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

const (
	eventType = "jobs.run.v1"
	subject   = "jobs.run.v1"
)

var jobsStream = framework.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func bufferLogger(level slog.Level) (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

// newService starts a service with the JOBS stream and test-sized
// redelivery delays; it is shut down at cleanup.
func newService(t *testing.T, srv *testenv.Server, name string, opts ...framework.Option) *framework.Service {
	t.Helper()
	cfg := srv.Config(name)
	cfg.RetryInitial = 20 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	ctx := context.Background()
	svc := testenv.NewService(t, cfg, opts...)
	if _, err := svc.EnsureStream(ctx, jobsStream); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return svc
}

// publishEvent stores a CloudEvents message with the given event id under
// its own Nats-Msg-Id, so one event id can be stored more than once.
func publishEvent(t *testing.T, svc *framework.Service, eventID, msgID string) uint64 {
	t.Helper()
	h := nats.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", eventID)
	h.Set("ce-type", eventType)
	h.Set("ce-source", "test")
	h.Set("content-type", "application/json")
	h.Set(nats.MsgIdHdr, msgID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := svc.Conn().JS.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: []byte(`{}`)})
	if err != nil {
		t.Fatalf("publish %s: %v", eventID, err)
	}
	if ack.Duplicate {
		t.Fatalf("publish %s with msg id %s: stored as duplicate", eventID, msgID)
	}
	return ack.Sequence
}

// counter counts handler runs per event id.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (c *counter) add(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[id]++
	return c.n[id]
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// message builds a Message for calling middleware directly.
func message(id string) *framework.Message {
	return &framework.Message{Subject: subject, Stream: "JOBS", Consumer: "worker", StreamSeq: 7,
		NumDelivered: 1, MaxDeliver: 5, Attempt: 1,
		Envelope: framework.Envelope{ID: id, Type: eventType, Source: "test", SpecVersion: "1.0"}}
}

func eventID(i int) string { return "evt-" + strconv.Itoa(i) }

func deadLetterCount(t *testing.T, svc *framework.Service) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := svc.Conn().JS.Stream(ctx, svc.Config().DeadLetterStream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("dead-letter stream info: %v", err)
	}
	return info.State.Msgs
}

// chain wraps h in mws, the first outermost, as a subscription does.
func chain(h framework.Handler, mws ...framework.Middleware) framework.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}
