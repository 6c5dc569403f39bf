package scaffolding

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateServiceName(t *testing.T) {
	for _, ok := range []string{"payments", "order-api", "a1", "svc-2-b"} {
		if err := ValidateServiceName(ok); err != nil {
			t.Errorf("ValidateServiceName(%q) = %v, want nil", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                       "empty",
		"Payments":               `try "payments"`,
		"1pay":                   "start with a letter",
		"pay_ments":              `try "pay-ments"`,
		"pay--x":                 "single dashes",
		"-x":                     "start with a letter",
		"x-":                     "single dashes",
		"pay ments":              "lower-case",
		strings.Repeat("a", 41):  "at most 40",
		"order.created":          `try "order-created"`,
		"paymentsé":              "lower-case letters",
		"payments\n":             "lower-case",
		"very-long-name-of-a-se": "", // valid: 22 characters
	} {
		err := ValidateServiceName(name)
		if want == "" {
			if err != nil {
				t.Errorf("ValidateServiceName(%q) = %v, want nil", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "service name") {
			t.Errorf("ValidateServiceName(%q) = %v, want an error naming the service name and saying %q", name, err, want)
		}
		if !errors.Is(err, ErrInvalidInput) && !strings.Contains(err.Error(), ErrInvalidInput.Error()) {
			t.Errorf("ValidateServiceName(%q) error %v does not report invalid input", name, err)
		}
	}
}

func TestValidateModulePath(t *testing.T) {
	for _, ok := range []string{"github.com/acme/payments", "example.com/x", "gitlab.example.org/team/svc/v2"} {
		if err := ValidateModulePath(ok); err != nil {
			t.Errorf("ValidateModulePath(%q) = %v, want nil", ok, err)
		}
	}
	for path, want := range map[string]string{
		"":                           "--module is required",
		"payments":                   "missing dot in first path element",
		"github.com/acme/pay ments":  "invalid char",
		"github.com/acme/../x":       "invalid path element",
		"github.com/jetkit/jetkit/x": "inside jetkit's own module",
		"/abs/path":                  "empty path element",
	} {
		err := ValidateModulePath(path)
		if err == nil || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateModulePath(%q) = %v, want ErrInvalidInput saying %q", path, err, want)
		}
		if path != "" && !strings.Contains(err.Error(), "github.com/acme/payments") {
			t.Errorf("ValidateModulePath(%q) = %v, want an example of a valid path", path, err)
		}
	}
}

func TestValidateEventSubject(t *testing.T) {
	for _, ok := range []string{"orders.created.v1", "order-lines.added.v12", "a.b.c.v2"} {
		if err := ValidateEventSubject(ok); err != nil {
			t.Errorf("ValidateEventSubject(%q) = %v, want nil", ok, err)
		}
	}
	for subject, want := range map[string]string{
		"":                   "empty subject",
		"orders.*.v1":        "wildcard",
		"orders.>":           "wildcard",
		"orders..v1":         "empty token",
		"orders created.v1":  "whitespace",
		"orders.created":     "expected <domain>.<event>.v<N>",
		"orders.created.one": "version token",
		"orders.created.v":   "version token",
		"1orders.created.v1": "must start with a letter",
		"orders.créé.v1":     "ASCII letters",
		"orders.a+b.v1":      "ASCII letters",
		"Orders.Created.v1":  `lower-case in jetkit (NATS subjects are case sensitive: Orders.> would not store orders.>); use "orders.created.v1"`,
		"orders.created.V1":  "lower-case",
	} {
		err := ValidateEventSubject(subject)
		if err == nil || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateEventSubject(%q) = %v, want ErrInvalidInput saying %q", subject, err, want)
		}
	}
}

func TestValidateEventsRejectsCollisions(t *testing.T) {
	for _, tc := range []struct {
		consumes, publishes []string
		want                string
	}{
		{[]string{"orders.created.v1"}, []string{"orders.created.v1"}, "given twice"},
		{[]string{"orders.created-x.v1", "orders.created_x.v1"}, nil, "both map to the Go name OrdersCreatedXV1"},
		{[]string{"my-orders.created.v1"}, []string{"my_orders.shipped.v1"}, "both map to stream MY_ORDERS"},
	} {
		_, err := validateEvents(tc.consumes, tc.publishes)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validateEvents(%v, %v) = %v, want an error saying %q", tc.consumes, tc.publishes, err, tc.want)
		}
	}
}

func TestNaming(t *testing.T) {
	ev := newEvent("order-lines.item_added.v2", true)
	want := event{
		Subject: "order-lines.item_added.v2", Ident: "OrderLinesItemAddedV2", File: "order_lines_item_added_v2",
		Durable: "order-lines-item-added-v2", Consumed: true,
		Domain: domain{Token: "order-lines", Ident: "OrderLines", Stream: "ORDER_LINES", File: "order_lines_stream"},
	}
	if ev != want {
		t.Fatalf("newEvent = %+v\nwant        %+v", ev, want)
	}
	if got := envPrefix("order-api"); got != "ORDER_API" {
		t.Fatalf("envPrefix(order-api) = %q", got)
	}
}
