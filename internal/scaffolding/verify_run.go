package scaffolding

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// freeAddr picks a free 127.0.0.1 port for the service's health endpoints.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitHealthy polls /readyz until it answers 200, then checks /livez,
// failing if the process exits or timeout passes first.
func waitHealthy(ctx context.Context, addr string, timeout time.Duration, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 3 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		status, body, err := get(ctx, client, "http://"+addr+"/readyz")
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			status, body, err := get(ctx, client, "http://"+addr+"/livez")
			if err != nil || status != http.StatusOK {
				return fmt.Errorf("GET /livez: status %d, %q, %v", status, body, err)
			}
			return nil
		default:
			last = fmt.Sprintf("status %d: %s", status, body)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the service exited before it was ready (%v); last /readyz: %s", err, last)
		case <-ctx.Done():
			return fmt.Errorf("GET http://%s/readyz did not answer 200 within %s; last: %s", addr, timeout, last)
		case <-tick.C:
		}
	}
}

func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

// stopProcess asks the service to shut down gracefully.
func stopProcess(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
