package framework_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

// streamConfig reads a stream's configuration from the server.
func streamConfig(t *testing.T, svc *framework.Service, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := svc.Conn().JS.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("look up stream %s: %v", name, err)
	}
	return st.CachedInfo().Config
}

// wantRefused checks err is an ErrIncompatibleChange naming each of want.
func wantRefused(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, framework.ErrIncompatibleChange) {
		t.Fatalf("%s: want ErrIncompatibleChange, got %v", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error lacks %q: %v", what, w, err)
		}
	}
}

// TestStreamBelongsToItsOwner: the service that created a stream owns it;
// another service's declaration neither narrows it nor resets its
// retention, and is refused naming the field and the owner.
func TestStreamBelongsToItsOwner(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	owner := newService(t, srv, "order") // creates ORDERS (orders.>)
	other := newService(t, srv, "analytics")
	const published = 5
	publishN(t, owner, published)

	// The reported defect: a second program narrows the subjects.
	narrow := framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.created.v1.>"}}
	_, err := other.EnsureStream(ctx, narrow)
	wantRefused(t, "narrowing by another service", err, "stream ORDERS", "field Subjects", "orders.created.v1.>", `"order"`)
	if got := streamConfig(t, owner, "ORDERS").Metadata["jetkit.owner"]; got != "order" {
		t.Fatalf("ORDERS records owner %q, want order", got)
	}

	// The owner sets a retention; another service's default does not reset it.
	aged := ordersStream
	aged.MaxAge = time.Hour
	if _, err := owner.EnsureStream(ctx, aged); err != nil {
		t.Fatalf("owner's update refused: %v", err)
	}
	_, err = other.EnsureStream(ctx, ordersStream)
	wantRefused(t, "resetting the owner's MaxAge", err, "field MaxAge", "1h0m0s", `"order"`)
	// Nor does another service shorten it or lower a limit.
	shorter := aged
	shorter.MaxAge, shorter.MaxMsgs = 30*time.Minute, 10
	_, err = other.EnsureStream(ctx, shorter)
	wantRefused(t, "shortening by another service", err, "field MaxAge", "field MaxMsgs")

	// A consumer that names the owner verifies: its older copy of the
	// declaration changes nothing, and a subject the stream does not
	// store is an error.
	consumerCopy := ordersStream
	consumerCopy.Owner = "order"
	if _, err := other.EnsureStream(ctx, consumerCopy); err != nil {
		t.Fatalf("consumer verifying the owner's stream: %v", err)
	}
	missing := consumerCopy
	missing.Subjects = []string{"orders.>", "refunds.>"}
	_, err = other.EnsureStream(ctx, missing)
	wantRefused(t, "a consumer needing a subject the stream lacks", err, "field Subjects", "refunds.>", `"order"`)

	cfg := streamConfig(t, owner, "ORDERS")
	if !slices.Equal(cfg.Subjects, []string{"orders.>"}) || cfg.MaxAge != time.Hour || cfg.MaxMsgs != -1 {
		t.Fatalf("another service changed ORDERS: subjects %v, max age %s, max msgs %d", cfg.Subjects, cfg.MaxAge, cfg.MaxMsgs)
	}

	// The owner may narrow its own stream.
	if _, err := owner.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}, MaxAge: 30 * time.Minute}); err != nil {
		t.Fatalf("owner shortening its own stream: %v", err)
	}
	if cfg := streamConfig(t, owner, "ORDERS"); cfg.MaxAge != 30*time.Minute {
		t.Fatalf("owner's MaxAge not applied: %s", cfg.MaxAge)
	}
	// Every event published is still stored.
	if n := streamMsgs(t, owner, "ORDERS"); n != published {
		t.Fatalf("ORDERS holds %d messages, published %d", n, published)
	}
}

// TestStreamCreatedForItsOwner: a consumer that starts first creates the
// stream from the owner's declaration, recording the owner, who then
// reconciles it.
func TestStreamCreatedForItsOwner(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	consumer := newService(t, srv, "order")
	inv := framework.StreamSpec{Name: "INVENTORY", Subjects: []string{"inventory.>"}, Owner: "inventory"}
	if _, err := consumer.EnsureStream(ctx, inv); err != nil {
		t.Fatalf("consumer creating the owner's stream: %v", err)
	}
	if got := streamConfig(t, consumer, "INVENTORY").Metadata["jetkit.owner"]; got != "inventory" {
		t.Fatalf("INVENTORY records owner %q, want inventory", got)
	}
	producer := newService(t, srv, "inventory")
	inv.MaxAge = time.Hour
	if _, err := producer.EnsureStream(ctx, inv); err != nil { // Owner names the caller: it owns
		t.Fatalf("owner updating its stream: %v", err)
	}
	if cfg := streamConfig(t, producer, "INVENTORY"); cfg.MaxAge != time.Hour {
		t.Fatalf("owner's MaxAge not applied: %s", cfg.MaxAge)
	}
	if _, err := producer.EnsureStream(ctx, framework.StreamSpec{Name: "INVENTORY", Subjects: []string{"inventory.>"}, Owner: "bad owner"}); !errors.Is(err, framework.ErrInvalidSubject) ||
		!strings.Contains(err.Error(), "Owner") {
		t.Fatalf("invalid Owner: want an error naming Owner, got %v", err)
	}
}

// TestUnownedStreamIsAdoptedButNotNarrowed: a stream created outside
// jetkit records no owner; the first declaration adopts it and may widen
// it, but not narrow it.
func TestUnownedStreamIsAdoptedButNotNarrowed(t *testing.T) {
	srv := testenv.Start(t)
	ctx := context.Background()
	svc := newService(t, srv, "order")
	if _, err := svc.Conn().JS.CreateStream(ctx, jetstream.StreamConfig{Name: "LEGACY", Subjects: []string{"legacy.>"}, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "LEGACY", Subjects: []string{"legacy.>"}, MaxAge: 30 * time.Minute})
	wantRefused(t, "narrowing an unowned stream", err, "field MaxAge", "records no owner")
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "LEGACY", Subjects: []string{"legacy.>", "old.>"}, MaxAge: 2 * time.Hour}); err != nil {
		t.Fatalf("widening an unowned stream: %v", err)
	}
	cfg := streamConfig(t, svc, "LEGACY")
	if cfg.Metadata["jetkit.owner"] != "order" || cfg.MaxAge != 2*time.Hour || len(cfg.Subjects) != 2 {
		t.Fatalf("LEGACY not adopted and widened: %+v", cfg)
	}
}
