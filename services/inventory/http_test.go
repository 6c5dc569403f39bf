package inventory_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jetkit/jetkit/services/internal/apitest"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/testenv"
)

func newHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	svc := apitest.Framework(t, testenv.Start(t).Config("inventory"))
	inv, err := inventory.New(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	return apitest.Serve(t, inv.Handler())
}

func TestStockAPI(t *testing.T) {
	hs := newHTTP(t)
	if code, body := apitest.Send(t, "GET", hs.URL+"/stock", ""); code != 200 || len(body["items"].([]any)) != 0 {
		t.Fatalf("GET /stock on an empty inventory: %d %v", code, body)
	}
	if code, body := apitest.Send(t, "PUT", hs.URL+"/stock/apple", `{"available": 12}`); code != 200 || body["available"] != 12.0 {
		t.Fatalf("PUT /stock/apple: %d %v", code, body)
	}
	apitest.Send(t, "PUT", hs.URL+"/stock/pear", `{"available": 0}`)
	if code, body := apitest.Send(t, "GET", hs.URL+"/stock/apple", ""); code != 200 || body["sku"] != "apple" || body["available"] != 12.0 {
		t.Errorf("GET /stock/apple: %d %v", code, body)
	}
	code, body := apitest.Send(t, "GET", hs.URL+"/stock", "")
	items, _ := body["items"].([]any)
	if code != 200 || len(items) != 2 || items[0].(map[string]any)["sku"] != "apple" || items[1].(map[string]any)["available"] != 0.0 {
		t.Errorf("GET /stock: %d %v", code, body)
	}
	if code, body := apitest.Send(t, "GET", hs.URL+"/livez", ""); code != 200 {
		t.Errorf("livez: %d %v", code, body)
	}
	if code, body := apitest.Send(t, "GET", hs.URL+"/readyz", ""); code != 200 {
		t.Errorf("readyz: %d %v", code, body)
	}
}

func TestStockBadInput(t *testing.T) {
	hs := newHTTP(t)
	apitest.Send(t, "PUT", hs.URL+"/stock/apple", `{"available": 5}`)
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown sku", "GET", "/stock/plum", ``, 404},
		{"invalid sku", "GET", "/stock/a.b", ``, 400},
		{"invalid sku on put", "PUT", "/stock/a*b", `{"available": 1}`, 400},
		{"malformed JSON", "PUT", "/stock/apple", `{"available":`, 400},
		{"unknown field", "PUT", "/stock/apple", `{"available": 1, "price": 3}`, 400},
		{"missing level", "PUT", "/stock/apple", `{}`, 400},
		{"negative level", "PUT", "/stock/apple", `{"available": -1}`, 400},
		{"fractional level", "PUT", "/stock/apple", `{"available": 1.5}`, 400},
		{"huge level", "PUT", "/stock/apple", `{"available": 99999999999}`, 400},
		{"huge body", "PUT", "/stock/apple", `{"available": 1` + strings.Repeat(" ", 10000) + `}`, 413},
		{"empty body", "PUT", "/stock/apple", ``, 400},
		{"wrong method", "DELETE", "/stock/apple", ``, 405},
		{"wrong method on list", "POST", "/stock", `{}`, 405},
		{"unknown route", "GET", "/nowhere", ``, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := apitest.Send(t, c.method, hs.URL+c.path, c.body)
			if code != c.want {
				t.Errorf("status %d, want %d (body %v)", code, c.want, body)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("body %v has no error message", body)
			}
		})
	}
	if _, body := apitest.Send(t, "GET", hs.URL+"/stock/apple", ""); body["available"] != 5.0 {
		t.Errorf("apple after bad requests: %v, want 5", body)
	}
}
