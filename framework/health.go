package framework

import (
	"context"
	"errors"
	"fmt"
)

// health checks the connection and asks JetStream for the account info,
// bounded by ctx, for readiness probes. The error says what is wrong.
func (c *Conn) health(ctx context.Context) error {
	if !c.NC.IsConnected() {
		return errors.New("not connected to NATS (status " + c.NC.Status().String() + ")")
	}
	wctx, done := c.watchCall(ctx, "$JS.API.INFO", c.inboxPrefix()) // a refusal is named, not a timeout
	_, err := c.JS.AccountInfo(wctx)
	if err = done(err); err != nil {
		return fmt.Errorf("JetStream not reachable: %w", err)
	}
	return nil
}
