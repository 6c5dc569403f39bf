package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/nats-io/nats.go/jetstream"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

func runDLQCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDLQCommandsRoundTrip(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	conn, err := framework.Connect(ctx, srv.Config("dlq-cli-test"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "DEADLETTER", Subjects: []string{wire.DeadLetterSubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	for range 7 { // the originals: the dead letters below are about sequence 7
		if _, err := conn.JS.Publish(ctx, "orders.created.v1", []byte(`{"id":"o-1"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i, reason := range []string{dlq.ReasonMaxDeliver, dlq.ReasonPermanent, dlq.ReasonMaxDeliver} {
		h := nats.Header{}
		h.Set("ce-id", "evt-"+string(rune('a'+i)))
		h.Set(wire.HeaderDLQReason, reason)
		h.Set(wire.HeaderDLQError, "payment gateway said no")
		h.Set(wire.HeaderDLQSubject, "orders.created.v1")
		h.Set(wire.HeaderDLQStream, "ORDERS")
		h.Set(wire.HeaderDLQConsumer, "billing")
		h.Set(wire.HeaderDLQStreamSeq, "7")
		h.Set(wire.HeaderDLQDelivered, "5")
		h.Set(wire.HeaderDLQTime, "2026-11-27T10:00:00Z")
		if _, err := conn.JS.PublishMsg(ctx, &nats.Msg{Subject: wire.DeadLetterSubject("ORDERS", "billing"), Header: h, Data: []byte(`{"id":"o-1"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	url := srv.URL()

	out, err := runDLQCmd(t, "dlq", "list", "--url", url)
	if err != nil || strings.Count(out, "payment gateway said no") != 3 || !strings.Contains(out, "ORDERS/billing") || !strings.Contains(out, "max-deliver") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	t.Logf("list:\n%s", out)
	out, err = runDLQCmd(t, "dlq", "list", "--url", url, "--reason", "max-deliver", "--json")
	var rows []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 || rows[0]["subject"] != "orders.created.v1" {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	out, err = runDLQCmd(t, "dlq", "show", "2", "--url", url)
	if err != nil || !strings.Contains(out, "permanent") || !strings.Contains(out, `{"id":"o-1"}`) || !strings.Contains(out, "evt-b") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	t.Logf("show:\n%s", out)
	if _, err := runDLQCmd(t, "dlq", "show", "99", "--url", url); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("show missing: %v", err)
	}
	if _, err := runDLQCmd(t, "dlq", "replay", "--url", url); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("replay without a filter must refuse: %v", err)
	}
	out, err = runDLQCmd(t, "dlq", "replay", "--url", url, "--reason", "max-deliver")
	if err != nil || !strings.Contains(out, "replayed 2 dead letter(s)") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	out, err = runDLQCmd(t, "dlq", "replay", "--url", url, "--reason", "max-deliver")
	if err != nil || !strings.Contains(out, "replayed 0 dead letter(s)") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	st, _ := conn.JS.Stream(ctx, "ORDERS")
	info, _ := st.Info(ctx)
	if info.State.Msgs != 7+2 {
		t.Fatalf("ORDERS holds %d messages, want 7 originals + 2 replayed", info.State.Msgs)
	}
	out, err = runDLQCmd(t, "dlq", "purge", "--url", url, "--all")
	if err != nil || !strings.Contains(out, "purged 1 dead letter(s)") {
		t.Fatalf("purge: %v\n%s", err, out)
	}
}
