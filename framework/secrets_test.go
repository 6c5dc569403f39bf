package framework_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/health"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// Secret values used below; each is distinctive so any appearance is a leak.
const (
	leakPassword    = "Pw-LEAK-7f3a9c"
	leakURLPassword = "UrlPw-LEAK-51be2d"
	leakToken       = "Tok-LEAK-c0ffee"
	leakURLToken    = "UrlTok-LEAK-9d8e7f"  // nats://TOKEN@host
	leakURLUser     = "UrlUser-LEAK-4a5b6c" // nats://USER@host: a token to NATS
)

var leakSecrets = []string{leakPassword, leakURLPassword, leakToken, leakURLToken, leakURLUser}

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

func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range leakSecrets {
		if strings.Contains(text, s) {
			t.Errorf("secret %q leaked in %s:\n%s", s, where, text)
		}
	}
}

// secretURL puts user:password into the server URL.
func secretURL(srv *testenv.Server, user, password string) string {
	return strings.Replace(srv.URL(), "nats://", "nats://"+user+":"+password+"@", 1)
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "order"
	cfg.URLs = []string{"nats://order:" + leakURLPassword + "@127.0.0.1:4222", "nats://h2:4222",
		"nats://" + leakURLToken + "@h3:4222", "tls://" + leakURLUser + "@h4:4222"}
	cfg.User, cfg.Password, cfg.Token = "order", leakPassword, leakToken

	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "cfg", cfg, "password", cfg.Password)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "cfg", cfg, "token", cfg.Token)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"pointer %+v": fmt.Sprintf("%+v", &cfg),
		"%s":          fmt.Sprintf("%s", cfg), //lint:ignore S1025 the %s verb itself is under test
		"slog JSON":   jsonLog.String(), "slog text": textLog.String(), "json.Marshal": string(js),
	} {
		assertNoSecret(t, where, text)
		if !strings.Contains(text, "127.0.0.1:4222") || !strings.Contains(text, "h2:4222") || !strings.Contains(text, "h4:4222") {
			t.Errorf("%s dropped the non-secret server addresses: %s", where, text)
		}
	}
	// Two methods at once is invalid: the error must not repeat them.
	err = cfg.Validate()
	if err == nil {
		t.Fatal("user/password and token together validated")
	}
	assertNoSecret(t, "Validate error", err.Error())
}

func TestLoadConfigErrorsNeverContainSecrets(t *testing.T) {
	t.Setenv("LEAKT_NATS_URL", "nats://order:"+leakURLPassword+"@bad host:4222,nats://"+leakURLToken+"@bad host:4222,"+
		"nats://"+leakURLUser+"@h:4222/%zz,http://"+leakURLToken+"@h:4222,nats://u:"+leakURLPassword[:6]+","+leakURLPassword[6:]+"@h:4222")
	t.Setenv("LEAKT_NATS_USER", "order")
	t.Setenv("LEAKT_NATS_PASSWORD", leakPassword)
	t.Setenv("LEAKT_NATS_TOKEN", leakToken)
	t.Setenv("LEAKT_ACK_WAIT", "soon")
	_, err := framework.LoadConfig("LEAKT")
	if err == nil {
		t.Fatal("invalid config loaded")
	}
	assertNoSecret(t, "LoadConfig parse error", err.Error())
	t.Setenv("LEAKT_ACK_WAIT", "30s")
	_, err = framework.LoadConfig("LEAKT")
	if err == nil {
		t.Fatal("invalid config loaded")
	}
	assertNoSecret(t, "LoadConfig validation error", err.Error())
	if head := leakURLPassword[:6]; strings.Contains(err.Error(), head) { // nats://u:<head> of a password split at its comma
		t.Errorf("LoadConfig error shows the head %q of a password that held a comma:\n%v", head, err)
	}
}

func TestFailedConnectErrorsNeverContainSecrets(t *testing.T) {
	u := testenv.User{Name: "order", Password: "the-right-one"}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Users(u)})
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for name, cfg := range map[string]framework.Config{
		"wrong password": testenv.Credentials{User: "order", Password: leakPassword}.Apply(srv.Config("order")),
		"wrong URL secret": func() framework.Config {
			c := srv.Config("order")
			c.URLs = []string{secretURL(srv, "order", leakURLPassword)}
			return c
		}(),
		"unreachable URL": func() framework.Config {
			c := srv.Config("order")
			c.URLs = []string{"nats://order:" + leakURLPassword + "@127.0.0.1:1"}
			return c
		}(),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cfg.ConnectTimeout = 2 * time.Second
		_, err := framework.New(ctx, cfg, framework.WithLogger(log))
		cancel()
		if err == nil {
			t.Fatalf("%s: connected", name)
		}
		assertNoSecret(t, name+" error", err.Error())
		assertNoSecret(t, name+" error %+v", fmt.Sprintf("%+v", err))
	}
	tokSrv := testenv.Start(t, testenv.Options{Configure: testenv.Token("right-token")})
	cfg := testenv.Credentials{Token: leakToken}.Apply(tokSrv.Config("order"))
	if _, err := framework.New(context.Background(), cfg, framework.WithLogger(log)); err == nil {
		t.Fatal("wrong token connected")
	} else {
		assertNoSecret(t, "wrong token error", err.Error())
	}
	for _, secret := range []string{leakURLToken, leakURLUser} { // a wrong token in the URL
		cfg := tokSrv.Config("order")
		cfg.URLs = []string{strings.Replace(tokSrv.URL(), "nats://", "nats://"+secret+"@", 1)}
		if _, err := framework.New(context.Background(), cfg, framework.WithLogger(log)); err == nil {
			t.Fatal("wrong URL token connected")
		} else {
			assertNoSecret(t, "wrong URL token error", err.Error())
		}
	}
	assertNoSecret(t, "logs", logs.String())
}

