package kvstate

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
)

// DeclareBucket creates the KV bucket name, or updates it to this
// configuration: file storage, one value per key (no history), and the
// service's configured replica count.
func DeclareBucket(ctx context.Context, svc *framework.Service, name, description string) (jetstream.KeyValue, error) {
	kv, err := svc.Conn().JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    svc.Config().Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declare KV bucket %s: %w", name, err)
	}
	return kv, nil
}
