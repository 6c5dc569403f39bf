package httpjson_test

import (
	"encoding/json"
	"io"
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
			r.Header.Set("Content-Type", "application/json")
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

// A body is decoded only when labelled application/json: a form, a
// multipart upload or text/plain (what a cross-site page can send without
// CORS) is refused with 415 and a message naming the header.
func TestDecodeRequiresJSONContentType(t *testing.T) {
	cases := []struct {
		ct   string
		want int
	}{
		{"application/json", 0},
		{"application/json; charset=utf-8", 0},
		{"Application/JSON; charset=UTF-8", 0},
		{"", http.StatusUnsupportedMediaType},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"text/plain; charset=utf-8", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/json; charset=latin1", http.StatusUnsupportedMediaType},
		{"application/json;;", http.StatusUnsupportedMediaType},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{"n": 3}`))
		if c.ct != "" {
			r.Header.Set("Content-Type", c.ct)
		}
		var v body
		status, err := httpjson.Decode(httptest.NewRecorder(), r, 64, &v)
		if status != c.want || (err == nil) != (c.want == 0) {
			t.Errorf("Content-Type %q: Decode = %d, %v; want status %d", c.ct, status, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "Content-Type") {
			t.Errorf("Content-Type %q: error %q does not name the header", c.ct, err)
		}
	}
}

// NoBody refuses any body, chunked ones too, and accepts an empty one
// however it is framed.
func TestNoBody(t *testing.T) {
	cases := []struct {
		name   string
		body   io.Reader
		length int64
		ok     bool
	}{
		{"none", nil, 0, true},
		{"sized", strings.NewReader("x=1"), 3, false},
		{"chunked", strings.NewReader("x=1"), -1, false},
		{"chunked empty", strings.NewReader(""), -1, true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/", c.body)
		r.ContentLength = c.length
		if err := httpjson.NoBody(r, "cancel"); (err == nil) != c.ok {
			t.Errorf("%s: NoBody = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// Guard answers paths ServeMux would redirect, and cross-origin browser
// writes, with JSON errors, and lets everything else through.
func TestGuard(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { httpjson.Write(w, http.StatusOK, body{N: 1}) })
	h := httpjson.Guard(mux)
	cases := []struct {
		method, path string
		header       map[string]string
		want         int
	}{
		{"GET", "/stock/apple", nil, http.StatusOK},
		{"PUT", "/stock/.", nil, http.StatusBadRequest},
		{"GET", "/stock/..", nil, http.StatusBadRequest},
		{"GET", "//stock", nil, http.StatusBadRequest},
		{"POST", "/orders/a/../b/cancel", nil, http.StatusBadRequest},
		{"GET", "/stock/", nil, http.StatusOK},
		{"GET", "/stock/a%2F..", nil, http.StatusOK}, // an escaped slash is part of the segment
		{"POST", "/orders", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"POST", "/orders", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"POST", "/orders", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"GET", "/orders/x", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusOK},
		{"POST", "/orders", nil, http.StatusOK}, // curl, services
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://api.local"+c.path, nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != c.want {
			t.Errorf("%s %s %v: %d, want %d (%s)", c.method, c.path, c.header, rec.Code, c.want, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: answer %q is not JSON: %v", c.method, c.path, rec.Body, err)
		}
		if msg, _ := out["error"].(string); (msg != "") != (c.want != http.StatusOK) {
			t.Errorf("%s %s: body %v", c.method, c.path, out)
		}
	}
}
