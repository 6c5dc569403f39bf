package scaffolding

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInsertInRegion(t *testing.T) {
	src := []byte("func f() {\n\tuser()\n\t// jetkit:begin calls (managed)\n\t// jetkit:end calls\n\tmore()\n}\n")
	out, inserted, err := insertInRegion("f.go", src, "calls", []byte("if x {\n\treturn\n}\n"))
	if err != nil || !inserted {
		t.Fatalf("insert: %v, inserted %v", err, inserted)
	}
	want := "func f() {\n\tuser()\n\t// jetkit:begin calls (managed)\n\tif x {\n\t\treturn\n\t}\n\t// jetkit:end calls\n\tmore()\n}\n"
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	again, inserted, err := insertInRegion("f.go", out, "calls", []byte("if x {\n\treturn\n}\n"))
	if err != nil || inserted || string(again) != want {
		t.Fatalf("second insert of the same lines changed the file (inserted %v, err %v)", inserted, err)
	}
	_, _, err = insertInRegion("f.go", []byte("func f() {\n\t// jetkit:begin calls\n}\n"), "calls", []byte("x()\n"))
	if err == nil || !strings.Contains(err.Error(), "f.go") || !strings.Contains(err.Error(), "jetkit:end calls") {
		t.Fatalf("missing end marker: %v, want an error naming the file and the marker", err)
	}
}

// outsideRegions drops the lines between jetkit:begin and jetkit:end.
func outsideRegions(s string) string {
	var keep []string
	in := false
	for _, l := range strings.Split(s, "\n") {
		switch {
		case strings.Contains(l, beginMarker):
			in = true
		case strings.Contains(l, endMarker):
			in = false
		case in:
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func TestAddEventTouchesOnlyMarkedRegions(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t),
		Consumes: []string{"orders.created.v1"}}); err != nil {
		t.Fatal(err)
	}
	// User code outside the regions, deliberately not gofmt-formatted: it
	// must survive byte for byte.
	edits := map[string]string{
		streamsFile: "\n// UserStreams   is mine.\nfunc UserStreams() int { return 1 }\n",
		setupFile:   "\nfunc   userSetup() {}\n",
		readmeFile:  "\nMy notes.\n",
	}
	before := map[string]string{}
	for rel, extra := range edits {
		p := filepath.Join(dir, rel)
		src := readFile(t, p) + extra
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		before[rel] = src
	}
	handler := filepath.Join(dir, "internal/handlers/orders_created_v1.go")
	userHandler := strings.Replace(readFile(t, handler), "return nil", "return nil // my code", 1)
	if err := os.WriteFile(handler, []byte(userHandler), 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := AddEvent(filepath.Join(dir, "internal", "events"), "refunds.issued.v1", true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dir != dir {
		t.Fatalf("AddEvent found the service at %s, want %s", res.Dir, dir)
	}
	for rel, old := range before {
		now := readFile(t, filepath.Join(dir, rel))
		if outsideRegions(now) != outsideRegions(old) {
			t.Errorf("%s changed outside its marked regions:\n--- before\n%s\n--- after\n%s", rel, old, now)
		}
		if now == old {
			t.Errorf("%s: nothing was added to its region", rel)
		}
	}
	if readFile(t, handler) != userHandler {
		t.Errorf("AddEvent changed an existing handler")
	}
	for _, want := range []string{"internal/events/refunds_issued_v1.go", "internal/events/refunds_stream.go",
		"internal/handlers/refunds_issued_v1.go", "internal/handlers/refunds_issued_v1_test.go"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("AddEvent did not write %s: %v", want, err)
		}
	}

	// A consumed domain's stream is the producer's: not in Streams.
	streams := readFile(t, filepath.Join(dir, streamsFile))
	if regionHolds([]byte(streams), "streams", "RefundsStream,") || !regionHolds([]byte(streams), "consumed-streams", "RefundsStream,") {
		t.Errorf("RefundsStream of a consumed event should be in ConsumedStreams only:\n%s", streams)
	}
	// A second event in a known domain adds no stream file; publishing
	// into the domain makes the service its owner.
	if _, err := AddEvent(dir, "refunds.denied.v1", false); err != nil {
		t.Fatal(err)
	}
	streams = readFile(t, filepath.Join(dir, streamsFile))
	if n := strings.Count(streams, "RefundsStream,"); n != 2 || !regionHolds([]byte(streams), "streams", "RefundsStream,") {
		t.Errorf("RefundsStream listed %d times, want in Streams and ConsumedStreams:\n%s", n, streams)
	}
	// --consume on a declared, unconsumed event adds just its handler.
	eventFile := filepath.Join(dir, "internal/events/refunds_denied_v1.go")
	declared := readFile(t, eventFile)
	res, err = AddEvent(dir, "refunds.denied.v1", true)
	if err != nil {
		t.Fatalf("AddEvent --consume of a declared event: %v", err)
	}
	if got := strings.Join(res.Files, " "); got != "README.md internal/handlers/refunds_denied_v1.go internal/handlers/refunds_denied_v1_test.go internal/handlers/setup.go" {
		t.Errorf("AddEvent --consume of a declared event wrote %s", got)
	}
	if readFile(t, eventFile) != declared {
		t.Errorf("AddEvent --consume rewrote the declared event")
	}

	for subject, want := range map[string]string{
		"refunds.issued.v1":   "already declared and consumed",
		"refunds.denied.v1":   "already declared and consumed",
		"Refunds.issued.v1":   `use "refunds.issued.v1"`,
		"refunds.issued.v2:x": `unknown suffix ":x"`,
		"refunds.issued":      "expected <domain>.<event>.v<N>",
		"refunds.issued.*.v1": "wildcard",
	} {
		_, err := AddEvent(dir, subject, true)
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("AddEvent(%q) = %v, want an error saying %q", subject, err, want)
		}
	}
}

func TestAddEventRefusesWithoutMarkersAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t)}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, streamsFile)
	stripped := strings.Replace(readFile(t, p), "// jetkit:end streams", "", 1)
	if err := os.WriteFile(p, []byte(stripped), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := AddEvent(dir, "orders.created.v1", false)
	if err == nil || !strings.Contains(err.Error(), streamsFile) || !strings.Contains(err.Error(), "jetkit:end streams") {
		t.Fatalf("AddEvent = %v, want an error naming %s and the missing marker", err, streamsFile)
	}
	if _, err := os.Stat(filepath.Join(dir, "internal/events/orders_created_v1.go")); err == nil {
		t.Fatalf("AddEvent wrote files although it failed")
	}
	if _, err := AddEvent(t.TempDir(), "orders.created.v1", false); err == nil || !strings.Contains(err.Error(), "no go.mod") {
		t.Fatalf("AddEvent outside a service = %v, want an error saying there is no go.mod", err)
	}
}
