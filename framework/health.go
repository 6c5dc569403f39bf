package framework

import (
	"context"
	"fmt"
)

// Health is a point-in-time view of a connection, for readiness probes.
type Health struct {
	// Connected is true while the client holds a server connection.
	Connected bool `json:"connected"`
	// JetStream is true when the JetStream API answered.
	JetStream bool `json:"jetstream"`
	// Server is the name of the connected server, if any.
	Server string `json:"server,omitempty"`
	// Problem says what is wrong when either flag is false.
	Problem string `json:"problem,omitempty"`
}

// OK reports whether the connection is usable.
func (h Health) OK() bool { return h.Connected && h.JetStream }

// Health checks the connection and asks JetStream for the account info,
// bounded by ctx.
func (c *Conn) Health(ctx context.Context) Health {
	h := Health{Connected: c.NC.IsConnected()}
	if !h.Connected {
		h.Problem = "not connected to NATS (status " + c.NC.Status().String() + ")"
		return h
	}
	h.Server = c.NC.ConnectedServerName()
	wctx, done := c.WatchPermissions(ctx, "$JS.API.INFO", c.inboxPrefix()) // a refusal is named, not a timeout
	_, err := c.JS.AccountInfo(wctx)
	if err = done(err); err != nil {
		h.Problem = fmt.Sprintf("JetStream not reachable: %v", err)
		return h
	}
	h.JetStream = true
	return h
}
