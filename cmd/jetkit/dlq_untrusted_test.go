package main

import (
	"context"
	"encoding/json"
	"github.com/nats-io/nats.go/jetstream"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// untrustedDLQ starts a server with ORDERS (holding one message,
// orders.created.v1 at sequence 1) and the dead-letter stream, and writes
// one dead letter per header set; it returns the server URL and the
// connection.
func untrustedDLQ(t *testing.T, entries ...nats.Header) (string, *framework.Conn) {
	t.Helper()
	srv := testenv.Start(t)
	ctx := context.Background()
	conn, err := framework.Connect(ctx, srv.Config("dlq-untrusted"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if _, err := conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "DEADLETTER", Subjects: []string{wire.DeadLetterSubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.Publish(ctx, "orders.created.v1", []byte(`{"id":"o-1"}`)); err != nil { // ORDERS/1, the original
		t.Fatal(err)
	}
	for _, h := range entries {
		data := []byte(h.Get("Test-Payload"))
		h.Del("Test-Payload")
		if _, err := conn.JS.PublishMsg(ctx, &nats.Msg{Subject: wire.DeadLetterSubject("ORDERS", "billing"), Header: h, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	return srv.URL(), conn
}

func deadLetterHeader(subject string, extra map[string]string) nats.Header {
	h := nats.Header{}
	h.Set(wire.HeaderDLQReason, dlq.ReasonPermanent)
	h.Set(wire.HeaderDLQSubject, subject)
	h.Set(wire.HeaderDLQStream, "ORDERS")
	h.Set(wire.HeaderDLQConsumer, "billing")
	for k, v := range extra {
		h.Set(k, v)
	}
	return h
}

func TestDLQShowAndListEscapeControlCharacters(t *testing.T) {
	const evil = "\x1b[2J\x1b]0;owned\x07\u202e"
	url, _ := untrustedDLQ(t, deadLetterHeader("orders.created.v1", map[string]string{
		wire.HeaderDLQError: "boom " + evil,
		"ce-id":             "id" + evil,
		"X-Evil":            evil,
		"Test-Payload":      `{"note":"` + evil + "\r\nreason: fine\"}",
	}))
	for _, args := range [][]string{{"dlq", "show", "1"}, {"dlq", "list"}} {
		out, err := runDLQCmd(t, append(args, "--url", url)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if strings.ContainsAny(out, "\x1b\x07\r\u202e") {
			t.Errorf("%v wrote control characters to the terminal:\n%q", args, out)
		}
		if !strings.Contains(out, `\x1b[2J\x1b]0;owned\x07\u202e`) {
			t.Errorf("%v does not show the escaped text:\n%s", args, out)
		}
	}
	for _, args := range [][]string{{"dlq", "show", "1", "--json"}, {"dlq", "list", "--json"}} {
		out, err := runDLQCmd(t, append(args, "--url", url)...)
		var v any
		if err != nil || json.Unmarshal([]byte(out), &v) != nil || strings.ContainsAny(out, "\x1b\x07\r\u202e") || !strings.Contains(out, `\u001b[2J\u001b]0;owned\u0007\u202e`) {
			t.Errorf("%v: %v\n%q", args, err, out)
		}
	}
	out, err := runDLQCmd(t, "dlq", "show", "1", "--url", url)
	for _, field := range []string{"stream sequence", "deliveries", "dead-lettered", "event type"} { // headers the entry lacks
		if !regexp.MustCompile(`(?m)^` + field + `:\s+unknown$`).MatchString(out) {
			t.Errorf("show must say %s is unknown, not print a zero value:\n%s", field, out)
		}
	}
	if err != nil || !strings.Contains(out, `\x0d`+"\nreason: fine") {
		t.Errorf("a payload keeps its line breaks, but a carriage return is escaped: %v\n%s", err, out)
	}
	out, err = runDLQCmd(t, "dlq", "show", "1", "--raw", "--url", url)
	if err != nil || !strings.Contains(out, "X-Evil: "+evil) || !strings.Contains(out, evil+"\r\nreason: fine") {
		t.Errorf("show --raw must print the bytes as they are: %v\n%q", err, out)
	}
}

func TestDLQReplayPrintsWhatItRefused(t *testing.T) {
	url, conn := untrustedDLQ(t,
		deadLetterHeader("$JS.API.STREAM.PURGE.ORDERS\x1b[2J", nil),
		deadLetterHeader("orders.created.v1", map[string]string{wire.HeaderDLQStreamSeq: "1"}),
	)
	out, err := runDLQCmd(t, "dlq", "replay", "--all", "--url", url)
	if err == nil || !strings.Contains(err.Error(), "1 dead letter(s) refused") {
		t.Errorf("replay with a refusal must fail: %v", err)
	}
	if !strings.Contains(out, `refused 1 -> $JS.API.STREAM.PURGE.ORDERS\x1b[2J: replay refused`) ||
		!strings.Contains(out, "replayed 2 -> orders.created.v1") || !strings.Contains(out, "replayed 1 dead letter(s) from DEADLETTER; 1 refused, 0 failed") {
		t.Errorf("replay output:\n%s", out)
	}
	st, _ := conn.JS.Stream(context.Background(), "ORDERS")
	if info, err := st.Info(context.Background()); err != nil || info.State.Msgs != 2 {
		t.Fatalf("ORDERS after replay: %+v %v; want the original and its replay", info.State, err)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestDLQReplayAsOpsKeepsForgedEntriesOut is the reported attack with the
// repository's permissions file: the inventory user forges a dead letter
// whose original subject purges ORDERS; the operator runs jetkit dlq
// replay --all as the full-access ops user; ORDERS keeps its messages.
func TestDLQReplayAsOpsKeepsForgedEntriesOut(t *testing.T) {
	pw := map[string]string{"order": "order-pw-1", "inventory": "inventory-pw-2", "ops": "ops-pw-3"}
	for user, p := range pw {
		t.Setenv(strings.ToUpper(user)+"_NATS_PASSWORD", p)
	}
	srv := testenv.Start(t, testenv.Options{Configure: testenv.AuthFromConfigFile(t, "../../deploy/nats-permissions.conf")})
	ctx := context.Background()
	connect := func(user string) *framework.Conn {
		c, err := framework.Connect(ctx, testenv.Credentials{User: user, Password: pw[user]}.Apply(srv.Config(user)), quietLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	ops := connect("ops")
	if _, err := ops.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "DEADLETTER", Subjects: []string{wire.DeadLetterSubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	const orders = 5
	for i := range orders {
		if _, err := ops.JS.Publish(ctx, "orders.created.v1.o-"+strconv.Itoa(i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	inv := connect("inventory")
	consumer := wire.PartitionConsumer("inventory", 0) // it reads ORDERS partitioned
	if _, err := inv.JS.PublishMsg(ctx, &nats.Msg{Subject: wire.DeadLetterSubject("ORDERS", consumer),
		Header: deadLetterHeader("$JS.API.STREAM.PURGE.ORDERS", map[string]string{wire.HeaderDLQConsumer: consumer})}); err != nil {
		t.Fatal(err)
	}

	t.Setenv("JETKIT_NATS_URL", srv.URL())
	t.Setenv("JETKIT_NATS_USER", "ops")
	t.Setenv("JETKIT_NATS_PASSWORD", pw["ops"])
	for _, args := range [][]string{{"dlq", "replay", "--all", "--dry-run"}, {"dlq", "replay", "--all"}} {
		code, out, stderr := runMain(args...)
		if code != 1 || !strings.Contains(out, "refused 1 -> $JS.API.STREAM.PURGE.ORDERS: replay refused") || !strings.Contains(out, "0 dead letter(s) from DEADLETTER; 1 refused, 0 failed") {
			t.Errorf("jetkit %v: exit %d\n%s%s", args, code, out, stderr)
		}
		if strings.Contains(out+stderr, pw["ops"]) {
			t.Errorf("jetkit %v printed the ops password", args)
		}
	}
	// Reconcile: ORDERS holds what was published; the forged entry stays.
	st, _ := ops.JS.Stream(ctx, "ORDERS")
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != orders {
		t.Fatalf("ORDERS: %+v %v; want its %d messages", info.State, err, orders)
	}
	dl, _ := ops.JS.Stream(ctx, "DEADLETTER")
	if info, err := dl.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("DEADLETTER: %+v %v; want the forged entry kept", info.State, err)
	}
}