// TestRunningServiceNeverLeaksSecrets runs a service whose password is in
// both the config and the URL through a whole life: connect, provision,
// publish, a handler panicking with the config, dead-lettering, a server
// outage (disconnect and readiness failure), reconnect and shutdown — with
// debug logging captured — and looks for the secrets everywhere.
func TestRunningServiceNeverLeaksSecrets(t *testing.T) {
	u := testenv.User{Name: "order", Password: leakURLPassword}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Users(u)})
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := srv.Config("order")
	cfg.URLs = []string{secretURL(srv, "order", leakURLPassword)}
	cfg.ReconnectWait = 50 * time.Millisecond
	cfg.RetryInitial, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	cfg.MaxDeliver = 2
	ctx := context.Background()
	svc, err := framework.New(ctx, cfg, framework.WithLogger(log))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	}()
	log.Info("service config", "cfg", svc.Config()) // what a service might log at start-up
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatal(err)
	}
	sub, err := framework.Subscribe(ctx, svc, created, "inventory", func(_ context.Context, ev orderCreated, _ *framework.Message) error {
		if ev.Qty == 0 {
			panic(svc.Config()) // a careless panic with the config as its value
		}
		if ev.Qty < 0 {
			return framework.Permanent(fmt.Errorf("bad order with config %v", svc.Config()))
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, qty := range []int{1, 0, -1} {
		if _, err := created.Publish(ctx, svc, orderCreated{ID: "o", Qty: qty}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 15*time.Second, "3 settled", func() bool {
		st := sub.Stats()
		return st.Acked == 1 && st.DeadLettered == 2
	})
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "inventory", 10*time.Second)
	dls := deadLetters(t, svc)
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dls))
	}
	for _, dl := range dls {
		if !strings.Contains(dl.Header.Get(wire.HeaderDLQError), "nats://[redacted]@127.0.0.1") {
			t.Errorf("dead-letter error does not show the redacted config: %s", dl.Header.Get(wire.HeaderDLQError))
		}
		for k, v := range dl.Header {
			assertNoSecret(t, "dead-letter header "+k, strings.Join(v, " "))
		}
	}
	if err := svc.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	probes := health.New(svc)
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		probes.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := readyz(); code != 200 {
		t.Fatalf("/readyz %d: %s", code, body)
	}

	// Outage: readiness fails with a reason, logs say disconnected.
	srv.Shutdown()
	testenv.Eventually(t, 10*time.Second, "not ready", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := svc.Ready(ctx)
		if err != nil {
			assertNoSecret(t, "Ready error", err.Error())
		}
		return err != nil
	})
	code, body := readyz()
	if code != 503 {
		t.Fatalf("/readyz during the outage: %d %s", code, body)
	}
	assertNoSecret(t, "/readyz", body)
	pubCtx, pubCancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = created.Publish(pubCtx, svc, orderCreated{ID: "o", Qty: 1})
	pubCancel()
	if err != nil {
		assertNoSecret(t, "publish error during outage", err.Error())
	}
	// With the server gone, shutdown cannot drain and uses its whole budget.
	ctxS, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := svc.Shutdown(ctxS); err != nil {
		assertNoSecret(t, "shutdown error", err.Error())
	}
	out := logs.String()
	if !strings.Contains(out, "nats connected") || !strings.Contains(out, "dead-lettered") || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("expected logs missing; got:\n%s", out)
	}
	assertNoSecret(t, "logs", out)
}

func TestPanicErrorsNeverContainSecrets(t *testing.T) {
	cfg := framework.DefaultConfig()
	cfg.URLs = []string{"nats://order:" + leakURLPassword + "@127.0.0.1:4222", "nats://" + leakURLToken + "@127.0.0.1:4222"}
	cfg.Password, cfg.Token = leakPassword, leakToken
	for _, v := range []any{cfg, &cfg, errors.New("wrapped: " + cfg.String()), cfg.Password, cfg.Token} {
		pe := &framework.PanicError{Value: v}
		assertNoSecret(t, fmt.Sprintf("panic(%T)", v), pe.Error())
	}
}

// TestTokenInURLNeverLeaks connects with the token in the server URL
// (nats://TOKEN@host), as NATS allows: the "nats connected" log line,
// String and a later connect failure must not show it.
func TestTokenInURLNeverLeaks(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Token(leakURLToken)})
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := srv.Config("order")
	cfg.URLs = []string{strings.Replace(srv.URL(), "nats://", "nats://"+leakURLToken+"@", 1)}
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(log))
	if err != nil {
		t.Fatalf("New with the token in the URL: %v", err)
	}
	if err := svc.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	log.Info("service config", "cfg", svc.Config())
	assertNoSecret(t, "Config.String", svc.Config().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "nats connected") || !strings.Contains(out, "[redacted]@127.0.0.1") {
		t.Fatalf("expected the connected line with the redacted URL; got:\n%s", out)
	}
	assertNoSecret(t, "logs", out)
}
