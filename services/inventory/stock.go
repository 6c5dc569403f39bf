package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/services/events"
	"github.com/jetkit/jetkit/services/internal/kvstate"
)

// ErrUnknownSKU is returned for a SKU the inventory has no stock record of.
var ErrUnknownSKU = errors.New("unknown sku")

// MaxStock is the largest stock level PUT /stock/{sku} accepts.
const MaxStock = 1_000_000_000

// stockRecord is the value of one SKU's key in the stock bucket.
type stockRecord struct {
	// Available is what can still be reserved; reservations are already
	// subtracted.
	Available int `json:"available"`
	// Holds marks the reservation steps applied to this SKU whose
	// reservation record has not yet recorded the outcome, keyed
	// "reserve:<order>:<token>" or "release:<order>:<token>". The marker and the stock change
	// are written in one revision-checked update, which is what makes a
	// repeated step a no-op. Markers are removed once the order's
	// reservation record is final, so the map only holds work in flight.
	Holds map[string]int `json:"holds,omitempty"`
	// Released keeps, once an order's release is final, its release
	// marker's key and when it became final, for releaseKeep: an attempt
	// that overlapped the one that committed the release must still see
	// that the release was applied (see releaseLines). Older entries are
	// dropped with the record's next write.
	Released map[string]time.Time `json:"released,omitempty"`
}

// releaseKeep is how long a final release stays recorded in Released.
// It must exceed releaseFresh plus any clock skew between instances: an
// attempt whose view of the reservation is older than releaseFresh
// releases nothing, so no attempt that could still release an order
// outlives the record of its release.
const releaseKeep = 10 * time.Minute

// dropOldReleases removes the entries of Released older than releaseKeep.
func dropOldReleases(st *stockRecord, now time.Time) {
	for k, at := range st.Released {
		if now.Sub(at) > releaseKeep {
			delete(st.Released, k)
		}
	}
}

// StockLevel is what the HTTP API and callers see of one SKU.
type StockLevel struct {
	// SKU is the stock keeping unit.
	SKU string `json:"sku"`
	// Available is the quantity that can still be reserved.
	Available int `json:"available"`
	// InFlight counts reservation steps on this SKU not yet finalised
	// (0 when the system is idle).
	InFlight int `json:"in_flight,omitempty"`
	// Revision is the KV revision of the record.
	Revision uint64 `json:"revision"`
}

// updateStock changes one SKU's record with a revision-checked update (see
// kvstate.Update; confirm selects kvstate.UpdateConfirmed). The revision
// check is what keeps the stock right, across instances too; the per-SKU lock only stops this process's own workers
// from colliding on a popular SKU, which would cost a re-read and a
// rewrite each time.
func (s *Service) updateStock(ctx context.Context, sku string, confirm bool, change func(st *stockRecord, exists bool) (bool, error)) (stockRecord, uint64, error) {
	unlock := s.skuLocks.lock(sku)
	defer unlock()
	tidy := func(st *stockRecord, exists bool) (bool, error) {
		write, err := change(st, exists)
		if write && err == nil {
			dropOldReleases(st, time.Now())
		}
		return write, err
	}
	if confirm {
		return kvstate.UpdateConfirmed(ctx, s.stock, sku, tidy)
	}
	return kvstate.Update(ctx, s.stock, sku, tidy)
}

// SetStock sets the available quantity of sku (creating it if needed),
// keeping any reservation steps in flight.
func (s *Service) SetStock(ctx context.Context, sku string, available int) (StockLevel, error) {
	if err := events.ValidateSKU(sku); err != nil {
		return StockLevel{}, err
	}
	if available < 0 || available > MaxStock {
		return StockLevel{}, fmt.Errorf("available %d: expected 0 to %d", available, MaxStock)
	}
	rec, rev, err := s.updateStock(ctx, sku, false, func(r *stockRecord, _ bool) (bool, error) {
		r.Available = available
		return true, nil
	})
	if err != nil {
		return StockLevel{}, fmt.Errorf("set stock of %s: %w", sku, err)
	}
	return level(sku, rec, rev), nil
}

// SeedStock sets the available quantity of every SKU in levels that has no
// stock record yet, leaving existing ones alone (so a restart keeps state).
func (s *Service) SeedStock(ctx context.Context, levels map[string]int) error {
	for sku, n := range levels {
		if err := events.ValidateSKU(sku); err != nil {
			return err
		}
		_, _, err := s.updateStock(ctx, sku, false, func(r *stockRecord, exists bool) (bool, error) {
			if exists {
				return false, nil
			}
			r.Available = n
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("seed stock of %s: %w", sku, err)
		}
	}
	return nil
}

// Stock returns the stock level of sku, or ErrUnknownSKU.
func (s *Service) Stock(ctx context.Context, sku string) (StockLevel, error) {
	if err := events.ValidateSKU(sku); err != nil {
		return StockLevel{}, err
	}
	rec, rev, err := kvstate.Read[stockRecord](ctx, s.stock, sku)
	if err != nil {
		return StockLevel{}, fmt.Errorf("read stock of %s: %w", sku, err)
	}
	if rev == 0 {
		return StockLevel{}, fmt.Errorf("%w %q", ErrUnknownSKU, sku)
	}
	return level(sku, rec, rev), nil
}

// StockLevels returns every SKU's stock level, sorted by SKU.
func (s *Service) StockLevels(ctx context.Context) ([]StockLevel, error) {
	skus, err := s.sortedSKUs(ctx)
	if err != nil {
		return nil, err
	}
	return s.levels(ctx, skus)
}

// The page sizes of StockPage.
const (
	// DefaultStockPage is the page size when none is asked for.
	DefaultStockPage = 100
	// MaxStockPage is the largest page StockPage returns.
	MaxStockPage = 1000
)

// StockPage returns the stock levels of at most limit SKUs (0:
// DefaultStockPage, at most MaxStockPage) that sort after the SKU after
// ("" starts at the first), sorted by SKU, and the cursor of the next page:
// the last SKU returned, or "" when no SKU follows.
func (s *Service) StockPage(ctx context.Context, after string, limit int) ([]StockLevel, string, error) {
	if limit <= 0 {
		limit = DefaultStockPage
	}
	limit = min(limit, MaxStockPage)
	skus, err := s.sortedSKUs(ctx)
	if err != nil {
		return nil, "", err
	}
	first, _ := slices.BinarySearch(skus, after)
	if first < len(skus) && skus[first] == after {
		first++
	}
	skus = skus[first:]
	next := ""
	if len(skus) > limit {
		skus = skus[:limit]
		next = skus[limit-1]
	}
	out, err := s.levels(ctx, skus)
	return out, next, err
}

// sortedSKUs lists the stock bucket's keys, sorted. JetStream lists a
// bucket's keys in write order, so every page reads them all; the page
// bounds the records read and the answer.
func (s *Service) sortedSKUs(ctx context.Context) ([]string, error) {
	skus, err := s.stock.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list stock keys: %w", err)
	}
	slices.SortFunc(skus, strings.Compare)
	return slices.Compact(skus), nil
}

// levels reads the stock levels of skus, skipping those deleted since
// they were listed.
func (s *Service) levels(ctx context.Context, skus []string) ([]StockLevel, error) {
	out := make([]StockLevel, 0, len(skus))
	for _, sku := range skus {
		l, err := s.Stock(ctx, sku)
		if errors.Is(err, ErrUnknownSKU) {
			continue // deleted since listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func level(sku string, r stockRecord, rev uint64) StockLevel {
	return StockLevel{SKU: sku, Available: r.Available, InFlight: len(r.Holds), Revision: rev}
}
