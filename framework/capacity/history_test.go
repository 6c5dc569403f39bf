package capacity

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// The history outlives its watcher: estimates recorded by one History are
// loaded by the next, in time order, newest kept within max; records that
// are malformed or out of bounds (anyone allowed to publish there may
// write them) are skipped and counted.
func TestHistoryIsKeptInTheServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testenv.Start(t)
	conn, err := framework.Connect(ctx, srv.Config("history-test"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := OpenHistory(ctx, conn.JS, "ORDERS", "billing", time.Hour, 10)
	if err != nil {
		t.Fatal(err)
	}
	mem := NewHistory(time.Hour, 3)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i := range 4 {
		est := Estimate{At: t0.Add(time.Duration(i) * time.Second), Status: StatusWarn, Backlog: float64(100 * i), Instances: 2, ReplicasNeeded: 3}
		est.Arrival.PerSecond, est.ServiceRate.PerSecond, est.Capacity = 50, 20, 40
		if err := h.Record(ctx, est); err != nil {
			t.Fatal(err)
		}
		if err := mem.Record(ctx, est); err != nil {
			t.Fatal(err)
		}
	}
	if got := mem.Points(); len(got) != 3 || got[0].Backlog != 100 || got[2].Backlog != 300 {
		t.Fatalf("in memory with max 3: %+v, want the 3 newest (backlog 100, 200, 300)", got)
	}
	for _, forged := range []string{`{not json`, `{"at":"2026-12-03T10:00:00Z","status":"OK","backlog":-5}`,
		`{"at":"2026-12-03T10:00:00Z","status":"<script>","backlog":1}`, `{"status":"OK"}`} {
		if _, err := conn.JS.Publish(ctx, "jetkit.capacity.ORDERS.billing", []byte(forged)); err != nil {
			t.Fatal(err)
		}
	}

	h2, err := OpenHistory(ctx, conn.JS, "ORDERS", "billing", time.Hour, 10)
	if err != nil {
		t.Fatal(err)
	}
	var backlogs []string
	for _, p := range h2.Points() {
		if p.Status != StatusWarn || p.Instances != 2 || p.ReplicasNeeded != 3 || p.ServiceRate != 20 || p.Capacity != 40 {
			t.Errorf("loaded %+v, not a point recorded", p)
		}
		backlogs = append(backlogs, fmt.Sprint(p.Backlog))
	}
	if got := strings.Join(backlogs, " "); got != "0 100 200 300" || h2.Skipped() != 4 {
		t.Fatalf("reloaded backlogs %q with %d skipped, want \"0 100 200 300\" and the 4 forged records skipped", got, h2.Skipped())
	}

	info, err := conn.JS.Stream(ctx, HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if cfg.MaxMsgsPerSubject != 10 || cfg.MaxAge != time.Hour || cfg.Storage != jetstream.FileStorage {
		t.Errorf("history stream config %+v: want 10 per consumer, 1h, file storage", cfg)
	}
}
