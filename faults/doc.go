// Package faults holds jetkit's fault tests: a JetStream cluster (and a
// single file-backed server) loses a node, a stream or KV bucket leader or
// a consumer instance while publishers and a consumer group run. Nodes are
// lost with testenv's Cluster.Crash (no leadership handed over, as with
// kill -9), and every test ends
// with the reconciliation — every acknowledged publish was processed, the
// stream stored each event id once, and no event took effect twice.
//
// The package has no API; run it with
//
//	go test -race -count=1 ./faults/
package faults
