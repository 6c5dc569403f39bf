package servicemain

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// CheckReady asks the service listening on addr (its HTTP address, e.g.
// ":8081") for GET /readyz and returns nil when it answers 200, or an
// error with the status and the reasons it gave. An address without a
// host, or with an unspecified one (0.0.0.0, ::), is probed on loopback.
func CheckReady(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("HTTP address %q: %w (expected host:port, e.g. :8081)", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var st struct {
		Problems []string `json:"problems"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &st) == nil && len(st.Problems) > 0 {
		return fmt.Errorf("not ready: GET %s: %s: %s", url, resp.Status, strings.Join(st.Problems, "; "))
	}
	return fmt.Errorf("not ready: GET %s: %s", url, resp.Status)
}
