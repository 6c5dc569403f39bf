package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// wireCost measures what jetkit's wire format costs the server, with raw
// nats.go only: PublishMsgAsync of the bare payload against the same
// payload with parts of the headers every jetkit event carries. Each row
// is "bare" (raw column) against one variant (jetkit column), so the
// ratio is what that part of the envelope alone leaves of bare raw's
// throughput; the last row is the whole envelope, the ceiling for
// jetkit's own publish-async row.
func (e *env) wireCost(ctx context.Context) ([]Result, error) {
	variants := []struct {
		label, note string
		headers     headerFunc
	}{
		{"Nats-Msg-Id", "one header the server reads: de-duplication by id", msgIDHeader},
		{"CloudEvents", "the six ce-* headers, no Nats-Msg-Id", ceHeaders},
		{"one pad header", "a single header padding the block to the size of jetkit's on the same subject: a header block, no special keys", padHeader()},
		{"CloudEvents+Nats-Msg-Id", "what every jetkit event carries (the publish rows' raw+headers)", eventHeaders},
	}
	sides := []side{{"wire:bare", func(ctx context.Context) (measurement, error) {
		return e.timedPublish(ctx, ScenarioWireCost+"-bare", e.rawPublisher(true, nil))
	}}}
	for i, v := range variants {
		sides = append(sides, side{"wire:" + v.label, func(ctx context.Context) (measurement, error) {
			return e.timedPublish(ctx, fmt.Sprintf("%s-%d", ScenarioWireCost, i), e.rawPublisher(true, v.headers))
		}})
	}
	ms, err := e.compare(ctx, e.opts.Rounds, sides...)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(variants))
	for i, v := range variants {
		out = append(out, throughputResult(ScenarioWireCost, v.label, ms[0], ms[i+1], nil,
			"both columns raw nats.go: bare, and with "+v.note))
	}
	return out, nil
}

func msgIDHeader(string, time.Time) nats.Header {
	return nats.Header{nats.MsgIdHdr: {nuid.Next()}}
}

func ceHeaders(subject string, sent time.Time) nats.Header {
	h := eventHeaders(subject, sent)
	delete(h, nats.MsgIdHdr)
	return h
}

// padHeaderKey is a header nats-server gives no meaning to.
const padHeaderKey = "X-Jetkit-Bench-Pad"

// padHeader returns headers of one meaningless key whose block is as long
// as jetkit's on the same subject (ce-type is the subject), so that the
// server reads as many header bytes but finds none it acts on. The pad is
// sized once per subject, outside the per-message cost; one publisher
// goroutine calls it.
func padHeader() headerFunc {
	var subject, pad string
	return func(subj string, sent time.Time) nats.Header {
		if subj != subject {
			size := headerBlockSize(eventHeaders(subj, sent))
			subject, pad = subj, strings.Repeat("x", max(1, size-headerBlockSize(nats.Header{padHeaderKey: {""}})))
		}
		return nats.Header{padHeaderKey: {pad}}
	}
}

// headerBlockSize is the length of h on the wire: "NATS/1.0\r\n", one
// "key: value\r\n" line per value and a closing "\r\n".
func headerBlockSize(h nats.Header) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}
