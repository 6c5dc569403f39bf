package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteTable prints the report as an aligned table.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "jetkit bench: %s server, %s storage, R%d, %d-byte messages, %s, GOMAXPROCS %d, %.0fs; publish and consume rows: median of %d alternating runs per side\n",
		r.Server, r.Storage, r.Replicas, r.MsgSize, r.GoVersion, r.GOMAXPROCS, r.Elapsed, r.Rounds)
	fmt.Fprintf(w, "jetkit middleware: %s\n\n", strings.Join(r.Middleware, ", "))
	rows := [][]string{{"scenario", "case", "unit", "raw nats.go", "jetkit", "ratio", "target", "", "cpu µs/msg raw", "jetkit", "ratio", "allocs/msg raw", "jetkit"}}
	for _, x := range r.Results {
		rows = append(rows, append([]string{x.Scenario, x.Case, x.Unit,
			formatValue(x.Raw, x.Unit), formatValue(x.Jetkit, x.Unit), formatRatio(x.Ratio), x.Target, verdict(x)}, cpuColumns(x)...))
	}
	if err := writeAligned(w, rows, []bool{false, false, false, true, true, true, false, false, true, true, true, true, true}); err != nil {
		return err
	}
	notes := map[string]bool{}
	for _, x := range r.Results {
		if x.Note != "" && !notes[x.Scenario+x.Note] {
			notes[x.Scenario+x.Note] = true
			fmt.Fprintf(w, "  %s %s: %s\n", x.Scenario, x.Case, x.Note)
		}
	}
	if f := r.Failed(); len(f) > 0 {
		fmt.Fprintf(w, "%d target(s) missed\n", len(f))
	}
	return nil
}

// WriteMarkdown writes the report as a markdown table.
func WriteMarkdown(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "Server: %s, %s storage, R%d, %d-byte messages; client %s, GOMAXPROCS %d, %d CPUs; run took %.0f s; started %s. Publish and consume rows are each side's median of %d alternating runs.\n\n",
		r.Server, r.Storage, r.Replicas, r.MsgSize, r.GoVersion, r.GOMAXPROCS, r.CPUs, r.Elapsed, r.Started.Format("2006-01-02 15:04 UTC"), r.Rounds)
	fmt.Fprintf(w, "jetkit middleware: %s.\n\n", strings.Join(r.Middleware, ", "))
	fmt.Fprintln(w, "| scenario | case | unit | raw nats.go | jetkit | ratio | target | | CPU µs/msg raw | jetkit | ratio | allocs/msg raw | jetkit | note |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|---|---|--:|--:|--:|--:|--:|---|")
	for _, x := range r.Results {
		c := cpuColumns(x)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Scenario, x.Case, x.Unit,
			formatValue(x.Raw, x.Unit), formatValue(x.Jetkit, x.Unit), formatRatio(x.Ratio), x.Target, verdict(x), c[0], c[1], c[2], c[3], c[4], markdownCell(x.Note))
	}
	_, err := fmt.Fprintln(w)
	return err
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "msgs/s":
		return groupThousands(int64(v + 0.5))
	case "ms":
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cpuColumns are the CPU µs/msg of raw and jetkit, their ratio, and the
// allocations per message of each, blank
// for rows without a CPU measurement.
func cpuColumns(x Result) []string {
	if x.RawCPU == 0 || x.JetkitCPU == 0 {
		return []string{"", "", "", "", ""}
	}
	return []string{fmt.Sprintf("%.1f", x.RawCPU), fmt.Sprintf("%.1f", x.JetkitCPU), formatRatio(x.JetkitCPU / x.RawCPU),
		fmt.Sprintf("%.1f", x.RawAllocs), fmt.Sprintf("%.1f", x.JetkitAllocs)}
}

func formatRatio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

func verdict(r Result) string {
	switch {
	case r.Pass == nil:
		return ""
	case *r.Pass:
		return "ok"
	default:
		return "MISS"
	}
}

// writeAligned prints rows in columns, right-aligning the columns marked.
func writeAligned(w io.Writer, rows [][]string, right []bool) error {
	width := make([]int, len(right))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len(c))
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		if _, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " ")); err != nil {
			return err
		}
	}
	return nil
}

// markdownCell escapes the pipes that would end a table cell early.
func markdownCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
