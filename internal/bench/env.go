package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv/embedded"
)

// Event is the jetkit event the bench publishes: a send time for latency
// and padding so that its JSON encoding is exactly Options.MsgSize bytes.
type Event struct {
	// SentNs is when the event was published, Unix nanoseconds.
	SentNs int64 `json:"t"`
	// Pad fills the payload to the configured size.
	Pad string `json:"p"`
}

// jsonOverhead is len(`{"t":`) + 19 digits + len(`,"p":"`) + len(`"}`).
const jsonOverhead = 5 + 19 + 6 + 2

const minMsgSize = jsonOverhead + 16

// asyncMaxPending is the in-flight bound of async publishes, the same for
// raw and jetkit (jetkit's default).
const asyncMaxPending = 4000

// env is what every scenario shares: the server, names and payloads.
type env struct {
	opts    Options
	url     string
	srv     *embedded.Server
	log     *slog.Logger
	id      string // unique per run: stream and subject names
	storage jetstream.StorageType
	pad     string
	admin   *nats.Conn
	adminJS jetstream.JetStream
	streams []string
	seq     int
	// dlq is the dead-letter stream jetkit services declare; ownDLQ says
	// the bench created it (and deletes it at the end). On a user's server
	// that already has one, the bench declares that one, with its name and
	// replica count, and leaves it in place.
	dlq         string
	dlqReplicas int
	ownDLQ      bool
}

func newEnv(ctx context.Context, o Options) (*env, error) {
	e := &env{opts: o, log: slog.New(slog.NewTextHandler(io.Discard, nil)), url: o.URL}
	e.id = strings.ToLower(nuid.Next()[14:])
	e.storage = jetstream.FileStorage
	if o.MemoryStorage {
		e.storage = jetstream.MemoryStorage
	}
	e.pad = strings.Repeat("x", o.MsgSize-jsonOverhead)
	if e.url == "" {
		srv, err := embedded.Run(embedded.Options{})
		if err != nil {
			return nil, fmt.Errorf("start the embedded server: %w", err)
		}
		e.srv, e.url = srv, srv.URL()
	}
	nc, js, err := e.rawConn(ctx, "admin")
	if err != nil {
		e.close()
		return nil, err
	}
	e.admin, e.adminJS = nc, js
	if err := e.findDeadLetterStream(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// findDeadLetterStream picks the dead-letter stream the bench's jetkit
// services declare (every jetkit service declares one at start). A server
// that already has a stream for the dead-letter subjects keeps it, with its
// name and replica count, so that declaring it changes nothing; otherwise
// the bench creates its own and deletes it at the end.
func (e *env) findDeadLetterStream(ctx context.Context) error {
	e.dlq, e.dlqReplicas, e.ownDLQ = "JKB_"+strings.ToUpper(e.id)+"_DLQ", e.opts.Replicas, true
	name, err := e.adminJS.StreamNameBySubject(ctx, wire.DeadLetterSubjectPrefix+".bench")
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up the dead-letter stream on %s: %w", e.serverName(), err)
	}
	st, err := e.adminJS.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("look up the dead-letter stream %s on %s: %w", name, e.serverName(), err)
	}
	e.dlq, e.dlqReplicas, e.ownDLQ = name, st.CachedInfo().Config.Replicas, false
	return nil
}

// serverName is the server for the report, without credentials.
func (e *env) serverName() string {
	if e.srv != nil {
		return "embedded"
	}
	u, err := url.Parse(e.url)
	if err != nil || u.Host == "" {
		return "external"
	}
	return u.Scheme + "://" + u.Host
}

// close deletes what the run created and stops the embedded server.
func (e *env) close() {
	if e.adminJS != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, s := range e.streams {
			_ = e.adminJS.DeleteStream(ctx, s)
		}
		cancel()
	}
	if e.admin != nil {
		e.admin.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
	}
}

// rawConn connects the way a raw nats.go user does.
func (e *env) rawConn(ctx context.Context, role string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(e.url, nats.Name("jetkit-bench-"+role), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w (check --url)", e.serverName(), err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(asyncMaxPending))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream on %s: %w", e.serverName(), err)
	}
	return nc, js, nil
}

