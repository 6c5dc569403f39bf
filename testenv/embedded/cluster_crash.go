package embedded

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// Routes between nodes run through a proxy per ordered pair of nodes
// (node i dials its peer j through routeProxy i→j), so that Crash can cut
// a node off from its peers at once: nats-server's own Shutdown first
// hands its Raft leaderships to a peer, which a crashed node never does.
// Each node advertises a route address that accepts nothing, so that
// peers never gossip their way to a direct route around the proxies.

// routeProxy forwards the route connections node from opens to node to.
type routeProxy struct {
	c        *Cluster
	from, to int
	ln       net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// newRouteProxies listens for every ordered pair of the cluster's nodes,
// and opens the sink the nodes advertise as their route address.
func (c *Cluster) newRouteProxies() error {
	n := len(c.nodes)
	c.proxies = make([][]*routeProxy, n)
	for i := range n {
		c.proxies[i] = make([]*routeProxy, n)
		for j := range n {
			if i == j {
				continue
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("embedded: route proxy %s→%s: %w", c.nodes[i].name, c.nodes[j].name, err)
			}
			p := &routeProxy{c: c, from: i, to: j, ln: ln, conns: map[net.Conn]struct{}{}}
			c.proxies[i][j] = p
			go p.serve()
		}
	}
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("embedded: route sink: %w", err)
	}
	c.sink = sink
	go func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	return nil
}

// closeRouteProxies stops every proxy and the sink, cutting what they carry.
func (c *Cluster) closeRouteProxies() {
	for _, row := range c.proxies {
		for _, p := range row {
			if p != nil {
				_ = p.ln.Close()
				p.cut()
			}
		}
	}
	c.proxies = nil
	if c.sink != nil {
		_ = c.sink.Close()
		c.sink = nil
	}
}

func (p *routeProxy) addr() string { return p.ln.Addr().String() }

// serve forwards each connection to the peer's cluster port while neither
// end is crashed.
func (p *routeProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.c.crashed(p.from) || p.c.crashed(p.to) {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.c.nodes[p.to].clusterPort))
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(out, in)
		go pipe(in, out)
	}
}

// cut closes every connection the proxy carries.
func (p *routeProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for conn := range p.conns {
		_ = conn.Close()
	}
}

func (c *Cluster) crashed(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].crashed
}

// Crash stops node i the way kill -9 or a power cut does, as its peers and
// clients see it: every route to and from it is cut at once, so it hands
// no Raft leadership over and its peers learn of its death only from the
// broken routes (a stream or consumer it led elects a new leader after the
// election timeout, as in production); then it is shut down, its
// step-down requests reaching no one, and its clients' connections drop.
// Its store stays on disk for Restart (what it wrote is kept: the loss of
// writes not yet synced to disk is not simulated). Crashing a node that is
// not running does nothing.
func (c *Cluster) Crash(i int) {
	c.mu.Lock()
	ns := c.nodes[i].ns
	if ns == nil {
		c.mu.Unlock()
		return
	}
	c.nodes[i].crashed = true
	c.mu.Unlock()
	for j := range c.nodes {
		if j != i {
			c.proxies[i][j].cut()
			c.proxies[j][i].cut()
		}
	}
	c.Kill(i)
}
