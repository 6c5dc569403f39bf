package capacity

import (
	"fmt"
	"time"
)

// Status is a Burrow-style verdict on a consumer over the newest samples.
type Status string

const (
	// StatusOK: nothing waits, or the backlog is not growing.
	StatusOK Status = "OK"
	// StatusWarn: the backlog grew across the window and is still growing:
	// arrivals outpace processing.
	StatusWarn Status = "WARN"
	// StatusStall: messages wait and nothing was acknowledged for two
	// sample intervals although the consumer is alive: messages are held
	// unacknowledged (hung handlers), delivered again and again, or pull
	// requests are open. The instances count as 0 in the prediction.
	StatusStall Status = "STALL"
	// StatusStop: messages wait and nobody consumes: nothing delivered or
	// held unacknowledged, no acks and no pull requests. The instances are
	// gone.
	StatusStop Status = "STOP"
)

// Severity orders statuses for a gauge: OK 0, WARN 1, STALL 2, STOP 3.
func (s Status) Severity() int {
	switch s {
	case StatusWarn:
		return 1
	case StatusStall:
		return 2
	case StatusStop:
		return 3
	}
	return 0
}

// stallSamples is how many of the newest samples must show no progress
// for STALL or STOP: two intervals, so a consumer that hangs is reported
// by the third sample after it hangs.
const stallSamples = 3

// growthShare is how much of the window's arrivals must pile up before a
// growing backlog is a warning rather than noise.
const growthShare = 0.05

// status classifies the consumer from the status window sw (the newest
// few samples) and the rate window rw (longer, for the growth trend).
//
// A warning needs a full status window (full): with fewer samples one
// burst looks like a trend.
func status(sw, rw []Sample, full bool) (Status, string) {
	if len(sw) < 2 {
		return StatusOK, "needs two samples"
	}
	last := sw[len(sw)-1]
	if last.Backlog() == 0 {
		return StatusOK, "nothing waiting"
	}
	// Progress is judged over the newest stallSamples only, so that a hung
	// consumer is reported within that many intervals.
	first := sw[max(0, len(sw)-stallSamples)]
	span := last.At.Sub(first.At).Round(100 * time.Millisecond)
	_, firstDel, approx := arrivals(first, last)
	delivered := last.Delivered.Consumer > first.Delivered.Consumer
	floorMoved := last.AckFloor.Stream > first.AckFloor.Stream
	done := firstDel - (float64(last.NumAckPending) - float64(first.NumAckPending))
	progress := floorMoved || (done > 0 && !approx)
	if !progress {
		if last.NumAckPending == 0 && !delivered && last.NumWaiting == 0 {
			return StatusStop, fmt.Sprintf("%.0f messages wait and nobody consumes: nothing delivered or held, no acks and no pull requests for %s", last.Backlog(), span)
		}
		why := "deliveries continue"
		switch {
		case last.MaxAckPending > 0 && last.NumAckPending >= last.MaxAckPending:
			why = fmt.Sprintf("ack-pending at the limit %d", last.MaxAckPending)
		case !delivered && last.NumAckPending > 0:
			why = fmt.Sprintf("%d message(s) held unacknowledged: hung handlers, or instances that died holding them (redelivered after the ack wait)", last.NumAckPending)
		case !delivered:
			why = fmt.Sprintf("%d pull request(s) open", last.NumWaiting)
		}
		return StatusStall, fmt.Sprintf("%.0f messages wait and nothing was acknowledged for %s although the consumer is alive (%s); its instances count as 0 in the prediction", last.Backlog(), span, why)
	}
	// Growth: over the longer window the backlog rose by a real share of
	// the arrivals, and it rose in most of the newest steps.
	a, b := rw[0], rw[len(rw)-1]
	in, _, _ := arrivals(a, b)
	growth := b.Backlog() - a.Backlog()
	rises := 0
	for i := 1; i < len(sw); i++ {
		if sw[i].Backlog() > sw[i-1].Backlog() {
			rises++
		}
	}
	if full && growth > 0 && growth >= growthShare*in && 2*rises > len(sw)-1 {
		return StatusWarn, fmt.Sprintf("backlog grew by %.0f over %s and rose in %d of the last %d intervals", growth, b.At.Sub(a.At).Round(100*time.Millisecond), rises, len(sw)-1)
	}
	return StatusOK, "keeping up"
}
