// Package apitest holds helpers shared by the sample services' tests: a
// test HTTP server and a JSON API client (a quiet framework service is
// testenv.NewService).
package apitest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Serve serves h on a local test server closed when the test ends.
func Serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs
}

// Send makes one request with body (none when empty, else labelled
// Content-Type: application/json) and returns the status and the decoded
// JSON object answered. A response that is not JSON, or not labelled
// application/json, fails the test.
func Send(t testing.TB, method, url, body string) (int, map[string]any) {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return SendAs(t, method, url, ct, body)
}

// SendAs is Send with the request's Content-Type (none when empty).
func SendAs(t testing.TB, method, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Errorf("%s %s: %d, body is not JSON: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}
