package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestUsageErrorsExit2 needs no server: every mistake is caught before
// connecting, named, and exits 2; a failure to connect exits 1.
func TestUsageErrorsExit2(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--reason", "bogus"}, `reason "bogus"`},
		{[]string{"dlq", "lst"}, `unknown command "lst"; did you mean list?`},
		{[]string{"dlq"}, "name a command: list, purge, replay, show"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"dlq", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit -1"},
		{[]string{"dlq", "list", "--from", "9", "--to", "3"}, "from sequence 9 is after to sequence 3"},
		{[]string{"dlq", "show", "abc"}, `"abc" is not a dead-letter sequence`},
		{[]string{"dlq", "show"}, "accepts 1 arg(s)"},
		{[]string{"dlq", "replay"}, "--all"},
		{[]string{"dlq", "purge", "--consumer", "a.b"}, "consumer"},
		{[]string{"bench", "extra"}, `takes no arguments, got ["extra"]`},
		{[]string{"capacity", "--interval", "soon"}, "--interval"},
		{[]string{"new"}, "name a command: event, service"},
		{[]string{"help", "bogus"}, `unknown help topic "bogus"`},
		{[]string{"help", "dlq", "lst"}, `unknown help topic "dlq lst"`},
		{[]string{"new", "servce", "x"}, "did you mean service?"},
		{[]string{"publish", "orders.created.v1"}, "accepts 2 arg(s)"},
		{[]string{"publish", "orders.created.v1", "{not json"}, "event data from DATA is not JSON"},
		{[]string{"publish", "$JS.API.STREAM.PURGE.X", "{}"}, "system, inbox or dead-letter subject"},
		{[]string{"publish", "jetkit.deadletter.ORDERS.billing", "{}"}, "system, inbox or dead-letter subject"},
		{[]string{"publish", "orders..v1", "{}"}, "SUBJECT"},
		{[]string{"publish", "orders.created.v1", "--header", "novalue", "{}"}, `--header "novalue": write name=value`},
		{[]string{"publish", "orders.created.v1", "--header", "ce-id=x", "{}"}, "use --id and --type"},
	} {
		code, _, stderr := runMain(c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "--help") {
			t.Errorf("jetkit %s: exit %d, stderr %q; want exit 2 naming %q and pointing at --help", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	if code, _, stderr := runMain("dlq", "list", "--url", "nats://127.0.0.1:1"); code != 1 || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("a failure to connect: exit %d, %q; want 1 naming the server", code, stderr)
	}
}

func TestHelpTopics(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "dlq"}, {"help", "dlq", "replay"}, {"dlq", "--help"}} {
		if code, out, stderr := runMain(args...); code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("jetkit %v: exit %d\n%s%s", args, code, out, stderr)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	code, out, _ := runMain("--version")
	if code != 0 || !strings.HasPrefix(out, "jetkit ") || !strings.Contains(out, "go1.") {
		t.Fatalf("jetkit --version: exit %d, %q", code, out)
	}
}