// service starts a jetkit service with the bench middleware.
func (e *env) service(ctx context.Context) (*framework.Service, error) {
	cfg := e.config()
	opts := []framework.Option{framework.WithLogger(e.log)}
	if e.opts.Observer != nil {
		opts = append(opts, framework.WithObserver(e.opts.Observer))
	}
	svc, err := framework.New(ctx, cfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("start jetkit service: %w", err)
	}
	svc.Use(e.opts.Middleware...)
	if e.ownDLQ {
		e.remember(cfg.DeadLetterStream)
	}
	return svc, nil
}

func stopService(svc *framework.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = svc.Shutdown(ctx)
}

func (e *env) remember(stream string) {
	for _, s := range e.streams {
		if s == stream {
			return
		}
	}
	e.streams = append(e.streams, stream)
}

// Duplicate windows of the bench streams. Publish and end-to-end runs
// keep JetStream's default, so the server pays for de-duplication as in
// production; backlogs that are only read use a short one, so that the
// server's table of recent ids does not dominate the memory measured in
// this process.
const (
	publishDuplicates = 2 * time.Minute
	backlogDuplicates = time.Second
)

// errCodeStreamStoreFailed is JetStream's "error creating store for
// stream" (nats.go names no constant for it).
const errCodeStreamStoreFailed jetstream.ErrorCode = 10049

// stream creates a fresh stream for one run and returns its name and base
// subject (a valid jetkit topic subject).
func (e *env) stream(ctx context.Context, what string, duplicates time.Duration) (name, subject string, err error) {
	e.seq++
	name = fmt.Sprintf("JKB_%s_%s_%d", strings.ToUpper(e.id), strings.ToUpper(strings.ReplaceAll(what, "-", "_")), e.seq)
	subject = fmt.Sprintf("jkb%s.%s%d.v1", e.id, strings.ReplaceAll(what, "-", ""), e.seq)
	// A file store is occasionally refused right after the previous run's
	// stream was deleted ("error creating store for stream", seen twice in
	// CI under load, never alone): the scenario does not depend on it, so
	// try a few times before giving up.
	for try := 0; ; try++ {
		_, err = e.adminJS.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{subject, subject + ".>"}, Storage: e.storage,
			Replicas: e.opts.Replicas, Duplicates: duplicates,
		})
		var apiErr *jetstream.APIError
		if err == nil || try == 4 || !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeStreamStoreFailed {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100*(try+1)) * time.Millisecond):
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("create stream %s: %w", name, err)
	}
	e.remember(name)
	return name, subject, nil
}

func (e *env) deleteStream(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = e.adminJS.DeleteStream(ctx, name)
}

// rawPayload is a MsgSize payload whose first 8 bytes are the send time.
func (e *env) rawPayload(sent time.Time) []byte {
	b := make([]byte, e.opts.MsgSize)
	for i := 8; i < len(b); i++ {
		b[i] = 'x'
	}
	binary.BigEndian.PutUint64(b, uint64(sent.UnixNano()))
	return b
}

// eventHeaders are the headers a jetkit event carries (CloudEvents binary
// mode and Nats-Msg-Id, which the server de-duplicates on), for raw
// messages that should cost the server what a jetkit event costs.
func eventHeaders(subject string, sent time.Time) nats.Header {
	id := nuid.Next()
	return nats.Header{"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-type": {subject}, "ce-source": {"jetkit-bench"},
		"ce-time": {sent.UTC().Format(time.RFC3339Nano)}, "ce-datacontenttype": {"application/json"}, nats.MsgIdHdr: {id}}
}

func rawSent(b []byte) int64 {
	if len(b) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (e *env) event(sent time.Time) Event { return Event{SentNs: sent.UnixNano(), Pad: e.pad} }

// fill publishes n jetkit events to subject, untimed, as a backlog that
// raw and jetkit consumers both read.
func (e *env) fill(ctx context.Context, subject string, n int) error {
	topic, err := framework.NewTopic[Event](subject)
	if err != nil {
		return err
	}
	c, err := framework.Connect(ctx, e.config(), e.log)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		err := retryStalled(ctx, func() error {
			_, err := topic.PublishAsync(ctx, c, e.event(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("fill backlog, message %d: %w", i, err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	if err := c.FlushAsync(fctx); err != nil {
		return fmt.Errorf("fill backlog: %w", err)
	}
	return nil
}

func (e *env) config() framework.Config {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "jetkit-bench"
	cfg.URLs = []string{e.url}
	cfg.Replicas, cfg.DeadLetterStream = e.dlqReplicas, e.dlq
	cfg.PublishAsyncMaxPending = asyncMaxPending
	return cfg
}
