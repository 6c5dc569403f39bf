package capacity

import (
	"cmp"
	"slices"
	"time"
)

// timeLag is the age of the oldest unprocessed message at the newest
// sample: read from its timestamp when the sampler could, else
// interpolated from (sequence, time) points of the stream kafka-lag-
// exporter style.
func timeLag(samples []Sample) (Seconds, string) {
	last := samples[len(samples)-1]
	if last.Backlog() == 0 {
		return 0, "none"
	}
	if !last.OldestTime.IsZero() {
		return Seconds(max(last.At.Sub(last.OldestTime), 0)), "read"
	}
	if last.OldestSeq == 0 {
		return 0, "none"
	}
	t, ok := InterpolateTime(LagTable(samples), last.OldestSeq)
	if !ok {
		return 0, "none"
	}
	return Seconds(max(last.At.Sub(t), 0)), "interpolated"
}

// SeqTime is a point (stream sequence, time it was stored).
type SeqTime struct {
	Seq uint64
	At  time.Time
}

// LagTable collects the (sequence, time) points the samples know exactly:
// each stream's first and last sequence with their stored times, ordered
// by sequence, one time per sequence.
func LagTable(samples []Sample) []SeqTime {
	seen := map[uint64]time.Time{}
	add := func(seq uint64, at time.Time) {
		if seq == 0 || at.IsZero() {
			return
		}
		if _, ok := seen[seq]; !ok {
			seen[seq] = at
		}
	}
	for _, s := range samples {
		add(s.StreamFirstSeq, s.StreamFirstTime)
		add(s.StreamLastSeq, s.StreamLastTime)
		add(s.OldestSeq, s.OldestTime)
	}
	out := make([]SeqTime, 0, len(seen))
	for seq, at := range seen {
		out = append(out, SeqTime{seq, at})
	}
	sortSeqTimes(out)
	return out
}

// InterpolateTime estimates when sequence seq was stored from a table
// ordered by sequence: linear between the neighbouring points, and
// extrapolated along the table's overall slope outside it. ok is false
// with fewer than two points (or one point that is not seq).
func InterpolateTime(table []SeqTime, seq uint64) (time.Time, bool) {
	n := len(table)
	if n == 0 {
		return time.Time{}, false
	}
	for _, p := range table {
		if p.Seq == seq {
			return p.At, true
		}
	}
	if n < 2 {
		return time.Time{}, false
	}
	lo, hi := table[0], table[n-1]
	for i := 1; i < n; i++ {
		if table[i].Seq > seq {
			lo, hi = table[i-1], table[i]
			if seq < table[0].Seq {
				lo, hi = table[0], table[n-1]
			}
			break
		}
	}
	if hi.Seq == lo.Seq {
		return lo.At, true
	}
	frac := (float64(seq) - float64(lo.Seq)) / (float64(hi.Seq) - float64(lo.Seq))
	span := float64(hi.At.Sub(lo.At))
	return lo.At.Add(time.Duration(frac * span)), true
}

func sortSeqTimes(t []SeqTime) {
	slices.SortFunc(t, func(a, b SeqTime) int { return cmp.Compare(a.Seq, b.Seq) })
}
