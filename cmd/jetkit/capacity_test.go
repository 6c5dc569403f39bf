package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/capacity"
	"github.com/jetkit/jetkit/testenv"
)

// capacityServer is an embedded server with stream CAP holding 100
// messages and a durable consumer "idle" that nobody reads.
func capacityServer(t *testing.T) *testenv.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := testenv.Start(t)
	conn, err := framework.Connect(ctx, srv.Config("capacity-test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "CAP", Subjects: []string{"cap.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "idle", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := conn.JS.Publish(ctx, "cap.x", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The server counts a stored message as pending a moment after it acks
	// the publish; a sample taken before would see the backlog still
	// growing, as if messages were arriving.
	testenv.Eventually(t, 10*time.Second, "consumer idle counts all 100 pending", func() bool {
		c, err := st.Consumer(ctx, "idle")
		return err == nil && c.CachedInfo().NumPending == 100
	})
	return srv
}

func runJetkit(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestCapacityOnceJSON(t *testing.T) {
	srv := capacityServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := runJetkit(ctx, "capacity", "--stream", "CAP", "--consumer", "idle", "--url", srv.URL(),
		"--once", "--json", "--interval", "50ms", "--once-samples", "4", "--mu", "10", "--target-drain", "30s", "--add", "1", "--startup-delay", "2s")
	if err != nil {
		t.Fatalf("jetkit capacity: %v\n%s", err, out)
	}
	var got struct {
		Status        string  `json:"status"`
		Backlog       float64 `json:"backlog"`
		Pending       uint64  `json:"pending"`
		ServiceSource string  `json:"service_source"`
		TimeLagSource string  `json:"time_lag_source"`
		TimeLag       float64 `json:"time_lag_s"`
		Drains        bool    `json:"drains"`
		Plan          struct {
			Total int `json:"total"`
			Add   int `json:"add"`
		} `json:"plan"`
		WhatIf struct {
			Drain float64 `json:"drain_s"`
		} `json:"what_if"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	// Nobody reads "idle": STOP, and a stopped consumer's instances count
	// as 0, so the backlog never drains as it is. With μ = 10/s and nothing
	// arriving, one instance started now is ready after 2s and drains 100
	// in 10s more, within the 30s target: add 1. --add 1 says the same.
	if got.Status != "STOP" || got.Backlog != 100 || got.Pending != 100 || got.ServiceSource != "configured" ||
		got.Drains || got.Plan.Total != 1 || got.Plan.Add != 1 ||
		got.TimeLagSource != "read" || got.TimeLag <= 0 ||
		got.WhatIf.Drain < 11.9 || got.WhatIf.Drain > 12.1 {
		t.Fatalf("unexpected estimate: %+v\n%s", got, out)
	}
}

func TestCapacityLiveWeb(t *testing.T) {
	srv := capacityServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var out string
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, runErr = runJetkit(ctx, "capacity", "--stream", "CAP", "--consumer", "idle", "--url", srv.URL(),
			"--interval", "50ms", "--web", addr)
	}()
	get := func(path string) (string, bool) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode == http.StatusOK
	}
	testenv.Eventually(t, 20*time.Second, "the page shows STOP with charts", func() bool {
		p, ok := get("/")
		return ok && strings.Contains(p, `class="STOP"`) && strings.Contains(p, "<svg")
	})
	testenv.Eventually(t, 10*time.Second, "metrics export the backlog and status", func() bool {
		m, ok := get("/metrics")
		return ok && strings.Contains(m, "jetkit_capacity_backlog{") && strings.Contains(m, "} 100") &&
			strings.Contains(m, "jetkit_capacity_status{")
	})
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("jetkit capacity: %v", runErr)
	}
	if !strings.Contains(out, "STOP  backlog=100") {
		t.Errorf("live output (not a terminal: one line per interval) lacks the STOP line:\n%s", out)
	}
}

// Unknown values are words in the line output, never -1 sentinels.
func TestCapacityLineSaysUnknownInWords(t *testing.T) {
	e := capacity.Estimate{Status: "OK", ServiceSource: capacity.SourceUnknown, Utilisation: -1, ReplicasNeeded: -1,
		Plan: capacity.ScalePlan{Total: -1, Needed: -1}}
	line := capacityLine(e, nil)
	if strings.Contains(line, "-1") || !strings.Contains(line, "μ=unknown") || !strings.Contains(line, "ρ=unknown") ||
		!strings.Contains(line, "recommend=unknown") || !strings.Contains(line, "needed=unknown") {
		t.Fatalf("line %q: want unknowns in words, no -1", line)
	}
}
