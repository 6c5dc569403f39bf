package framework_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

func TestLoadConfigDefaults(t *testing.T) {
	t.Setenv("JETKIT_SERVICE_NAME", "order")
	t.Setenv("JETKIT_NATS_URL", "nats://a:4222,nats://b:4222")
	cfg, err := framework.LoadConfig("JETKIT")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.URLs) != 2 || cfg.AckWait != 30*time.Second || cfg.MaxDeliver != 5 || cfg.AckMode != framework.AckModeAsync {
		t.Fatalf("unexpected config %+v", cfg)
	}
	if d := framework.DefaultConfig(); d.AckWait != 30*time.Second || d.MaxReconnects != -1 || d.URLs[0] != "nats://127.0.0.1:4222" {
		t.Fatalf("DefaultConfig %+v", d)
	}
}

func TestLoadConfigReportsEveryUnparsableVariable(t *testing.T) {
	t.Setenv("SVC_SERVICE_NAME", "svc")
	t.Setenv("SVC_ACK_WAIT", "thirty seconds")
	t.Setenv("SVC_MAX_DELIVER", "five")
	t.Setenv("SVC_NATS_RETRY_ON_FAILED_CONNECT", "maybe")
	t.Setenv("SVC_NATS_URL", "http://wrong-scheme:4222") // parses, but is invalid: reported too
	t.Setenv("SVC_CONCURRENCY", "0")
	_, err := framework.LoadConfig("SVC")
	if !errors.Is(err, framework.ErrInvalidConfig) {
		t.Fatalf("want ErrInvalidConfig, got %v", err)
	}
	var ce *framework.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 5 {
		t.Fatalf("want 5 problems, got %v", err)
	}
	for _, want := range []string{"SVC_ACK_WAIT", "a Go duration", "SVC_MAX_DELIVER", "whole number", "SVC_NATS_RETRY_ON_FAILED_CONNECT", "true or false",
		"SVC_NATS_URL", "scheme", "SVC_CONCURRENCY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestValidateListsEveryProblemWithoutSecrets(t *testing.T) {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = "my service"
	cfg.URLs = []string{"http://user:hunter2@host:4222", "::nonsense"}
	cfg.Password = "s3cret-password"
	cfg.Token = "s3cret-token"
	cfg.TLSCertFile = "/does/not/exist.pem"
	cfg.AckWait = 0
	cfg.MaxDeliver = 0
	cfg.Concurrency = -1
	cfg.AckMode = "eventually"
	cfg.RetryMax = time.Millisecond
	cfg.Replicas = 7
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	var ce *framework.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("not a ConfigError: %v", err)
	}
	for _, v := range []string{"SERVICE_NAME", "NATS_URL", "NATS_TLS_CERT_FILE", "NATS_USER", "ACK_WAIT", "MAX_DELIVER",
		"CONCURRENCY", "ACK_MODE", "RETRY_MAX", "STREAM_REPLICAS"} {
		if !strings.Contains(err.Error(), "JETKIT_"+v) {
			t.Errorf("error does not name JETKIT_%s:\n%v", v, err)
		}
	}
	if len(ce.Problems) < 11 {
		t.Errorf("want every problem listed, got %d:\n%v", len(ce.Problems), err)
	}
	for _, secret := range []string{"hunter2", "s3cret-password", "s3cret-token"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks secret %q:\n%v", secret, err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, "s3cret") {
		t.Errorf("formatting the config leaks a secret: %s", s)
	}
}

func TestValidateToken(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", "tab\t", "nl\n", "nul\x00", "\x7f", "bad\xff"} {
		if err := wire.ValidateToken(bad); !errors.Is(err, framework.ErrInvalidSubject) {
			t.Errorf("ValidateToken(%q) = %v, want ErrInvalidSubject", bad, err)
		}
	}
	for _, good := range []string{"o-1", "ORDER_42", "ünïcode", "a:b"} {
		if err := wire.ValidateToken(good); err != nil {
			t.Errorf("ValidateToken(%q) = %v", good, err)
		}
	}
	if err := wire.ValidateSubject("orders..created"); err == nil {
		t.Error("empty token in subject accepted")
	}
	if err := wire.ValidateFilter("orders.*.v1.>"); err != nil {
		t.Errorf("valid filter rejected: %v", err)
	}
	if err := wire.ValidateFilter("orders.>.v1"); err == nil {
		t.Error("'>' in the middle of a filter accepted")
	}
}

