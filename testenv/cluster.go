package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetkit/jetkit/framework"
)

// ClusterOptions configure an embedded JetStream cluster. The zero value is
// three nodes named n1..n3 in cluster "jetkit" on random 127.0.0.1 ports
// with temporary file stores.
type ClusterOptions struct {
	// Size is the number of nodes, at least 2; 0 means 3. JetStream needs a
	// majority alive, so 3 tolerates one node down.
	Size int
	// Name is the cluster name; empty means "jetkit".
	Name string
	// StoreDir is the parent of the nodes' store directories (StoreDir/n1,
	// ...); empty uses a temporary directory that Shutdown removes.
	StoreDir string
	// Configure adjusts node i's nats-server options before every start,
	// restarts included (auth, limits, ...). Ports, names, routes and store
	// directories are the cluster's to set.
	Configure func(i int, o *server.Options)
}

// Cluster is a JetStream cluster of nats-servers running in this process,
// connected by routes on 127.0.0.1. Nodes are numbered from 0. A node keeps
// its name, store directory, client port and cluster port across Kill and
// Restart, so clients and peers find it again exactly as they would a
// restarted machine.
type Cluster struct {
	name      string
	configure func(int, *server.Options)
	tempDir   string

	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	name        string
	storeDir    string
	clientPort  int
	clusterPort int
	ns          *server.Server // nil while killed
}

// clusterStartTimeout bounds one node's start and the meta leader election.
const clusterStartTimeout = 30 * time.Second

// RunCluster starts the nodes, waits until each accepts connections and
// the JetStream meta leader is elected, and returns the running cluster.
// Stop it with Shutdown. Tests use StartCluster instead.
func RunCluster(o ClusterOptions) (*Cluster, error) {
	size := o.Size
	if size == 0 {
		size = 3
	}
	if size < 2 {
		return nil, fmt.Errorf("testenv: cluster size %d: a cluster needs at least 2 nodes (3 to survive losing one); use Run for a single server", size)
	}
	c := &Cluster{name: o.Name, configure: o.Configure}
	if c.name == "" {
		c.name = "jetkit"
	}
	root := o.StoreDir
	if root == "" {
		dir, err := os.MkdirTemp("", "jetkit-cluster-")
		if err != nil {
			return nil, fmt.Errorf("testenv: temporary cluster store: %w", err)
		}
		root, c.tempDir = dir, dir
	}
	ports, err := freePorts(size)
	if err != nil {
		c.Shutdown()
		return nil, err
	}
	for i := range size {
		name := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{
			name: name, storeDir: filepath.Join(root, name),
			clientPort: server.RANDOM_PORT, clusterPort: ports[i],
		})
	}
	// Start every node before waiting for any: a lone node cannot finish
	// starting JetStream in clustered mode until it has peers.
	for i := range c.nodes {
		if err := c.startNode(i, false); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := c.waitReady(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if _, err := c.WaitMetaLeader(clusterStartTimeout); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1 for the route
// listeners, which every node must know before any starts.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: find a free cluster port on 127.0.0.1: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// options builds node i's nats-server options: its own client and cluster
// ports, store directory and name, and routes to every node.
func (c *Cluster) options(i int) *server.Options {
	nd := c.nodes[i]
	routes := make([]*url.URL, 0, len(c.nodes))
	for _, peer := range c.nodes {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", peer.clusterPort)})
	}
	opts := &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       nd.clientPort,
		JetStream:  true,
		StoreDir:   nd.storeDir,
		NoSigs:     true,
		NoLog:      true,
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: nd.clusterPort,
		},
		Routes: routes,
	}
	if c.configure != nil {
		c.configure(i, opts)
	}
	return opts
}

// startNode starts node i without waiting for it; wait reports whether to
// wait until it accepts clients.
func (c *Cluster) startNode(i int, wait bool) error {
	c.mu.Lock()
	nd := c.nodes[i]
	if nd.ns != nil {
		c.mu.Unlock()
		return fmt.Errorf("testenv: node %s is already running", nd.name)
	}
	ns, err := server.NewServer(c.options(i))
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("testenv: configure node %s: %w", nd.name, err)
	}
	nd.ns = ns
	c.mu.Unlock()
	go ns.Start()
	if wait {
		return c.waitReady(i)
	}
	return nil
}

