package inventory_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/jetkit/jetkit/services/internal/apitest"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/testenv"
)

func newHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	svc := testenv.NewService(t, testenv.Start(t).Config("inventory"))
	inv, err := inventory.New(context.Background(), svc, nil)
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
		{"empty body", "PUT", "/stock/apple", ``, 415}, // nothing sent, no Content-Type either
		{"wrong method", "DELETE", "/stock/apple", ``, 405},
		{"wrong method on list", "POST", "/stock", `{}`, 405},
		{"unknown route", "GET", "/nowhere", ``, 404},
		{"path not canonical", "PUT", "/stock/.", `{"available": 1}`, 400},
		{"path not canonical on get", "GET", "/stock/apple/..", ``, 400},
		{"limit zero", "GET", "/stock?limit=0", ``, 400},
		{"limit too big", "GET", "/stock?limit=1001", ``, 400},
		{"limit not a number", "GET", "/stock?limit=ten", ``, 400},
		{"cursor not a sku", "GET", "/stock?cursor=a.b", ``, 400},
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
	if code, body := apitest.SendAs(t, "PUT", hs.URL+"/stock/apple", "text/plain", `{"available": 1}`); code != 415 {
		t.Errorf("PUT as text/plain: %d %v, want 415", code, body)
	}
	if _, body := apitest.Send(t, "GET", hs.URL+"/stock/apple", ""); body["available"] != 5.0 {
		t.Errorf("apple after bad requests: %v, want 5", body)
	}
}

// GET /stock answers a bounded page: DefaultStockPage levels unless limit
// says otherwise, and a next_cursor to follow until the last page, which
// has none. Following the cursors lists every SKU once, in order.
func TestStockPages(t *testing.T) {
	svc := testenv.NewService(t, testenv.Start(t).Config("inventory"))
	inv, err := inventory.New(context.Background(), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := apitest.Serve(t, inv.Handler())
	const n = inventory.DefaultStockPage + 5
	var want []string
	for i := range n {
		sku := fmt.Sprintf("sku-%03d", i)
		if _, err := inv.SetStock(context.Background(), sku, i); err != nil {
			t.Fatal(err)
		}
		want = append(want, sku)
	}
	code, body := apitest.Send(t, "GET", hs.URL+"/stock", "")
	if items, _ := body["items"].([]any); code != 200 || len(items) != inventory.DefaultStockPage || body["next_cursor"] != want[inventory.DefaultStockPage-1] {
		t.Fatalf("GET /stock: %d, %d items, next_cursor %v; want %d items and a cursor", code, len(items), body["next_cursor"], inventory.DefaultStockPage)
	}
	var got []string
	url := hs.URL + "/stock?limit=40"
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("the cursors do not end")
		}
		code, body := apitest.Send(t, "GET", url, "")
		if code != 200 {
			t.Fatalf("GET %s: %d %v", url, code, body)
		}
		items, _ := body["items"].([]any)
		if len(items) > 40 {
			t.Fatalf("GET %s: %d items, limit 40", url, len(items))
		}
		for _, it := range items {
			got = append(got, it.(map[string]any)["sku"].(string))
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			break
		}
		url = hs.URL + "/stock?limit=40&cursor=" + next
	}
	if !slices.Equal(got, want) {
		t.Errorf("paging lists %d SKUs %v..., want the %d in order", len(got), got[:min(3, len(got))], len(want))
	}
}