func TestMustNewTopicPanicsOnInvalidSubject(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "invalid subject") {
			t.Fatalf("want a panic naming the invalid subject, got %v", r)
		}
	}()
	framework.MustNewTopic[orderCreated]("orders.*.v1")
}

// TestLoadConfigReadsOnlyPrefixedVariables: SERVICE_NAME or CONCURRENCY
// without the prefix configure nothing, and a bad unprefixed variable is
// neither reported nor able to hide a prefixed problem.
func TestLoadConfigReadsOnlyPrefixedVariables(t *testing.T) {
	t.Setenv("SERVICE_NAME", "intruder")
	t.Setenv("CONCURRENCY", "7")
	t.Setenv("ACK_WAIT", "not a duration")
	t.Setenv("ORDER_SERVICE_NAME", "order")
	cfg, err := framework.LoadConfig("ORDER")
	if err != nil {
		t.Fatalf("LoadConfig read an unprefixed variable: %v", err)
	}
	if cfg.ServiceName != "order" || cfg.Concurrency != 1 {
		t.Fatalf("unprefixed variables configured the service: name %q, concurrency %d", cfg.ServiceName, cfg.Concurrency)
	}
	t.Setenv("ORDER_MAX_DELIVER", "many")
	_, err = framework.LoadConfig("ORDER")
	var ce *framework.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.HasPrefix(ce.Problems[0], "ORDER_MAX_DELIVER") {
		t.Fatalf("want exactly the ORDER_MAX_DELIVER problem, got %v", err)
	}
}

// TestConfigErrorsNameTheLoadedPrefix: a service loaded with prefix ORDER
// is told about ORDER_ variables (also when connecting fails), and must
// name itself: there is no default service name.
func TestConfigErrorsNameTheLoadedPrefix(t *testing.T) {
	t.Setenv("ORDER_NATS_URL", "nats://127.0.0.1:1")
	t.Setenv("ORDER_", "not a field") // nothing reads it
	for _, bad := range []string{"_X", "9X", "OR-DER", "ORDER."} {
		if _, err := framework.LoadConfig(bad); !errors.Is(err, framework.ErrInvalidConfig) || !strings.Contains(err.Error(), "environment prefix") {
			t.Errorf("LoadConfig(%q): want an error naming the prefix, got %v", bad, err)
		}
	}
	_, err := framework.LoadConfig("order") // the prefix is upper-cased
	if !errors.Is(err, framework.ErrInvalidConfig) || !strings.Contains(err.Error(), "ORDER_SERVICE_NAME: must be set") {
		t.Fatalf("a missing service name must be an error naming ORDER_SERVICE_NAME, got %v", err)
	}
	if err := framework.DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "JETKIT_SERVICE_NAME") {
		t.Fatalf("DefaultConfig without a name validated: %v", err)
	}
	t.Setenv("ORDER_SERVICE_NAME", "order")
	cfg, err := framework.LoadConfig("ORDER")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectTimeout = time.Second
	cfg.AckWait = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ORDER_ACK_WAIT") || strings.Contains(err.Error(), "JETKIT_") {
		t.Fatalf("Validate of a loaded config must name ORDER_ variables, got %v", err)
	}
	cfg.AckWait = time.Second
	_, err = framework.Connect(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "ORDER_NATS_URL") || strings.Contains(err.Error(), "JETKIT_") || !strings.Contains(err.Error(), `as "order"`) {
		t.Fatalf("connect error must name ORDER_NATS_URL and the client \"order\", got %v", err)
	}
	cfg.NKeyFile = writeFile(t, "bad.nk", "not a seed")
	if _, err := framework.Connect(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "ORDER_NATS_NKEY_FILE") {
		t.Fatalf("NKey error must name ORDER_NATS_NKEY_FILE, got %v", err)
	}
}