// waitReady waits until node i accepts clients and records its client port
// so that a restart listens on the same one.
func (c *Cluster) waitReady(i int) error {
	ns := c.Server(i)
	if ns == nil {
		return fmt.Errorf("testenv: node %d is not running", i)
	}
	if !ns.ReadyForConnections(clusterStartTimeout) {
		return fmt.Errorf("testenv: node %s not ready for connections within %s", ns.Name(), clusterStartTimeout)
	}
	if addr, ok := ns.Addr().(*net.TCPAddr); ok {
		c.mu.Lock()
		c.nodes[i].clientPort = addr.Port
		c.mu.Unlock()
	}
	return nil
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// Name is the cluster name.
func (c *Cluster) Name() string { return c.name }

// NodeName is node i's server name (n1, n2, ...).
func (c *Cluster) NodeName(i int) string { return c.nodes[i].name }

// Server is node i's nats-server, or nil while it is killed.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].ns
}

// Running reports whether node i is up.
func (c *Cluster) Running(i int) bool { return c.Server(i) != nil }

// StoreDir is node i's JetStream store directory.
func (c *Cluster) StoreDir(i int) string { return c.nodes[i].storeDir }

// ClientURL is node i's client URL. It stays the same across restarts.
func (c *Cluster) ClientURL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].clientPort)
}

// ClientURLs are the client URLs of all nodes, running or not.
func (c *Cluster) ClientURLs() []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.ClientURL(i)
	}
	return out
}

// URL is ClientURLs joined with commas, the form NATS_URL takes.
func (c *Cluster) URL() string { return strings.Join(c.ClientURLs(), ",") }

// Config returns a framework.Config pointing at every node, declaring
// streams with one replica per node (at most 5), with timeouts suited to
// tests and local runs: a client reconnects to a surviving node quickly.
func (c *Cluster) Config(serviceName string) framework.Config {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = serviceName
	cfg.URLs = c.ClientURLs()
	cfg.Replicas = min(len(c.nodes), 5)
	cfg.RequestTimeout = 5 * time.Second
	cfg.ReconnectWait = 100 * time.Millisecond
	return cfg
}

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

// WaitMetaLeader waits until the meta leader exists and every running
// node's view of the meta group is current, and returns its index.
func (c *Cluster) WaitMetaLeader(timeout time.Duration) (int, error) {
	leader := -1
	err := WaitFor(context.Background(), timeout, func() bool {
		leader = c.MetaLeader()
		return leader >= 0 && c.find(func(s *server.Server) bool { return !s.JetStreamIsCurrent() }) < 0
	})
	if err != nil {
		return -1, fmt.Errorf("testenv: cluster %s: no JetStream meta leader with all running nodes current within %s", c.name, timeout)
	}
	return leader, nil
}

// WaitStreamLeader waits until a running node leads stream and every
// running node holding a replica of it is current, and returns the
// leader's index. Call it after Kill or Restart before asserting on the
// stream.
func (c *Cluster) WaitStreamLeader(timeout time.Duration, stream string) (int, error) {
	leader := -1
	err := WaitFor(context.Background(), timeout, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0 && c.streamReplicasCurrent(leader, stream)
	})
	if err != nil {
		return -1, fmt.Errorf("testenv: cluster %s: stream %s has no leader with current replicas within %s", c.name, stream, timeout)
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
	err := WaitFor(context.Background(), timeout, func() bool {
		leader = c.ConsumerLeader(stream, consumer)
		return leader >= 0
	})
	if err != nil {
		return -1, fmt.Errorf("testenv: cluster %s: consumer %s/%s has no leader within %s", c.name, stream, consumer, timeout)
	}
	return leader, nil
}

// Kill shuts node i down at once: its clients and routes drop, and its
// store stays on disk for Restart. Killing a killed node does nothing.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	ns := c.nodes[i].ns
	c.nodes[i].ns = nil
	c.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart starts a killed node again with the same name, store directory,
// client port and cluster port, and waits until it accepts clients. It
// does not wait for streams to catch up: use WaitStreamLeader for that.
func (c *Cluster) Restart(i int) error {
	return c.startNode(i, true)
}

// Shutdown stops every node and removes a temporary store.
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.Kill(i) }()
	}
	wg.Wait()
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
	}
}

// StartCluster runs an embedded JetStream cluster of size nodes for the
// test (stores under t.TempDir()) and shuts it down at cleanup. It returns
// once the meta leader is elected.
//
//	cl := testenv.StartCluster(t, 3)
//	svc, _ := framework.New(ctx, cl.Config("order")) // streams get 3 replicas
//	leader, _ := cl.WaitStreamLeader(30*time.Second, "ORDERS")
//	cl.Kill(leader)
func StartCluster(t testing.TB, size int, opts ...ClusterOptions) *Cluster {
	t.Helper()
	var o ClusterOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Size = size
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	c, err := RunCluster(o)
	if err != nil {
		t.Fatalf("testenv.StartCluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	return c
}
