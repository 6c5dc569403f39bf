package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/services/order"
	"github.com/jetkit/jetkit/testenv"
)

// TestPlaceOrderSurvivesOrdersStoreLeaderLoss crashes the node leading the
// orders bucket's stream while clients POST /orders: every order write
// rides out the election (the same bounded retry as publishing), so no
// request answers 503, while /readyz reports the store not ready until its
// new leader is elected.
func TestPlaceOrderSurvivesOrdersStoreLeaderLoss(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	w := newWorld(t)
	ctx := context.Background()
	cfg := faultConfig(cl.Config("order"))
	svc, err := framework.New(ctx, cfg, framework.WithLogger(w.logger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	orders, err := order.New(ctx, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(orders.Handler())
	t.Cleanup(hs.Close)
	const store = "KV_" + order.Bucket
	leader, err := cl.WaitStreamLeader(settleTimeout, store)
	if err != nil {
		t.Fatal(err)
	}
	// The crash must take the store's leader, not JetStream's meta leader
	// (JetStream answering at all is another readiness check).
	for leader == cl.MetaLeader() {
		if _, err := svc.Conn().NC.Request("$JS.API.STREAM.LEADER.STEPDOWN."+store, nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, settleTimeout, "the store has a new leader", func() bool {
			l := cl.StreamLeader(store)
			return l >= 0 && l != leader
		})
		if leader, err = cl.WaitStreamLeader(settleTimeout, store); err != nil {
			t.Fatal(err)
		}
	}
	readyz := func() (int, string) {
		resp, err := http.Get(hs.URL + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}

	const clients, perClient = 3, 40
	var (
		placed    atomic.Int64
		mu        sync.Mutex
		failed    []string
		ids       []string
		wg        sync.WaitGroup
		body, _   = json.Marshal(order.PlaceRequest{CustomerID: "c-1", Items: nil})
		reqBody   = strings.Replace(string(body), "null", `[{"sku":"apple","qty":1}]`, 1)
		hc        = &http.Client{Timeout: 60 * time.Second}
		placeOnce = func() {
			resp, err := hc.Post(hs.URL+"/orders", "application/json", bytes.NewReader([]byte(reqBody)))
			if err != nil {
				mu.Lock()
				failed = append(failed, err.Error())
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			var pr order.PlaceResponse
			_ = json.NewDecoder(resp.Body).Decode(&pr)
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode != http.StatusAccepted {
				failed = append(failed, fmt.Sprintf("status %d", resp.StatusCode))
				return
			}
			ids = append(ids, pr.ID)
			placed.Add(1)
		}
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				placeOnce()
			}
		}()
	}
	testenv.Eventually(t, settleTimeout, "orders are being placed", func() bool { return placed.Load() >= clients*perClient/4 })
	var storeNotReady atomic.Value
	probing, probed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probed)
		for {
			select {
			case <-probing:
				return
			default:
			}
			if code, body := readyz(); code == http.StatusServiceUnavailable && strings.Contains(body, "orders store") {
				storeNotReady.CompareAndSwap(nil, body)
			}
		}
	}()
	crashed := time.Now()
	cl.Crash(leader)
	wg.Wait()
	t.Logf("placed %d orders, %d failed; the last finished %s after the crash", placed.Load(), len(failed), time.Since(crashed).Round(time.Millisecond))
	if len(failed) > 0 {
		t.Errorf("%d of %d POST /orders failed across the store leader's crash, e.g. %s", len(failed), clients*perClient, failed[0])
	}
	// Reconcile: every accepted order is stored.
	for _, id := range ids {
		if _, err := orders.Get(ctx, id); err != nil {
			t.Fatalf("accepted order %s: %v", id, err)
		}
	}
	if _, err := cl.WaitStreamLeader(settleTimeout, store); err != nil {
		t.Fatal(err)
	}
	close(probing)
	<-probed
	if storeNotReady.Load() == nil {
		t.Errorf("/readyz never reported the orders store while it had no leader")
	} else {
		t.Logf("while the store had no leader: %s", storeNotReady.Load())
	}
	var last string
	if err := testenv.WaitFor(ctx, settleTimeout, func() bool {
		code, body := readyz()
		last = body
		return code == http.StatusOK
	}); err != nil {
		t.Fatalf("/readyz once the store has a leader again: %s", last)
	}
}
