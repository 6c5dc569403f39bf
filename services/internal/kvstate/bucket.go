package kvstate

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/rawperm"
)

// DeclareBucket creates the KV bucket name, or updates it to this
// configuration: file storage, one value per key (no history), and the
// service's configured replica count. It rides out what passes in a
// cluster (a leader election, peers not yet online for placement) with
// the framework's provisioning retry (Service.EnsureKeyValue).
func DeclareBucket(ctx context.Context, svc *framework.Service, name, description string) (jetstream.KeyValue, error) {
	return svc.EnsureKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    svc.Config().Replicas,
	})
}

// Writable reports whether kv can take writes now: whether the leader of
// its stream answers for it within ctx. A readiness check, so that a
// service whose store has no leader (an election that does not end, a
// cluster without quorum) stops being ready instead of failing requests.
// A refused permission is named rather than timed out.
func Writable(ctx context.Context, svc *framework.Service, kv jetstream.KeyValue) error {
	ctx, done := rawperm.Watch(ctx, svc.Conn())
	_, err := kv.Status(ctx)
	switch err = done(err); {
	case errors.Is(err, framework.ErrPermissionDenied):
		return fmt.Errorf("KV bucket %s: %w", kv.Bucket(), err)
	case err != nil:
		return fmt.Errorf("KV bucket %s cannot take writes now (its stream leader does not answer): %w", kv.Bucket(), err)
	}
	return nil
}
