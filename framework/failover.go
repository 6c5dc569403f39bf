package framework

import "time"

// Pull settings that bound how long a subscription can sit idle after the
// consumer's leader moves to another node (a node was killed, restarted or
// stepped down) and its outstanding pull request is lost with it.
//
// nats.go's defaults (30s pull expiry, 15s idle heartbeat) notice the loss
// only after two missed heartbeats, 30 seconds with no deliveries at all;
// the fault tests in faults/ measured exactly that stall. With these
// values a lost pull is noticed within 2×consumeHeartbeat (4s) and
// re-issued to the new leader, at the cost of one server heartbeat every
// 2s per idle subscription.
const (
	// consumePullExpiry is how long one pull request waits on the server.
	consumePullExpiry = 10 * time.Second
	// consumeHeartbeat is the server's idle heartbeat for a pull request;
	// it must be under half of consumePullExpiry.
	consumeHeartbeat = 2 * time.Second
)
