package capview

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/jetkit/jetkit/framework/capacity"
)

// Source is what the page reads from a capacity.Sampler.
type Source interface {
	Stream() string
	Consumer() string
	Samples() []capacity.Sample
	IntervalDuration() time.Duration
	Err() error
}

// Handler serves one consumer's capacity view:
//
//	/               an HTML page refreshed by the browser every sampling
//	                interval (no JavaScript): the summary, then charts over
//	                the history h (or, without one, the sampler's window) —
//	                backlog with its predicted curve after the recommended
//	                scale-up, rates with the capacity at each moment, time
//	                lag, μ and instances, replicas needed, and the status
//	/estimate.json  the current estimate
//	/metrics        the gauges in Prometheus format, when metrics is not nil
//
// Each request estimates from the sampler's current window. h may be nil.
func Handler(s Source, e *capacity.Estimator, h *capacity.History, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		samples := s.Samples()
		est, err := e.Estimate(s.Stream(), s.Consumer(), samples)
		page := pageData{Stream: s.Stream(), Consumer: s.Consumer(), Refresh: max(1, int(math.Round(s.IntervalDuration().Seconds())))}
		if err != nil {
			page.Err = err.Error()
		} else {
			page.Est = &est
			page.Lines = Summary(est)
			var points []capacity.HistoryPoint
			if h != nil {
				points = h.Points()
				page.Span = historySpan(points)
			}
			if len(points) < 2 { // no history yet: the sampler's window
				points = capacity.SamplePoints(samples, est)
			}
			page.Charts = charts(points, est)
		}
		if serr := s.Err(); serr != nil {
			page.Err = strings.TrimSpace(page.Err + " last sample failed: " + serr.Error())
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := pageTmpl.Execute(w, page); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /estimate.json", func(w http.ResponseWriter, r *http.Request) {
		est, err := e.Estimate(s.Stream(), s.Consumer(), s.Samples())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(est)
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

type pageData struct {
	Stream, Consumer string
	Refresh          int
	Err              string
	Est              *capacity.Estimate
	Lines            []Line
	Span             string
	Charts           []figure
}

// figure is one chart with its caption.
type figure struct {
	SVG     template.HTML
	Caption string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>jetkit capacity — {{.Stream}}/{{.Consumer}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;padding:0 1em;max-width:1200px;color:#222}
table{border-collapse:collapse}td{padding:2px 12px 2px 0;vertical-align:top}
td:first-child{color:#666;white-space:nowrap}
.OK{color:#1a7f37}.WARN{color:#9a6700}.STALL,.STOP{color:#cf222e}
.err{color:#cf222e}figure{margin:1.2em 0}figcaption{color:#666}
svg{width:100%;height:auto;display:block}
</style></head><body>
<h1>{{.Stream}} / {{.Consumer}}{{with .Est}} <span class="{{.Status}}">{{.Status}}</span>{{end}}</h1>
{{with .Err}}<p class="err">{{.}}</p>{{end}}
{{with .Est}}<p>at {{.At.Format "15:04:05"}}{{end}}{{with .Span}} · history: {{.}}{{end}}{{with .Est}}</p>{{end}}
<table>{{range .Lines}}<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}</table>
{{range .Charts}}<figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</body></html>
`))

// historySpan says how far back the history goes.
func historySpan(points []capacity.HistoryPoint) string {
	if len(points) < 2 {
		return ""
	}
	d := points[len(points)-1].At.Sub(points[0].At).Round(time.Second)
	return fmt.Sprintf("%d estimates over %s", len(points), d)
}

// statusColor colours a status.
var statusColor = map[capacity.Status]string{capacity.StatusOK: "#1a7f37", capacity.StatusWarn: "#bf8700", capacity.StatusStall: "#cf222e", capacity.StatusStop: "#6e7781"}

// charts draws the page's charts from points (oldest first) and the
// current estimate.
func charts(points []capacity.HistoryPoint, est capacity.Estimate) []figure {
	if len(points) == 0 {
		return nil
	}
	unix := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	now := unix(est.At)
	line := func(name, color string, y func(capacity.HistoryPoint) float64) series {
		s := series{name: name, color: color}
		for _, p := range points {
			s.pts = append(s.pts, [2]float64{unix(p.At), y(p)})
		}
		return s
	}
	var out []figure

	backlog := []series{line("backlog", "#0969da", func(p capacity.HistoryPoint) float64 { return p.Backlog })}
	marks := []mark{{now, "now"}}
	if len(est.Predicted) > 0 {
		pred := series{name: fmt.Sprintf("predicted with %d instance(s)", est.Plan.Total), color: "#8250df", dashed: true}
		for _, p := range est.Predicted {
			pred.pts = append(pred.pts, [2]float64{now + p.T.Seconds(), p.Backlog})
		}
		backlog = append(backlog, pred)
		if est.Plan.Add > 0 && est.StartupDelay > 0 {
			marks = append(marks, mark{now + time.Duration(est.StartupDelay).Seconds(), "ready"})
		}
		marks = append(marks, mark{now + time.Duration(est.TargetDrain).Seconds(), "target"})
	}
	out = append(out, figure{svgChart("messages", backlog, marks, nil),
		"Backlog (pending + ack-pending) over time, then predicted after the recommended scale-up (dashed)."})

	var rateSeries []series
	if hasAny(points, func(p capacity.HistoryPoint) bool { return p.ArrivalErr > 0 }) {
		// λ ± 2 standard errors: about 95% confidence, drawn as a band.
		band := series{name: "λ ± 2 SE (≈95%)", color: "#0969da", area: true}
		for _, p := range points {
			band.pts = append(band.pts, [2]float64{unix(p.At), p.Arrival + 2*p.ArrivalErr})
		}
		for i := len(points) - 1; i >= 0; i-- {
			p := points[i]
			band.pts = append(band.pts, [2]float64{unix(p.At), max(p.Arrival-2*p.ArrivalErr, 0)})
		}
		rateSeries = append(rateSeries, band)
	}
	rateSeries = append(rateSeries,
		line("arrivals λ", "#0969da", func(p capacity.HistoryPoint) float64 { return p.Arrival }),
		line("processed", "#1a7f37", func(p capacity.HistoryPoint) float64 { return p.Processed }),
	)
	if hasAny(points, func(p capacity.HistoryPoint) bool { return p.Capacity > 0 }) {
		c := line("capacity (instances × μ)", "#cf222e", func(p capacity.HistoryPoint) float64 { return p.Capacity })
		c.dashed = true
		rateSeries = append(rateSeries, c)
	}
	out = append(out, figure{svgChart("per second", rateSeries, []mark{{now, "now"}}, nil),
		"Arrival rate with its ≈95% confidence band, processed rate, and the capacity estimated at each moment."})

	if hasAny(points, func(p capacity.HistoryPoint) bool { return p.TimeLag > 0 }) {
		out = append(out, figure{svgChart("seconds", []series{line("time lag", "#9a6700", func(p capacity.HistoryPoint) float64 { return p.TimeLag })}, nil, nil),
			"Time lag: the age of the oldest unprocessed message."})
	}
	if hasAny(points, func(p capacity.HistoryPoint) bool { return p.ServiceRate > 0 }) {
		out = append(out, figure{svgChart("per second", []series{line("μ per instance", "#8250df", func(p capacity.HistoryPoint) float64 { return p.ServiceRate })}, nil, nil),
			"Service rate μ of one instance, as estimated at each moment."})
	}
	if hasAny(points, func(p capacity.HistoryPoint) bool { return p.Instances > 0 || p.ReplicasNeeded > 0 }) {
		out = append(out, figure{svgChart("instances", []series{
			line("instances", "#0969da", func(p capacity.HistoryPoint) float64 { return float64(p.Instances) }),
			line("replicas needed", "#cf222e", func(p capacity.HistoryPoint) float64 { return float64(p.ReplicasNeeded) }),
		}, nil, nil), "Instances consuming and replicas needed (the autoscaling gauge)."})
	}
	var bands []band
	for i, p := range points {
		end := now
		if i+1 < len(points) {
			end = unix(points[i+1].At)
		}
		bands = append(bands, band{from: unix(p.At), to: end, color: statusColor[p.Status], label: string(p.Status)})
	}
	out = append(out, figure{svgChart("", nil, nil, bands), "Status over time: OK green, WARN amber, STALL red, STOP grey."})
	return out
}

func hasAny(points []capacity.HistoryPoint, f func(capacity.HistoryPoint) bool) bool {
	for _, p := range points {
		if f(p) {
			return true
		}
	}
	return false
}

type series struct {
	name   string
	color  string
	dashed bool
	area   bool         // pts outline a closed band, filled lightly
	pts    [][2]float64 // x unix seconds, y
}

// mark is a labelled vertical line at x (unix seconds).
type mark struct {
	x     float64
	label string
}

// band is a coloured span of the x axis (the status strip).
type band struct {
	from, to float64
	color    string
	label    string
}

// Chart geometry, in viewBox units; the SVG scales to the page's width.
const (
	chartW, chartH                                   = 960.0, 250.0
	chartLeft, chartRight, chartTop, chartBottom     = 64.0, 16.0, 40.0, 52.0
	stripH                                           = 84.0
	legendSwatch, legendGap, legendCharW, legendLine = 18.0, 24.0, 7.0, 4.0
)

// svgChart draws series as lines on shared axes — x is clock time with
// ticks at round intervals, y from 0 with gridlines at round values — or,
// given bands, a status strip.
func svgChart(yLabel string, ss []series, marks []mark, bands []band) template.HTML {
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range ss {
		for _, p := range s.pts {
			xmin, xmax, ymax = math.Min(xmin, p[0]), math.Max(xmax, p[0]), math.Max(ymax, p[1])
		}
	}
	for _, b := range bands {
		xmin, xmax = math.Min(xmin, b.from), math.Max(xmax, b.to)
	}
	for _, m := range marks {
		if !math.IsInf(xmin, 0) {
			xmax = math.Max(xmax, m.x)
		}
	}
	if math.IsInf(xmin, 0) {
		return ""
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	h := chartH
	if bands != nil {
		h = stripH
	}
	yTicks, ytop := niceTicks(ymax)
	px := func(x float64) float64 { return chartLeft + (x-xmin)/(xmax-xmin)*(chartW-chartLeft-chartRight) }
	plotBottom := h - chartBottom
	if bands != nil {
		plotBottom = h - 20
	}
	py := func(y float64) float64 { return chartTop + (1-y/ytop)*(plotBottom-chartTop) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, chartW, h, html.EscapeString(yLabel))
	// x ticks and vertical gridlines at round clock times.
	for _, x := range timeTicks(xmin, xmax) {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#eaeef2"/>`, px(x), px(x), chartTop, plotBottom)
		anchor := "middle"
		switch {
		case px(x) > chartW-chartRight-30:
			anchor = "end"
		case px(x) < chartLeft+30:
			anchor = "start"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="%s" fill="#666">%s</text>`, px(x), plotBottom+14, anchor, clock(x, xmax-xmin))
	}
	for _, band := range bands {
		x0, x1 := px(band.from), px(band.to)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s"><title>%s</title></rect>`,
			x0, chartTop, math.Max(x1-x0, 0.5), plotBottom-chartTop, band.color, html.EscapeString(band.label))
	}
	if bands == nil {
		for _, y := range yTicks {
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eaeef2"/>`, chartLeft, chartW-chartRight, py(y), py(y))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end" fill="#666">%s</text>`, chartLeft-6, py(y)+4, compact(y))
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="#666">%s</text>`, chartLeft, chartTop-26, html.EscapeString(yLabel))
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#d0d7de"/>`, chartLeft, chartTop, chartW-chartLeft-chartRight, plotBottom-chartTop)
	for i, m := range marks {
		if m.x < xmin || m.x > xmax {
			continue
		}
		// Labels above the plot, on two rows so that close marks do not
		// overlap; the last one is kept inside the right edge.
		anchor := "middle"
		if px(m.x) > chartW-chartRight-20 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#999" stroke-dasharray="2 3"/>`, px(m.x), px(m.x), chartTop-(4+float64(i%2)*12), plotBottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="%s" fill="#444">%s</text>`, px(m.x), chartTop-6-float64(i%2)*12, anchor, html.EscapeString(m.label))
	}
	lx := chartLeft
	for _, s := range ss {
		var pts strings.Builder
		for _, p := range s.pts {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(p[0]), py(p[1]))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		if s.area {
			fmt.Fprintf(&b, `<polygon fill="%s" fill-opacity="0.15" stroke="none" points="%s"/>`, s.color, strings.TrimSpace(pts.String()))
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="8" fill="%s" fill-opacity="0.15"/>`, lx, h-16, legendSwatch, s.color)
		} else {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, s.color, dash, strings.TrimSpace(pts.String()))
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`, lx, lx+legendSwatch, h-12, h-12, s.color, dash)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12">%s</text>`, lx+legendSwatch+legendLine, h-8, html.EscapeString(s.name))
		lx += legendSwatch + legendLine + float64(len([]rune(s.name)))*legendCharW + legendGap
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built above from numbers and escaped names only
}

// niceTicks returns gridline values from 0 to a round top at or above
// ymax (steps of 1, 2 or 5 × 10^k, at most 6 of them) and that top.
func niceTicks(ymax float64) ([]float64, float64) {
	if ymax <= 0 || math.IsNaN(ymax) || math.IsInf(ymax, 0) {
		return []float64{0, 1}, 1
	}
	raw := ymax / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	top := math.Ceil(ymax/step) * step
	if top < ymax*1.05 { // room above the highest point
		top += step
	}
	var out []float64
	for v := 0.0; v <= top+step/2; v += step {
		out = append(out, v)
	}
	return out, top
}

// timeSteps are the round intervals x ticks may fall on, in seconds.
var timeSteps = []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}

// timeTicks returns round clock times between xmin and xmax (unix
// seconds), at most 7.
func timeTicks(xmin, xmax float64) []float64 {
	span := xmax - xmin
	step := timeSteps[len(timeSteps)-1]
	for _, s := range timeSteps {
		if span/s <= 7 {
			step = s
			break
		}
	}
	var out []float64
	for x := math.Ceil(xmin/step) * step; x <= xmax; x += step {
		out = append(out, x)
	}
	return out
}

// clock labels a tick: hh:mm:ss, or hh:mm when the span is long.
func clock(x, span float64) string {
	t := time.Unix(0, int64(x*1e9)) // the watching machine's local time
	if span >= 1800 {
		return t.Format("15:04")
	}
	return t.Format("15:04:05")
}

// compact prints an axis value: 950, 1.2k, 3.4M.
func compact(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 10 || v == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