// TestLoadConfigRejectsWhatWouldFailLater: values that passed LoadConfig
// and failed later naming no variable are caught at load time, by name.
func TestLoadConfigRejectsWhatWouldFailLater(t *testing.T) {
	t.Setenv("ORDER_SERVICE_NAME", "order")
	for _, c := range []struct{ key, val, want string }{
		{"ORDER_ACK_WAIT", "1ns", "at least 100ms"},
		{"ORDER_ACK_WAIT", "99ms", "at least 100ms"},
		{"ORDER_DEAD_LETTER_STREAM", "dead/letters", "slashes"},
		{"ORDER_DEAD_LETTER_STREAM", `dead\letters`, "slashes"},
		{"ORDER_DEAD_LETTER_STREAM", strings.Repeat("D", 256), "at most 255"},
		{"ORDER_NATS_INBOX_PREFIX", "_INBOX.*", "without wildcards"},
		{"ORDER_NATS_INBOX_PREFIX", "replies.", "without wildcards"},
		{"ORDER_MAX_DELIVER", "9223372036854775808", "whole number"},
	} {
		t.Run(c.key+"="+c.val[:min(len(c.val), 20)], func(t *testing.T) {
			t.Setenv(c.key, c.val)
			_, err := framework.LoadConfig("ORDER")
			if !errors.Is(err, framework.ErrInvalidConfig) || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s=%q: want an error naming it and saying %q, got %v", c.key, c.val, c.want, err)
			}
		})
	}
	t.Setenv("ORDER_ACK_WAIT", "100ms")
	t.Setenv("ORDER_MAX_DELIVER", "9223372036854775807")
	t.Setenv("ORDER_NATS_INBOX_PREFIX", "_R.order")
	if cfg, err := framework.LoadConfig("ORDER"); err != nil || cfg.InboxPrefix != "_R.order" {
		t.Fatalf("valid limits refused: %v", err)
	}
}

// TestInboxPrefixDefaultsToTheService: replies and pulled messages arrive
// under _INBOX_<service>, or NATS_INBOX_PREFIX when set, so the server can
// grant each service its own inboxes only.
func TestInboxPrefixDefaultsToTheService(t *testing.T) {
	srv := testenv.Start(t)
	for prefix, want := range map[string]string{"": "_INBOX_order.", "_R.order": "_R.order."} {
		cfg := srv.Config("order")
		cfg.InboxPrefix = prefix
		conn, err := framework.Connect(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if inbox := conn.NC.NewInbox(); !strings.HasPrefix(inbox, want) {
			t.Errorf("InboxPrefix %q: inbox %q, want prefix %q", prefix, inbox, want)
		}
		conn.Close()
	}
}

// TestRequestReplyWithTheServiceInbox: core request/reply works for a
// user that may subscribe to its own inbox prefix only.
func TestRequestReplyWithTheServiceInbox(t *testing.T) {
	order := testenv.User{Name: "order", Password: "order-pw", Permissions: &testenv.Permissions{
		Publish: []string{"$JS.API.>", "echo"}, Subscribe: []string{"_INBOX_order.>"}}}
	responder := testenv.User{Name: "responder", Password: "responder-pw"}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.Users(order, responder)})
	rc := responder.Credentials().Apply(srv.Config("responder"))
	rconn, err := framework.Connect(context.Background(), rc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close()
	if _, err := rconn.NC.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := rconn.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	conn, err := framework.Connect(context.Background(), order.Credentials().Apply(srv.Config("order")), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := conn.NC.RequestWithContext(ctx, "echo", []byte{byte('a' + i)})
		cancel()
		if err != nil || string(reply.Data) != string(rune('a'+i)) {
			t.Fatalf("request %d: %v %v", i, reply, err)
		}
	}
}

// FromEnv starts from the given configuration: a program's own name stands
// unless its variable overrides it, and what the environment sets wins.
func TestFromEnvOverlaysTheGivenConfig(t *testing.T) {
	base := framework.DefaultConfig()
	base.ServiceName = "order"
	base.Concurrency = 3
	t.Setenv("ORDER_CONCURRENCY", "12")
	cfg, err := base.FromEnv("ORDER")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServiceName != "order" || cfg.Concurrency != 12 {
		t.Fatalf("service %q concurrency %d, want order (given) and 12 (ORDER_CONCURRENCY)", cfg.ServiceName, cfg.Concurrency)
	}
	t.Setenv("ORDER_SERVICE_NAME", "order-eu")
	if cfg, err = base.FromEnv("ORDER"); err != nil || cfg.ServiceName != "order-eu" {
		t.Fatalf("service %q (%v), want ORDER_SERVICE_NAME to win", cfg.ServiceName, err)
	}
	t.Setenv("ORDER_ACK_WAIT", "soon")
	if _, err := base.FromEnv("ORDER"); err == nil || !strings.Contains(err.Error(), "ORDER_ACK_WAIT") {
		t.Fatalf("error %v, want it to name ORDER_ACK_WAIT", err)
	}
}
