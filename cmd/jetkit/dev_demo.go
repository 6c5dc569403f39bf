package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/inventory"
	"github.com/jetkit/jetkit/services/order"
)

// demo places sample orders through the order API, like a client would,
// and prints each order's journey once it is decided.
type demo struct {
	out              io.Writer
	orderURL, invURL string
	rate             float64
	limit            int
	client           *http.Client
	mu               sync.Mutex // serialises output lines
}

// run places orders at d.rate until ctx ends or d.limit orders are decided.
func (d *demo) run(ctx context.Context) error {
	rate := d.rate
	if rate <= 0 {
		rate = 2
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	skus := make([]string, 0, len(seedStock))
	for sku := range seedStock {
		skus = append(skus, sku)
	}
	slices.Sort(skus)
	skus = append(skus, "durian") // not stocked: some orders are rejected for it
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var wg sync.WaitGroup
	defer wg.Wait()
	d.println("demo: placing %.1f orders a second; every 4th order, once confirmed, is cancelled, and stock is topped up now and then\n", rate)
	for n := 1; d.limit == 0 || n <= d.limit; n++ {
		items := make([]events.Line, 1+rng.IntN(2))
		for i := range items {
			sku := skus[rng.IntN(len(skus)-1)]
			if rng.IntN(12) == 0 {
				sku = "durian"
			}
			items[i] = events.Line{SKU: sku, Qty: 1 + rng.IntN(4)}
		}
		id, err := d.place(ctx, fmt.Sprintf("c-%d", 1+rng.IntN(9)), items)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.println("demo: place order: %v", err)
		} else {
			wg.Add(1)
			go func() { defer wg.Done(); d.follow(ctx, id, n%4 == 0) }()
		}
		if n%15 == 0 {
			d.restock(ctx, skus[rng.IntN(len(skus)-1)])
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// follow waits until the order is decided and prints its journey; with
// cancel it then cancels a confirmed order and shows the stock coming back.
func (d *demo) follow(ctx context.Context, id string, cancel bool) {
	start := time.Now()
	o, err := d.await(ctx, id, func(o order.Order) bool { return o.Status != order.StatusPending })
	if err != nil {
		if ctx.Err() == nil {
			d.println("order %s: %v", id, err)
		}
		return
	}
	line := fmt.Sprintf("order %s %-4s %-22s %s", short(id), o.CustomerID, items(o.Items), journey(o))
	line += fmt.Sprintf("  (%s)", time.Since(start).Round(time.Millisecond))
	d.println("%s", line)
	if !cancel || o.Status != order.StatusConfirmed {
		return
	}
	if err := d.call(ctx, "POST", d.orderURL+"/orders/"+id+"/cancel", nil, &o); err != nil {
		d.println("order %s: cancel: %v", short(id), err)
		return
	}
	d.println("order %s cancelled by the demo → inventory releases %s", short(id), items(o.Items))
}

// await polls the order until done holds (bounded by 30 s).
func (d *demo) await(ctx context.Context, id string, done func(order.Order) bool) (order.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var o order.Order
	for {
		if err := d.call(ctx, "GET", d.orderURL+"/orders/"+id, nil, &o); err == nil && done(o) {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return o, fmt.Errorf("still %s: %w", o.Status, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *demo) place(ctx context.Context, customer string, lines []events.Line) (string, error) {
	var resp order.PlaceResponse
	err := d.call(ctx, "POST", d.orderURL+"/orders", order.PlaceRequest{CustomerID: customer, Items: lines}, &resp)
	return resp.ID, err
}

func (d *demo) restock(ctx context.Context, sku string) {
	var l inventory.StockLevel
	if err := d.call(ctx, "PUT", d.invURL+"/stock/"+sku, map[string]int{"available": seedStock[sku]}, &l); err != nil {
		if ctx.Err() == nil {
			d.println("restock %s: %v", sku, err)
		}
		return
	}
	d.println("restocked %s to %d", sku, l.Available)
}

// call sends a JSON request and decodes a 2xx JSON answer into out.
func (d *demo) call(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, out)
}

func (d *demo) println(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format+"\n", args...)
}

// journey renders the order's history: created → reserved → confirmed.
func journey(o order.Order) string {
	steps := []string{"created"}
	for _, h := range o.History[1:] {
		switch {
		case strings.HasPrefix(h.Event, events.InventoryReservedTopic.EventType()):
			steps = append(steps, "reserved")
		}
		s := h.Status
		if h.Status == order.StatusRejected && o.Reason != "" {
			s += " (" + o.Reason + ")"
		}
		steps = append(steps, s)
	}
	return strings.Join(steps, " → ")
}

func items(lines []events.Line) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = fmt.Sprintf("%d×%s", l.Qty, l.SKU)
	}
	return strings.Join(parts, " ")
}

func short(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

// deleteSampleAssets removes the sample system's streams, consumers and
// buckets from an external server, for --fresh with JETKIT_NATS_URL.
func deleteSampleAssets(ctx context.Context, cfg framework.Config, out io.Writer) error {
	conn, err := framework.Connect(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, name := range []string{events.OrdersStream.Name, events.InventoryStream.Name,
		"KV_" + order.Bucket, "KV_" + inventory.StockBucket, "KV_" + inventory.ReservationBucket} {
		err := conn.JS.DeleteStream(ctx, name)
		switch {
		case err == nil:
			fmt.Fprintf(out, "--fresh: deleted stream %s\n", name)
		case errors.Is(err, jetstream.ErrStreamNotFound):
		default:
			return fmt.Errorf("--fresh: delete stream %s: %w", name, err)
		}
	}
	return nil
}
