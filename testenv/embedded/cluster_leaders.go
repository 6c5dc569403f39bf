package embedded

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// find returns the first running node for which pred holds, or -1.
func (c *Cluster) find(pred func(*server.Server) bool) int {
	for i := range c.nodes {
		if ns := c.Server(i); ns != nil && ns.Running() && pred(ns) {
			return i
		}
	}
	return -1
}

// MetaLeader is the index of the JetStream meta leader, or -1 if there is
// none right now.
func (c *Cluster) MetaLeader() int {
	return c.find(func(s *server.Server) bool { return s.JetStreamIsLeader() })
}

// StreamLeader is the index of the node leading stream (in the default
// account), or -1 if none does right now.
func (c *Cluster) StreamLeader(stream string) int {
	return c.find(func(s *server.Server) bool { return s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) })
}

// ConsumerLeader is the index of the node leading the consumer (in the
// default account), or -1 if none does right now.
func (c *Cluster) ConsumerLeader(stream, consumer string) int {
	return c.find(func(s *server.Server) bool {
		return s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer)
	})
}

// WaitMetaLeader waits until the meta leader exists, every running node's
// view of the meta group is current, and the leader counts every running
// node as an online JetStream peer (otherwise creating a replicated stream
// fails with "no suitable peers for placement"), and returns its index.
func (c *Cluster) WaitMetaLeader(timeout time.Duration) (int, error) {
	leader := -1
	err := waitFor(timeout, func() bool {
		leader = c.MetaLeader()
		if leader < 0 || c.find(func(s *server.Server) bool { return !s.JetStreamIsCurrent() }) >= 0 {
			return false
		}
		ns := c.Server(leader)
		if ns == nil {
			return false
		}
		online := ns.JetStreamClusterPeers()
		for i := range c.nodes {
			if c.Running(i) && !slices.Contains(online, c.nodes[i].name) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return -1, fmt.Errorf("embedded: cluster %s: no JetStream meta leader seeing all running nodes online and current within %s", c.name, timeout)
	}
	return leader, nil
}

// WaitStreamLeader waits until a running node leads stream and every
// running node holding a replica of it is current, and returns the
// leader's index. Call it after Kill or Restart before asserting on the
// stream.
func (c *Cluster) WaitStreamLeader(timeout time.Duration, stream string) (int, error) {
	leader := -1
	err := waitFor(timeout, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0 && c.streamReplicasCurrent(leader, stream)
	})
	if err != nil {
		return -1, fmt.Errorf("embedded: cluster %s: stream %s has no leader with current replicas within %s", c.name, stream, timeout)
	}
	return leader, nil
}

// streamReplicasCurrent reports whether every running node holding a
// replica of the stream has caught up with leader, as leader sees it.
func (c *Cluster) streamReplicasCurrent(leader int, stream string) bool {
	ns := c.Server(leader)
	if ns == nil {
		return false
	}
	d, ok := StreamDetail(ns, stream)
	if !ok || d.Cluster == nil {
		return false
	}
	for _, r := range d.Cluster.Replicas {
		if i := c.nodeIndex(r.Name); i >= 0 && c.Running(i) && !r.Current {
			return false
		}
	}
	return true
}

func (c *Cluster) nodeIndex(name string) int {
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// StreamDetail is what node ns itself holds of stream in the default
// account (its local replica's state; on the leader also the replicas'
// progress), from the server's monitoring view. ok is false if ns holds no
// replica of the stream.
func StreamDetail(ns *server.Server, stream string) (detail server.StreamDetail, ok bool) {
	jsz, err := ns.Jsz(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return detail, false
	}
	for _, acc := range jsz.AccountDetails {
		for _, d := range acc.Streams {
			if d.Name == stream {
				return d, true
			}
		}
	}
	return detail, false
}

// WaitConsumerLeader waits until a running node leads the consumer and
// returns its index.
func (c *Cluster) WaitConsumerLeader(timeout time.Duration, stream, consumer string) (int, error) {
	leader := -1
	err := waitFor(timeout, func() bool {
		leader = c.ConsumerLeader(stream, consumer)
		return leader >= 0
	})
	if err != nil {
		return -1, fmt.Errorf("embedded: cluster %s: consumer %s/%s has no leader within %s", c.name, stream, consumer, timeout)
	}
	return leader, nil
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) error {
	return WaitFor(context.Background(), timeout, cond)
}

// WaitFor polls cond every 5 ms until it holds, ctx ends or timeout passes
// (testenv.WaitFor).
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
