// Package humanize formats values for people: durations rounded for
// reading, shared by the capacity estimator's notes and the jetkit CLI.
package humanize

import (
	"math"
	"time"
)

// Duration rounds a duration for reading: 1.2s, 3m4s, 2h5m; the largest
// duration reads ∞.
func Duration(d time.Duration) string {
	switch {
	case d == time.Duration(math.MaxInt64):
		return "∞"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}
