package httpjson_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetkit/jetkit/services/internal/httpjson"
)

type body struct {
	N int `json:"n"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, in string
		want     int // 0: decoded
	}{
		{"ok", `{"n": 3}`, 0},
		{"empty", ``, http.StatusBadRequest},
		{"malformed", `{"n":`, http.StatusBadRequest},
		{"unknown field", `{"n": 1, "x": 2}`, http.StatusBadRequest},
		{"two values", `{"n": 1} {}`, http.StatusBadRequest},
		{"wrong type", `{"n": "1"}`, http.StatusBadRequest},
		{"over the limit", `{"n": 1` + strings.Repeat(" ", 100) + `}`, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
			var v body
			status, err := httpjson.Decode(httptest.NewRecorder(), r, 64, &v)
			if status != c.want || (err == nil) != (c.want == 0) {
				t.Fatalf("Decode(%q) = %d, %v; want status %d", c.in, status, err, c.want)
			}
			if c.want == 0 && v.N != 3 {
				t.Errorf("decoded %+v, want n=3", v)
			}
		})
	}
}

func TestErrorsAreJSON(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, http.StatusOK, body{N: 7}) })
	mux.HandleFunc("/x", httpjson.MethodNotAllowed("GET"))
	mux.HandleFunc("/", httpjson.NoRoute)
	cases := []struct {
		method, path string
		want         int
		allow        string
	}{
		{"GET", "/x", http.StatusOK, ""},
		{"PUT", "/x", http.StatusMethodNotAllowed, "GET"},
		{"GET", "/nowhere", http.StatusNotFound, ""},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.want || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow=%q, want %d Allow=%q", c.method, c.path, rec.Code, rec.Header().Get("Allow"), c.want, c.allow)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", c.method, c.path, rec.Body, err)
		}
		if msg, _ := out["error"].(string); (msg != "") != (c.want != http.StatusOK) {
			t.Errorf("%s %s: body %v", c.method, c.path, out)
		}
	}
}
