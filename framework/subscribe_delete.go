package framework

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// DeleteConsumer deletes the durable consumer named durable from stream,
// with its position and what it had pending: for a durable the service no
// longer wants, such as one renamed or retired. It deletes only a consumer
// this service created: Subscribe records the creating service in the
// consumer's metadata (jetkit.owner), and a consumer another service
// created, or one that records no owner (made with the nats CLI or an
// older jetkit), is refused. This guards against mistakes, not attackers:
// what a connection may delete is for the NATS server's permissions to
// decide. A consumer a running subscription of this service uses is
// refused too; Stop that subscription first. Its dead letters stay in the
// dead-letter stream. A Partitioned subscription has a consumer per
// partition, named <durable>-p<n>; delete each.
//
// A consumer that does not exist returns an error that matches
// jetstream.ErrConsumerNotFound (jetstream.ErrStreamNotFound for the
// stream) and names both. After Shutdown it returns ErrClosed.
func (s *Service) DeleteConsumer(ctx context.Context, stream, durable string) (err error) {
	what := fmt.Sprintf("delete consumer %s of stream %s", durable, stream)
	if s.draining.Load() {
		return fmt.Errorf("%s: %w", what, ErrClosed)
	}
	if err := wire.ValidateToken(stream); err != nil {
		return fmt.Errorf("%s: stream name: %w", what, err)
	}
	if err := wire.ValidateToken(durable); err != nil {
		return fmt.Errorf("%s: durable name: %w", what, err)
	}
	for _, sub := range s.Subscriptions() {
		if sub.group == nil && sub.stream == stream && sub.durable == durable {
			return fmt.Errorf("%s: a running subscription of this service consumes it (%s): Stop it first", what, sub.subject)
		}
	}
	ctx, perm := s.conn.watchPermissions(ctx, s.conn.jsPrefixes()...) // a refused API call fails now, naming the subject
	defer func() { err = perm.explain(err); perm.done() }()
	cons, err := retryTransient(ctx, s.conn, "consumer "+stream+"/"+durable, func(ctx context.Context) (jetstream.Consumer, error) {
		return s.conn.JS.Consumer(ctx, stream, durable)
	})
	if err != nil {
		return deleteError(what, err)
	}
	switch owner := cons.CachedInfo().Config.Metadata[ownerMetadataKey]; owner {
	case s.cfg.ServiceName:
	case "":
		return fmt.Errorf("%s: the consumer records no owner (metadata %s; made outside jetkit or by an older version), so service %q does not delete it: subscribe with it once from this service to record it, or delete it with the nats CLI",
			what, ownerMetadataKey, s.cfg.ServiceName)
	default:
		return fmt.Errorf("%s: the consumer belongs to service %q (metadata %s), not to %q: only its owner deletes it",
			what, owner, ownerMetadataKey, s.cfg.ServiceName)
	}
	_, err = retryTransient(ctx, s.conn, "consumer "+stream+"/"+durable, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.conn.JS.DeleteConsumer(ctx, stream, durable)
	})
	if err != nil {
		return deleteError(what, err)
	}
	s.log.Info("consumer deleted", "stream", stream, "consumer", durable)
	return nil
}

// deleteError words a failed lookup or deletion.
func deleteError(what string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%s: no such stream: %w", what, err)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("%s: no such consumer: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
