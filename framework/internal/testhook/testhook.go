// Package testhook gives package frameworktest what only package
// framework can build: a Message around a delivery that no server made,
// and a connection whose publishes are recorded instead of sent. Package
// framework sets the functions when it is initialised.
package testhook

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Delivery is the JetStream metadata of a made-up delivery.
type Delivery struct {
	Stream, Consumer         string
	StreamSeq, ConsumerSeq   uint64
	NumDelivered, NumPending uint64
	Timestamp                time.Time
	MaxDeliver               int
	// InProgress is called by Message.InProgress.
	InProgress func() error
}

// Record stores one publish and returns what the server would have said.
type Record func(msg *nats.Msg) (stream string, seq uint64, err error)

var (
	// NewMessage returns a *framework.Message for msg as a subscription
	// would hand it to its handler, or the error it would dead-letter it
	// with (the message is returned too).
	NewMessage func(msg *nats.Msg, d Delivery) (any, error)
	// Recording returns a *framework.Conn whose publishes go to record,
	// with source as the producing service's name.
	Recording func(source string, record Record) any
)
