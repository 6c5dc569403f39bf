package capacity

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"
)

// WebHandler serves one consumer's capacity view:
//
//	/               an HTML page with SVG charts (backlog and its predicted
//	                curve after the recommended scale-up, rates over time),
//	                refreshed by the browser every sampling interval; no
//	                JavaScript
//	/estimate.json  the current estimate
//	/metrics        the gauges in Prometheus format, when metrics is not nil
//
// Each request estimates from the sampler's current window.
func WebHandler(s *Sampler, e *Estimator, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		samples := s.Samples()
		est, err := e.Estimate(s.Stream(), s.Consumer(), samples)
		page := pageData{Stream: s.Stream(), Consumer: s.Consumer(), Refresh: max(1, int(math.Round(s.IntervalDuration().Seconds())))}
		if err != nil {
			page.Err = err.Error()
		} else {
			page.Est = &est
			page.Lines = est.Summary()
			page.Backlog = backlogChart(samples, est)
			page.Rates = rateChart(samples, est)
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
	Est              *Estimate
	Lines            []Line
	Backlog, Rates   template.HTML
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>jetkit capacity — {{.Stream}}/{{.Consumer}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td{padding:2px 12px 2px 0;vertical-align:top}
td:first-child{color:#666;white-space:nowrap}
.OK{color:#1a7f37}.WARN{color:#9a6700}.STALL,.STOP{color:#cf222e}
.err{color:#cf222e}figure{margin:1em 0}figcaption{color:#666}
</style></head><body>
<h1>{{.Stream}} / {{.Consumer}}{{with .Est}} <span class="{{.Status}}">{{.Status}}</span>{{end}}</h1>
{{with .Err}}<p class="err">{{.}}</p>{{end}}
{{with .Est}}<p>at {{.At.Format "15:04:05"}}</p>{{end}}
<table>{{range .Lines}}<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}</table>
{{if .Backlog}}<figure>{{.Backlog}}<figcaption>Backlog (pending + ack-pending): measured, then predicted after the recommended scale-up (dashed).</figcaption></figure>{{end}}
{{if .Rates}}<figure>{{.Rates}}<figcaption>Arrival and processed rates per interval; capacity = instances × μ.</figcaption></figure>{{end}}
</body></html>
`))

type series struct {
	name   string
	color  string
	dashed bool
	pts    [][2]float64 // x seconds from now, y
}

func backlogChart(samples []Sample, est Estimate) template.HTML {
	if len(samples) == 0 {
		return ""
	}
	now := est.At
	measured := series{name: "backlog", color: "#0969da"}
	for _, s := range samples {
		measured.pts = append(measured.pts, [2]float64{s.At.Sub(now).Seconds(), s.Backlog()})
	}
	ss := []series{measured}
	if len(est.Predicted) > 0 {
		pred := series{name: fmt.Sprintf("predicted with %d instance(s)", est.Plan.Total), color: "#8250df", dashed: true}
		for _, p := range est.Predicted {
			pred.pts = append(pred.pts, [2]float64{p.T.Seconds(), p.Backlog})
		}
		ss = append(ss, pred)
	}
	marks := []mark{{0, "now"}}
	if est.Plan.Add > 0 && est.StartupDelay > 0 {
		marks = append(marks, mark{time.Duration(est.StartupDelay).Seconds(), "ready"})
	}
	marks = append(marks, mark{time.Duration(est.TargetDrain).Seconds(), "target"})
	return svgChart("messages", ss, marks)
}

func rateChart(samples []Sample, est Estimate) template.HTML {
	if len(samples) < 2 {
		return ""
	}
	now := est.At
	in := series{name: "arrivals λ", color: "#0969da"}
	out := series{name: "processed", color: "#1a7f37"}
	// Rates over a few intervals, so one late sample does not spike.
	const span = 3
	for i := 1; i < len(samples); i++ {
		a, b := samples[max(0, i-span)], samples[i]
		arr, proc := rates([]Sample{a, b})
		x := b.At.Sub(now).Seconds()
		in.pts = append(in.pts, [2]float64{x, arr.PerSecond})
		out.pts = append(out.pts, [2]float64{x, proc.PerSecond})
	}
	ss := []series{in, out}
	if est.Capacity > 0 {
		x0 := samples[0].At.Sub(now).Seconds()
		ss = append(ss, series{name: fmt.Sprintf("capacity (%d × μ)", est.Instances), color: "#cf222e", dashed: true,
			pts: [][2]float64{{x0, est.Capacity}, {0, est.Capacity}}})
	}
	return svgChart("per second", ss, []mark{{0, "now"}})
}

// mark is a labelled vertical line at x.
type mark struct {
	x     float64
	label string
}

// svgChart draws series as lines on shared axes: x in seconds relative to
// now, y from 0, with vertical marks inside the x range.
func svgChart(yLabel string, ss []series, marks []mark) template.HTML {
	const w, h, left, right, top, bottom = 720.0, 240.0, 60.0, 10.0, 10.0, 40.0
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range ss {
		for _, p := range s.pts {
			xmin, xmax, ymax = math.Min(xmin, p[0]), math.Max(xmax, p[0]), math.Max(ymax, p[1])
		}
	}
	if math.IsInf(xmin, 0) {
		return ""
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax *= 1.1
	px := func(x float64) float64 { return left + (x-xmin)/(xmax-xmin)*(w-left-right) }
	py := func(y float64) float64 { return top + (1-y/ymax)*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#d0d7de"/>`, left, top, w-left-right, h-top-bottom)
	for _, f := range []float64{0, 0.5, 1} {
		y := f * ymax / 1.1
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end" fill="#666">%s</text>`, left-4, py(y)+4, compact(y))
	}
	fmt.Fprintf(&b, `<text x="4" y="%.0f" font-size="11" fill="#666">%s</text>`, top+10, html.EscapeString(yLabel))
	for _, x := range []float64{xmin, xmax} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle" fill="#666">%+.0fs</text>`, px(x), h-bottom+14, x)
	}
	for _, m := range marks {
		if m.x <= xmin || m.x >= xmax {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#999" stroke-dasharray="2 3"/>`, px(m.x), px(m.x), top, h-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle" fill="#666">%s</text>`, px(m.x), h-bottom+14, html.EscapeString(m.label))
	}
	for i, s := range ss {
		var pts strings.Builder
		for _, p := range s.pts {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(p[0]), py(p[1]))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, s.color, dash, strings.TrimSpace(pts.String()))
		lx := left + float64(i)*200
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`, lx, lx+18, h-8, h-8, s.color, dash)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12">%s</text>`, lx+22, h-4, html.EscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built above from numbers and escaped names only
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
