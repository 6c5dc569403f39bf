package framework

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// warnIfMatchesNothing logs a warning when a new subscription's filter
// matches no stored message while the other shape of its subject does:
// an unkeyed topic (filter orders.created.v1) whose producer publishes
// keyed events (orders.created.v1.<key>), or the reverse. Such a
// subscription would receive nothing and say nothing. It looks only when
// the consumer has nothing pending and has delivered nothing, so a healthy
// subscription costs no request; failures to look are logged at debug.
func (svc *Service) warnIfMatchesNothing(ctx context.Context, s *Subscription) {
	if len(s.filters) != 1 || s.consumer == nil { // a partitioned group has a consumer per partition
		return
	}
	info := s.consumer.CachedInfo()
	if info == nil || info.NumPending > 0 || info.NumAckPending > 0 || info.Delivered.Stream > 0 {
		return
	}
	filter := s.filters[0]
	var other, fix string
	switch base, keyed := strings.CutSuffix(filter, ".>"); {
	case keyed && !strings.ContainsAny(base, "*>"):
		other = base
		fix = "the producer publishes " + base + " without a key: declare the topic without framework.Keyed(), or have the producer publish it WithKey"
	case !strings.ContainsAny(filter, "*>"):
		other = filter + ".>"
		fix = "the producer publishes " + filter + " with a key (" + filter + ".<key>): declare the topic with framework.Keyed() (jetkit new service: --consumes " + filter + ":keyed)"
	default:
		return
	}
	ctx, cancel := context.WithTimeout(ctx, svc.cfg.RequestTimeout)
	defer cancel()
	ctx, perm := svc.conn.watchPermissions(ctx, svc.conn.jsPrefixes()...) // a refusal ends the look at once
	defer perm.done()
	subjects, msgs, err := storedOn(ctx, svc.conn, s.stream, other)
	if err != nil {
		s.log.Debug("could not check what the subscription's filter matches", "filter", filter, "error", perm.explain(err))
		return
	}
	if msgs > 0 {
		s.log.Warn("subscription filter matches no message, but the stream holds messages on "+other+"; this subscription receives none of them",
			"filter", filter, "holding", other, "subjects", subjects, "messages", msgs, "fix", fix)
	}
}

// storedOn counts the subjects matching filter in stream and the messages
// on them, reading one page of the stream's subject counts.
func storedOn(ctx context.Context, c *Conn, stream, filter string) (subjects int, msgs uint64, err error) {
	req, err := json.Marshal(struct {
		Filter string `json:"subjects_filter"`
	}{filter})
	if err != nil {
		return 0, 0, err
	}
	reply, err := c.NC.RequestWithContext(ctx, jetstream.DefaultAPIPrefix+"STREAM.INFO."+stream, req)
	if err != nil {
		return 0, 0, err
	}
	var resp struct {
		Total int `json:"total"`
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return 0, 0, err
	}
	if resp.Error != nil {
		return 0, 0, errors.New(resp.Error.Description)
	}
	for _, n := range resp.State.Subjects {
		msgs += n
	}
	return max(resp.Total, len(resp.State.Subjects)), msgs, nil
}
