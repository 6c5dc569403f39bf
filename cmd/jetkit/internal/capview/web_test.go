package capview

import (
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework/capacity"
)

// source is a Source with fixed samples.
type source struct{ samples []capacity.Sample }

func (s source) Stream() string                  { return "ORDERS" }
func (s source) Consumer() string                { return "billing" }
func (s source) Samples() []capacity.Sample      { return s.samples }
func (s source) IntervalDuration() time.Duration { return time.Second }
func (s source) Err() error                      { return nil }

// synthetic holds 11 samples, 1s apart, of an unfiltered consumer
// receiving 100/s and processing 50/s with 1000 waiting at the start
// (capacity's TestEstimateSynthetic computes its estimate by hand: WARN,
// add 2 -> 3 instances).
func synthetic() source {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var s source
	for i := range 11 {
		s.samples = append(s.samples, capacity.Sample{
			At:             t0.Add(time.Duration(i) * time.Second),
			NumPending:     uint64(1000 + 50*i),
			Delivered:      jetstream.SequenceInfo{Consumer: uint64(50 * i), Stream: uint64(50 * i)},
			AckFloor:       jetstream.SequenceInfo{Consumer: uint64(50 * i), Stream: uint64(50 * i)},
			MaxAckPending:  1000,
			OldestSeq:      uint64(50*i + 1),
			StreamFirstSeq: 1, StreamFirstTime: t0.Add(-10 * time.Second),
			StreamLastSeq: uint64(1050 + 100*i), StreamLastTime: t0.Add(time.Duration(i) * time.Second),
		})
	}
	return s
}

