package framework_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// roundTrip proves a service on cfg really works end to end: it declares
// ORDERS, publishes n events, consumes them and reconciles
// published = acked, with the consumer idle at the end.
func roundTrip(t *testing.T, cfg framework.Config, n int) {
	t.Helper()
	ctx := context.Background()
	svc, err := framework.New(ctx, cfg, framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("framework.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	if err := svc.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := svc.EnsureStream(ctx, ordersStream); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	sub, err := framework.Subscribe(ctx, svc, created, "inventory", func(context.Context, orderCreated, *framework.Message) error { return nil }, nil)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	for i := range n {
		if _, err := created.Publish(ctx, svc, orderCreated{ID: "o", Qty: 1, Index: i}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	testenv.Eventually(t, 15*time.Second, "every event acked", func() bool { return sub.Stats().Acked == uint64(n) })
	testenv.WaitConsumerIdle(t, svc.Conn().JS, "ORDERS", "inventory", 10*time.Second)
	if st := sub.Stats(); st.Acked+st.DeadLettered != uint64(n) || st.DeadLettered != 0 {
		t.Fatalf("reconciliation: published %d, stats %+v", n, st)
	}
}

// mustFailConnect asserts framework.New fails against cfg, with an error
// mentioning want (case-insensitive).
func mustFailConnect(t *testing.T, cfg framework.Config, want string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cfg.ConnectTimeout = 3 * time.Second
	svc, err := framework.New(ctx, cfg, framework.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil {
		_ = svc.Shutdown(ctx)
		t.Fatalf("framework.New succeeded; want an error mentioning %q", want)
	}
	if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
		t.Fatalf("error %q does not mention %q", err, want)
	}
	return err
}

func TestAuthUserPassword(t *testing.T) {
	u := testenv.User{Name: "order", Password: "pa55-w0rd-xyz"}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Users(u)})
	roundTrip(t, u.Credentials().Apply(srv.Config("order")), 3)

	wrong := testenv.Credentials{User: "order", Password: "not-the-password"}.Apply(srv.Config("order"))
	mustFailConnect(t, wrong, "authorization violation")
	mustFailConnect(t, srv.Config("order"), "authorization violation") // no credentials at all
}

func TestAuthUserPasswordInURL(t *testing.T) {
	u := testenv.User{Name: "order", Password: "url-pa55-xyz"}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Users(u)})
	cfg := srv.Config("order")
	cfg.URLs = []string{strings.Replace(srv.URL(), "nats://", "nats://order:url-pa55-xyz@", 1)}
	roundTrip(t, cfg, 2)
}

func TestAuthToken(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Token("t0ken-abc-123")})
	roundTrip(t, testenv.Credentials{Token: "t0ken-abc-123"}.Apply(srv.Config("order")), 3)
	mustFailConnect(t, testenv.Credentials{Token: "wrong-token"}.Apply(srv.Config("order")), "authorization violation")
}

func TestAuthNKey(t *testing.T) {
	user := testenv.NewNKeyUser(t, nil)
	srv := testenv.Start(t, testenv.Options{Configure: testenv.NKeys(user)})
	roundTrip(t, user.Credentials().Apply(srv.Config("order")), 3)

	stranger := testenv.NewNKeyUser(t, nil) // a valid seed the server does not know
	mustFailConnect(t, stranger.Credentials().Apply(srv.Config("order")), "authorization violation")
}

func TestAuthNKeyFileWithoutSeedIsAConfigError(t *testing.T) {
	srv := testenv.Start(t)
	cfg := testenv.Credentials{NKeyFile: writeFile(t, "bad.nk", "not a seed")}.Apply(srv.Config("order"))
	err := mustFailConnect(t, cfg, "NKEY_FILE")
	if !errors.Is(err, framework.ErrInvalidConfig) || strings.Contains(err.Error(), "<nil>") || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("want a config error explaining the seed file, got %v", err)
	}
}

func TestAuthJWTCreds(t *testing.T) {
	op := testenv.NewOperator(t)
	srv := testenv.Start(t, testenv.Options{Configure: op.Server()})
	roundTrip(t, op.User("order", nil).Apply(srv.Config("order")), 3)

	other := testenv.NewOperator(t) // a user of an operator the server does not trust
	mustFailConnect(t, other.User("order", nil).Apply(srv.Config("order")), "authorization violation")
}

func TestTLSWithCAAndServerName(t *testing.T) {
	certs := testenv.NewTLS(t)
	srv := testenv.Start(t, testenv.Options{Configure: certs.Server(false)})
	roundTrip(t, certs.Apply(srv.Config("order"), false), 3)

	// The certificate names nats.jetkit.test, not 127.0.0.1: without the
	// server name override verification must fail, not silently pass.
	noName := certs.Apply(srv.Config("order"), false)
	noName.TLSServerName = ""
	mustFailConnect(t, noName, "certificate")

	// Without our CA the server is not trusted.
	noCA := certs.Apply(srv.Config("order"), false)
	noCA.TLSCAFile = ""
	mustFailConnect(t, noCA, "certificate")
}

func TestMutualTLS(t *testing.T) {
	certs := testenv.NewTLS(t)
	srv := testenv.Start(t, testenv.Options{Configure: certs.Server(true)})
	roundTrip(t, certs.Apply(srv.Config("order"), true), 3)
	mustFailConnect(t, certs.Apply(srv.Config("order"), false), "connect to NATS")
}

func TestMutualTLSWithUserPassword(t *testing.T) {
	certs := testenv.NewTLS(t)
	u := testenv.User{Name: "order", Password: "tls-and-pass"}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Configure(certs.Server(true), testenv.Users(u))})
	roundTrip(t, u.Credentials().Apply(certs.Apply(srv.Config("order"), true)), 2)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJWTUserWithLeastPrivilege(t *testing.T) {
	op := testenv.NewOperator(t)
	srv := testenv.Start(t, testenv.Options{Configure: op.Server()})

	// JWT permissions are enforced and reported like any other.
	cfg := op.User("order", without(servicePermissions(), "$JS.API.STREAM.CREATE.ORDERS")).Apply(srv.Config("order"))
	cfg.RequestTimeout = time.Minute
	svc := startService(t, cfg)
	start := time.Now()
	_, err := svc.EnsureStream(context.Background(), ordersStream)
	assertPermissionError(t, err, start, "publish", "$JS.API.STREAM.CREATE.ORDERS")

	roundTrip(t, op.User("order", servicePermissions()).Apply(srv.Config("order")), 3)
}
