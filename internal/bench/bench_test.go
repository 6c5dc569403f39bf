package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestOptionsValidateListsEveryProblem(t *testing.T) {
	o := Short()
	o.MsgSize = 10
	o.Concurrencies = []int{0}
	o.Replicas = 0
	o.Rounds = 0
	o.Scenarios = []string{"publish-sync", "nope"}
	err := o.validate()
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, want := range []string{"message size 10", "concurrency 0", "replicas 0", "rounds 0", `scenario "nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	for name, o := range map[string]Options{"Full": Full(), "Short": Short()} {
		if err := o.validate(); err != nil {
			t.Errorf("%s(): %v", name, err)
		}
	}
}

func TestEventEncodesToMsgSize(t *testing.T) {
	for _, size := range []int{minMsgSize, 128, 1024} {
		e := &env{opts: Options{MsgSize: size}, pad: strings.Repeat("x", size-jsonOverhead)}
		b, err := json.Marshal(e.event(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size {
			t.Errorf("size %d: the event encodes to %d bytes", size, len(b))
		}
		if raw := e.rawPayload(time.Unix(0, 42)); len(raw) != size || rawSent(raw) != 42 {
			t.Errorf("size %d: raw payload of %d bytes carries time %d", size, len(raw), rawSent(raw))
		}
	}
}

func TestQuantiles(t *testing.T) {
	l := newLatencies(1000)
	now := time.Now().UnixNano()
	for i := range 1000 {
		l.ns[i] = int64(i+1) * int64(time.Millisecond)
	}
	l.next.Store(1000)
	q := l.quantiles()
	want := [4]float64{500, 900, 990, 999}
	for i := range q {
		if q[i] != want[i] {
			t.Errorf("quantile %d = %v ms, want %v", i, q[i], want[i])
		}
	}
	l2 := newLatencies(1)
	l2.record(now)
	select {
	case <-l2.done:
	default:
		t.Fatal("recording the last latency did not signal done")
	}
}

func TestPacePublishesAtTheRate(t *testing.T) {
	n := 0
	start := time.Now()
	if err := pace(context.Background(), 1000, 100, func() error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("published %d, want 100", n)
	}
	// 100 messages at 1000/s cannot be done before about 99 ms; no upper
	// bound is asserted (the machine may be slow).
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Fatalf("100 messages at 1000/s took only %s", d)
	}
}

func TestReportOutputs(t *testing.T) {
	pass, miss := true, false
	rep := &Report{Server: "embedded", Storage: "file", Replicas: 1, MsgSize: 128, Middleware: []string{"logging"},
		Results: []Result{
			{Scenario: ScenarioConsumeAsync, Case: "c=1", Unit: "msgs/s", Raw: 1234567, Jetkit: 1000000, Ratio: 0.81, Target: ">= 0.90x", Pass: &miss, RawCPU: 8, JetkitCPU: 12, RawAllocs: 30, JetkitAllocs: 36},
			{Scenario: ScenarioMemory, Case: "peak RSS", Unit: "MiB", Raw: 100, Jetkit: 90, Ratio: 0.9, Target: "jetkit <= 2 MiB", Pass: &pass, Note: "a | b"},
		}}
	if f := rep.Failed(); len(f) != 1 || f[0].Scenario != ScenarioConsumeAsync {
		t.Fatalf("Failed() = %+v", f)
	}
	var table, md, js bytes.Buffer
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1,234,567", "1,000,000", "0.81x", "MISS", "12.0", "1.50x", "36.0", "peak RSS", "1 target(s) missed"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if err := WriteMarkdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| consume-async | c=1 | msgs/s | 1,234,567 | 1,000,000 | 0.81x | >= 0.90x | MISS | 8.0 | 12.0 | 1.50x | 30.0 | 36.0 |") {
		t.Errorf("markdown row:\n%s", md.String())
	}
	if !strings.Contains(md.String(), `| a \| b |`) {
		t.Errorf("a pipe in a note must be escaped, or it ends the cell:\n%s", md.String())
	}
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != 2 || *back.Results[0].Pass {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

// The wire-cost variants differ in exactly what they claim to: the pad
// header fills the same number of header bytes as jetkit's envelope, the
// CloudEvents variant lacks only Nats-Msg-Id.
func TestWireCostVariants(t *testing.T) {
	sent := time.Unix(1764230400, 123456789)
	full := eventHeaders("orders.created.v1", sent)
	size := headerBlockSize(full)
	if size < 150 || size > 300 {
		t.Fatalf("jetkit's header block measures %d bytes; expected about 230", size)
	}
	pad := padHeader()
	if got := headerBlockSize(pad("orders.created.v1", sent)); got != size {
		t.Errorf("pad header block is %d bytes, want %d", got, size)
	}
	long := "jkbabcdefgh.wirecost12.v1"
	if got, want := headerBlockSize(pad(long, sent)), headerBlockSize(eventHeaders(long, sent)); got != want {
		t.Errorf("pad header block on %s is %d bytes, want %d", long, got, want)
	}
	ce := ceHeaders("orders.created.v1", sent)
	if _, ok := ce[nats.MsgIdHdr]; ok || len(ce) != len(full)-1 {
		t.Errorf("CloudEvents variant %v: want jetkit's headers without %s", ce, nats.MsgIdHdr)
	}
	if h := msgIDHeader("orders.created.v1", sent); len(h) != 1 || h.Get(nats.MsgIdHdr) == "" {
		t.Errorf("Nats-Msg-Id variant %v: want that one header", h)
	}
}