func TestWebAndMetrics(t *testing.T) {
	s := synthetic()
	e := capacity.NewEstimator(capacity.Params{StartupDelay: 15 * time.Second})
	if _, err := e.Estimate(s.Stream(), s.Consumer(), s.Samples()); err != nil {
		t.Fatal(err)
	}
	metrics, shutdown, err := capacity.PrometheusHandler(capacity.NamedEstimator{Stream: "ORDERS", Consumer: "billing", Estimator: e})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	srv := httptest.NewServer(Handler(s, e, nil, metrics))
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
		}
		return string(b)
	}
	page := get("/")
	for _, want := range []string{"<svg", "<polyline", "predicted with 3 instance(s)", `class="WARN"`, "add 2 → 3 instance(s)", `http-equiv="refresh"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("page has JavaScript")
	}
	raw := get("/estimate.json")
	for _, want := range []string{`"earliest_s":15.000`, `"drain_s":60.000`, `"t_s":0.000`} {
		if !strings.Contains(raw, want) {
			t.Errorf("estimate.json lacks %s: %s", want, raw)
		}
	}
	var est capacity.Estimate
	if err := json.Unmarshal([]byte(raw), &struct {
		Status *capacity.Status `json:"status"`
		Plan   *struct {
			Total *int `json:"total"`
		} `json:"plan"`
	}{Status: &est.Status, Plan: &struct {
		Total *int `json:"total"`
	}{Total: &est.Plan.Total}}); err != nil {
		t.Fatal(err)
	}
	if est.Status != capacity.StatusWarn || est.Plan.Total != 3 {
		t.Errorf("estimate.json: status %s total %d, want WARN 3", est.Status, est.Plan.Total)
	}
	prom := get("/metrics")
	for _, want := range []string{
		`jetkit_capacity_replicas_needed{consumer="billing",otel_scope_name="` + capacity.MeterName,
		`jetkit_capacity_status{consumer="billing"`,
		`jetkit_capacity_arrival_rate_per_second{consumer="billing"`,
		`jetkit_capacity_time_lag_seconds{consumer="billing"`,
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !hasSample(prom, "jetkit_capacity_replicas_needed", "3") || !hasSample(prom, "jetkit_capacity_status", "1") {
		t.Errorf("metrics: replicas_needed 3 and status 1 expected:\n%s", grepLines(prom, "jetkit_capacity"))
	}
	if strings.Contains(prom, "jetkit_capacity_drain_time") {
		t.Error("drain time exported although the backlog never drains at this capacity")
	}
}

func hasSample(prom, name, value string) bool {
	for _, l := range strings.Split(prom, "\n") {
		if strings.HasPrefix(l, name+"{") && strings.HasSuffix(l, "} "+value) {
			return true
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// historyServer serves the page for the synthetic samples with a history
// of 10 minutes of estimates, one every 5 s: the backlog climbing, WARN,
// then a STALL, then OK.
func historyServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := synthetic()
	e := capacity.NewEstimator(capacity.Params{StartupDelay: 15 * time.Second})
	h := capacity.NewHistory(time.Hour, 1000)
	t0 := s.samples[0].At.Add(-10 * time.Minute)
	for i := range 120 {
		est := capacity.Estimate{At: t0.Add(time.Duration(i) * 5 * time.Second), Backlog: float64(10 * i), Instances: 1 + i/40, ReplicasNeeded: 3,
			Capacity: 50, TimeLag: capacity.Seconds(time.Duration(i) * 100 * time.Millisecond)}
		est.Arrival.PerSecond, est.Processed.PerSecond, est.ServiceRate.PerSecond = 100, 50, 50
		est.Arrival.StdErr = 5
		switch {
		case i < 60:
			est.Status = capacity.StatusWarn
		case i < 70:
			est.Status = capacity.StatusStall
		default:
			est.Status = capacity.StatusOK
		}
		if err := h.Record(context.Background(), est); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(Handler(s, e, h, nil))
	t.Cleanup(srv.Close)
	return srv
}

func TestPageChartsTheHistory(t *testing.T) {
	srv := historyServer(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if n := strings.Count(page, "<figure>"); n != 6 {
		t.Errorf("%d charts, want 6 (backlog, rates, time lag, μ, instances, status)", n)
	}
	for _, want := range []string{"history: 120 estimates over 9m55s", "time lag", "μ per instance", "replicas needed",
		"capacity (instances × μ)", "λ ± 2 SE (≈95%)", `<polygon fill="#0969da" fill-opacity="0.15"`, "predicted with 3 instance(s)", `viewBox="0 0 960`, "svg{width:100%", `<title>STALL</title>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("page has JavaScript")
	}
	// Clock-time ticks fall on round 2-minute marks over 10 minutes.
	ticks := regexp.MustCompile(`>(\d\d:\d\d:\d\d)</text>`).FindAllStringSubmatch(page, -1)
	if len(ticks) < 4 {
		t.Fatalf("%d time labels, want several", len(ticks))
	}
	for _, m := range ticks {
		if !strings.HasSuffix(m[1], ":00") {
			t.Errorf("time label %s is not on a round minute", m[1])
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		ymax float64
		want []float64
	}{
		{873, []float64{0, 500, 1000}},
		{40, []float64{0, 10, 20, 30, 40, 50}},
		{1, []float64{0, 0.5, 1, 1.5}},
		{0, []float64{0, 1}},
	} {
		got, top := niceTicks(c.ymax)
		if !slices.Equal(got, c.want) || top != got[len(got)-1] {
			t.Errorf("niceTicks(%v) = %v top %v, want %v", c.ymax, got, top, c.want)
		}
	}
	for _, tick := range timeTicks(1000, 1600) {
		if int64(tick)%120 != 0 {
			t.Errorf("tick %v over 10 minutes is not on a 2-minute mark", tick)
		}
	}
}

// TestPageRendersInChromium loads the page in headless Chromium (the
// Debian package; .ci/run installs it when it can) and checks that the
// charts were drawn: the screenshot holds the backlog's blue and the
// status strip's green, amber and red. The screenshot is kept in
// $JETKIT_ARTIFACTS when set (CI keeps it), else in the test's temp dir.
func TestPageRendersInChromium(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
	}
	srv := historyServer(t)
	dir := os.Getenv("JETKIT_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "capacity-page.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--hide-scrollbars", "--window-size=1280,2800", "--screenshot="+shot, srv.URL+"/")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	count := func(r, g, b uint32) int {
		n := 0
		bounds := img.Bounds()
		for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
			for x := bounds.Min.X; x < bounds.Max.X; x++ {
				pr, pg, pb, _ := img.At(x, y).RGBA()
				if near(pr>>8, r) && near(pg>>8, g) && near(pb>>8, b) {
					n++
				}
			}
		}
		return n
	}
	for _, c := range []struct {
		what    string
		r, g, b uint32
		min     int
	}{
		{"backlog and arrivals (blue lines)", 0x09, 0x69, 0xda, 2000},
		{"status OK (green band)", 0x1a, 0x7f, 0x37, 2000},
		{"status WARN (amber band)", 0xbf, 0x87, 0x00, 2000},
		{"status STALL (red band)", 0xcf, 0x22, 0x2e, 500},
	} {
		if n := count(c.r, c.g, c.b); n < c.min {
			t.Errorf("%s: %d pixels in the screenshot, want at least %d (%s)", c.what, n, c.min, shot)
		}
	}
	t.Logf("screenshot %s (%dx%d)", shot, img.Bounds().Dx(), img.Bounds().Dy())
}

func near(a, b uint32) bool { return a+12 >= b && b+12 >= a }
