package framework

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetkit/jetkit/internal/wire"
)

// ephemeralInactiveThreshold is how long the server keeps an Ephemeral
// subscription's consumer that nobody pulls from (its process died without
// stopping it), counted once the messages it delivered are past AckWait.
// A live subscription always has a pull request waiting (each lasts
// consumePullExpiry and is renewed), so only a process gone for this long
// loses its consumer; a reconnect takes seconds.
const ephemeralInactiveThreshold = 30 * time.Second

// consumerName checks the durable name given to Subscribe, or names the
// consumer of an Ephemeral subscription: the service's name and a unique
// suffix, so that an operator listing consumers sees whose it is.
func consumerName(service, durable string, ephemeral bool) (string, error) {
	switch {
	case ephemeral && durable != "":
		return "", fmt.Errorf("durable name %q with Ephemeral: an ephemeral consumer is named by jetkit; pass \"\" as the durable name, or drop Ephemeral to share the durable %q", durable, durable)
	case ephemeral:
		return service + "-" + nuid.Next(), nil
	case durable == "":
		return "", fmt.Errorf("empty durable name: name the consumer (the instances of one service share it and split the work), or set SubscribeOptions.Ephemeral for a consumer of this subscription alone, deleted when it stops")
	}
	if err := wire.ValidateToken(durable); err != nil {
		return "", fmt.Errorf("durable name: %w", err)
	}
	return durable, nil
}

// ephemeralConfig makes want the config of an Ephemeral subscription's
// consumer: named, not durable, removed by the server once inactive.
func ephemeralConfig(want *jetstream.ConsumerConfig, owner string) {
	want.Name, want.Durable = want.Durable, ""
	want.Description = "jetkit ephemeral consumer of service " + owner
	want.InactiveThreshold = ephemeralInactiveThreshold
}

// keepMetadata is the metadata to write over a durable consumer's have:
// have's own entries (not the server's, which it sets itself), with owner
// recorded if no owner is yet.
func keepMetadata(have map[string]string, owner string) map[string]string {
	md := make(map[string]string, len(have)+1)
	for k, v := range maps.All(have) {
		if !strings.HasPrefix(k, "_nats.") {
			md[k] = v
		}
	}
	if md[ownerMetadataKey] == "" {
		md[ownerMetadataKey] = owner
	}
	return md
}

// deleteEphemeral deletes an Ephemeral subscription's consumer once the
// subscription has stopped, within the connection's request timeout. A
// failure is logged: the server deletes the consumer after
// ephemeralInactiveThreshold anyway.
func (s *Subscription) deleteEphemeral(ctx context.Context) {
	if !s.opts.ephemeral {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.conn.cfg.RequestTimeout)
	defer cancel()
	ctx, perm := s.conn.watchPermissions(ctx, s.conn.jsPrefixes()...) // a refused delete fails at once
	err := perm.explain(s.conn.JS.DeleteConsumer(ctx, s.stream, s.durable))
	perm.done()
	if err != nil {
		s.log.Warn("could not delete the ephemeral consumer; the server deletes it once inactive",
			"inactive_threshold", ephemeralInactiveThreshold, "error", err)
		return
	}
	s.log.Debug("ephemeral consumer deleted")
}
