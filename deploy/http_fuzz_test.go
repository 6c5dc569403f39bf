package deploy_test

// Fuzz targets for the request decoding of the sample services' HTTP APIs,
// the edge a deployment exposes. Each runs against the real service on an
// embedded server; the seed corpora in testdata/fuzz/ run in `go test`.
//
//	go test ./deploy -run '^$' -fuzz '^FuzzOrderPlaceRequest$' -fuzztime 60s

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

func fuzzService(f *testing.F, name string) *framework.Service {
	srv := testenv.Start(f)
	cfg := srv.Config(name)
	cfg.RequestTimeout = 10 * time.Second
	svc, err := framework.New(context.Background(), cfg, framework.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

// serve runs one request through h and checks the contract every answer
// keeps: no server error for any input, and a JSON body (an "error" field
// for every 4xx).
func serve(t *testing.T, h http.Handler, method, target, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s %q: status %d: %s", method, target, body, rec.Code, rec.Body.String())
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s %q: status %d with a non-JSON body %q", method, target, body, rec.Code, rec.Body.String())
	}
	if msg, _ := out["error"].(string); rec.Code >= 400 && msg == "" {
		t.Fatalf("%s %s %q: status %d without an error message: %s", method, target, body, rec.Code, rec.Body.String())
	}
	return rec.Code, out
}

// FuzzOrderPlaceRequest posts arbitrary bodies to POST /orders. Any body
// is answered 202 or 4xx; an accepted order is stored with normalised,
// valid lines.
func FuzzOrderPlaceRequest(f *testing.F) {
	svc := fuzzService(f, "order")
	orders, err := order.New(context.Background(), svc, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := orders.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		code, out := serve(t, h, http.MethodPost, "/orders", body)
		switch code {
		case http.StatusAccepted:
			id, _ := out["id"].(string)
			o, err := orders.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("accepted order %q not stored: %v", id, err)
			}
			if _, err := events.NormalizeLines(o.Items); err != nil || len(o.Items) == 0 {
				t.Fatalf("accepted order %q has invalid lines %+v: %v", id, o.Items, err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("POST /orders %q: unexpected status %d", body, code)
		}
	})
}

// FuzzInventoryStockRequest puts arbitrary SKUs (in the path) and bodies
// to PUT /stock/{sku}. Any request is answered 200 or 4xx; an accepted
// level reads back as written.
func FuzzInventoryStockRequest(f *testing.F) {
	svc := fuzzService(f, "inventory")
	inv, err := inventory.New(context.Background(), svc, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := inv.Handler()
	f.Fuzz(func(t *testing.T, sku, body string) {
		target := "/stock/" + url.PathEscape(sku)
		code, out := serve(t, h, http.MethodPut, target, body)
		switch code {
		case http.StatusOK:
			l, err := inv.Stock(context.Background(), sku)
			if err != nil {
				t.Fatalf("accepted stock for %q not readable: %v", sku, err)
			}
			if got, _ := out["available"].(float64); int(got) != l.Available || l.Available < 0 {
				t.Fatalf("stock of %q: answered %v, stored %d", sku, out["available"], l.Available)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		default:
			t.Fatalf("PUT %s %q: unexpected status %d", target, body, code)
		}
		serve(t, h, http.MethodGet, target, "")
	})
}
