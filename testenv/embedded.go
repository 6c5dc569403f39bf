package testenv

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetkit/jetkit/testenv/embedded"
)

// The servers are package embedded's; these names keep tests short.
type (
	// Server is a running embedded nats-server (embedded.Server).
	Server = embedded.Server
	// Options configure an embedded server (embedded.Options).
	Options = embedded.Options
	// Cluster is an embedded JetStream cluster (embedded.Cluster).
	Cluster = embedded.Cluster
	// ClusterOptions configure an embedded cluster (embedded.ClusterOptions).
	ClusterOptions = embedded.ClusterOptions
)

// Run starts an embedded server that the caller shuts down, for a test
// that restarts a server on the same store; it is embedded.Run. Most tests
// use Start.
func Run(o Options) (*Server, error) { return embedded.Run(o) }

// StreamDetail is embedded.StreamDetail: what node ns knows of stream.
func StreamDetail(ns *server.Server, stream string) (server.StreamDetail, bool) {
	return embedded.StreamDetail(ns, stream)
}
