package kvstate

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
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
