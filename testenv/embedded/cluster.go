package embedded

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

	proxies [][]*routeProxy // [from][to], nil on the diagonal (cluster_crash.go)
	sink    net.Listener    // the route address every node advertises: accepts nothing
}

type clusterNode struct {
	name        string
	storeDir    string
	clientPort  int
	clusterPort int
	ns          *server.Server // nil while killed
	crashed     bool           // cut off by Crash: its route proxies carry nothing until it restarts
}

// clusterStartTimeout bounds one node's start and the meta leader election.
const clusterStartTimeout = 30 * time.Second

// RunCluster starts the nodes, waits until each accepts connections and
// the JetStream meta leader is elected, and returns the running cluster.
// Stop it with Shutdown. Tests use testenv.StartCluster instead.
func RunCluster(o ClusterOptions) (*Cluster, error) {
	size := o.Size
	if size == 0 {
		size = 3
	}
	if size < 2 {
		return nil, fmt.Errorf("embedded: cluster size %d: a cluster needs at least 2 nodes (3 to survive losing one); use Run for a single server", size)
	}
	c := &Cluster{name: o.Name, configure: o.Configure}
	if c.name == "" {
		c.name = "jetkit"
	}
	root := o.StoreDir
	if root == "" {
		dir, err := os.MkdirTemp("", "jetkit-cluster-")
		if err != nil {
			return nil, fmt.Errorf("embedded: temporary cluster store: %w", err)
		}
		root, c.tempDir = dir, dir
	}
	// A port found free can be taken by another process before the node
	// binds it; start again on fresh ports when that happens.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = c.start(root, size); err == nil {
			return c, nil
		}
		c.killAll()
		c.closeRouteProxies()
		for _, nd := range c.nodes {
			_ = os.RemoveAll(nd.storeDir)
		}
		c.nodes = nil
	}
	c.Shutdown()
	return nil, err
}

// start creates and starts size nodes on fresh ports under root and waits
// for the meta leader.
func (c *Cluster) start(root string, size int) error {
	ports, err := freePorts(2 * size)
	if err != nil {
		return err
	}
	for i := range size {
		name := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{
			name: name, storeDir: filepath.Join(root, name),
			clientPort: ports[2*i], clusterPort: ports[2*i+1],
		})
	}
	if err := c.newRouteProxies(); err != nil {
		return err
	}
	// Start every node before waiting for any: a lone node cannot finish
	// starting JetStream in clustered mode until it has peers.
	for i := range c.nodes {
		if err := c.startNode(i, false); err != nil {
			return err
		}
	}
	for i := range c.nodes {
		if err := c.waitReady(i); err != nil {
			return err
		}
	}
	_, err = c.WaitMetaLeader(clusterStartTimeout)
	return err
}

// freePorts finds n distinct free TCP ports on 127.0.0.1, held open
// together so they differ: every node must know its peers' route ports
// before any starts, and a client port fixed from the start stays the same
// across restarts.
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
			return nil, fmt.Errorf("embedded: find a free cluster port on 127.0.0.1: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// options builds node i's nats-server options: its own client and cluster
// ports, store directory and name, and routes to every peer through the
// route proxies (cluster_crash.go).
func (c *Cluster) options(i int) *server.Options {
	nd := c.nodes[i]
	routes := make([]*url.URL, 0, len(c.nodes))
	for j := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: c.proxies[i][j].addr()})
		}
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
			Name:      c.name,
			Host:      "127.0.0.1",
			Port:      nd.clusterPort,
			Advertise: c.sink.Addr().String(),
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
		return fmt.Errorf("embedded: node %s is already running", nd.name)
	}
	ns, err := server.NewServer(c.options(i))
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("embedded: configure node %s: %w", nd.name, err)
	}
	nd.ns, nd.crashed = ns, false
	c.mu.Unlock()
	go ns.Start()
	if wait {
		return c.waitReady(i)
	}
	return nil
}

// waitReady waits until node i accepts clients.
func (c *Cluster) waitReady(i int) error {
	ns := c.Server(i)
	if ns == nil {
		return fmt.Errorf("embedded: node %d is not running", i)
	}
	if !ns.ReadyForConnections(clusterStartTimeout) {
		return fmt.Errorf("embedded: node %s not ready for connections within %s", ns.Name(), clusterStartTimeout)
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

// Kill shuts node i down at once: its clients and routes drop, and its
// store stays on disk for Restart. Killing a killed node does nothing.
// nats-server's shutdown first hands the Raft leaderships it holds to a
// peer (as a SIGTERM'd server does), so a killed leader is replaced at
// once rather than after an election timeout; in-flight requests to it
// are lost all the same. Crash is the fault without that courtesy.
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
	c.killAll()
	c.closeRouteProxies()
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
	}
}

func (c *Cluster) killAll() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.Kill(i) }()
	}
	wg.Wait()
}
