package framework

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKeyValue creates the KV bucket cfg describes, or updates it to
// cfg, retrying what passes in a cluster (a leader election, peers not yet
// online for placement) within ctx like EnsureStream. Replicas 0 means
// Config.Replicas.
func (s *Service) EnsureKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (_ jetstream.KeyValue, err error) {
	c := s.conn
	if cfg.Replicas == 0 {
		cfg.Replicas = c.cfg.Replicas
	}
	ctx, perm := c.watchPermissions(ctx, c.jsPrefixes()...) // a refused API call fails now, naming the subject
	defer func() { err = perm.explain(err); perm.done() }()
	// CreateOrUpdate is idempotent, so a try that timed out (perhaps after
	// the server acted) is simply run again.
	kv, err := retryTransient(ctx, c, "KV bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return c.JS.CreateOrUpdateKeyValue(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("create or update KV bucket %s (replicas %d): %w", cfg.Bucket, cfg.Replicas, err)
	}
	return kv, nil
}
