package framework

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// pullMsgOverhead allows for a delivered message's subject and reply
// subject, which count against a pull request's byte limit on top of its
// headers and data (what MaxMsgSize and the server's max payload bound).
const pullMsgOverhead = 4 << 10

// pullLimits are the Consume options for a pull of depth messages when no
// message exceeds maxMsg bytes (see pullBudgetFor).
func pullLimits(depth int, maxMsg int64) []jetstream.PullConsumeOpt {
	b := pullBudgetFor(depth, maxMsg)
	if b.reqBytes == 0 {
		return []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(b.depth)}
	}
	return []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessagesWithBytesLimit(b.depth, int(b.reqBytes)),
		jetstream.PullThresholdMessages(int(b.threshold)),
	}
}

// pullBudget is how one pull is bounded: at most depth messages buffered
// or owed by the server; when reqBytes > 0, each pull request carries at
// most reqBytes, and the next is sent only when fewer than threshold
// messages are still buffered or owed.
type pullBudget struct {
	depth     int
	reqBytes  int64 // 0: the depth alone bounds the bytes
	threshold int64
}

// pullBudgetFor bounds a pull of depth messages of at most maxMsg bytes
// each (unknown: 0) to autoPrefetchMaxBytes, or to one message when
// maxMsg is larger, whatever the messages' sizes.
//
// When depth messages of maxMsg bytes fit, the depth alone bounds both.
// Otherwise, when a request is sent, fewer than threshold messages are
// buffered or owed, at most (threshold-1) × maxMsg bytes, and the new
// request adds at most reqBytes: together within the budget.
func pullBudgetFor(depth int, maxMsg int64) pullBudget {
	if maxMsg <= 0 {
		return pullBudget{depth: depth}
	}
	bound := maxMsg + pullMsgOverhead
	budget := max(int64(autoPrefetchMaxBytes), bound)
	if int64(depth)*bound <= budget {
		return pullBudget{depth: depth}
	}
	req := max(budget/2, bound)
	return pullBudget{depth: depth, reqBytes: req, threshold: min(1+(budget-req)/bound, int64(depth+1)/2)}
}

// worstCase is the most bytes a pull with this budget can hold, for
// messages of at most maxMsg bytes.
func (b pullBudget) worstCase(maxMsg int64) int64 {
	bound := maxMsg + pullMsgOverhead
	if b.reqBytes == 0 {
		return int64(b.depth) * bound
	}
	return (b.threshold-1)*bound + b.reqBytes
}

// sizePull prepares the first pull: the largest message it may carry (for
// pullLimits) and, for an adaptive prefetch, a first depth whose messages
// fit autoPrefetchMaxBytes, from the stream's mean message size (or its
// MaxMsgSize while it is empty), so that a backlog of large messages does
// not start with hundreds of them. The stream's info is asked for only
// when this connection declared it with EnsureStream (so the user may read
// it); otherwise the measurements size the depth.
//
// The largest message is the server's max payload, not the stream's
// MaxMsgSize: a MaxMsgSize lowered after larger messages were stored would
// leave a pull request too small for them, and the consumer stalled.
func (s *Subscription) sizePull(ctx context.Context) {
	s.tuner.maxMsg = s.conn.NC.MaxPayload()
	if _, ok := s.conn.declared.Load(s.stream); !ok || !s.opts.autoPrefetch {
		return
	}
	st, err := s.conn.JS.Stream(ctx, s.stream)
	if err != nil {
		s.log.Debug("stream info unavailable; sizing the pull from measurements only", "error", err)
		return
	}
	info := st.CachedInfo()
	var mean int64
	switch {
	case info.State.Msgs > 0:
		mean = int64(info.State.Bytes / info.State.Msgs)
		s.tuner.avgBytes.Store(mean) // until deliveries are measured
	case info.Config.MaxMsgSize > 0:
		mean = int64(info.Config.MaxMsgSize)
	default:
		return
	}
	s.opts.prefetch = max(1, min(s.opts.prefetch, int(autoPrefetchMaxBytes/mean)))
}

// pullMsgBound is the message size a new pull is bounded for: the largest
// message the server takes, or, once the mean payload is known (from the
// stream or from deliveries), twice that mean when it is smaller. Bounding
// every pull for the largest possible message would make a pull of small
// messages refill only when nearly empty, a pause per refill.
func (s *Subscription) pullMsgBound() int64 {
	maxMsg := s.tuner.maxMsg
	if avg := s.tuner.avgBytes.Load(); avg > 0 && (maxMsg <= 0 || 2*avg < maxMsg) {
		return 2 * avg
	}
	return maxMsg
}
