package framework

import "time"

// Concurrency is how many handlers the subscription runs at once.
func (s *Subscription) Concurrency() int { return s.opts.concurrency }

// AvgHandlerTime is the moving average (EWMA, weight 1/16) of the time a
// handler takes, middleware included; 0 before the first message. It
// starts from 0, so it reads low until some dozens of messages were
// handled: check Stats().Received before trusting it. The capacity package
// derives an instance's service rate from it: Concurrency / AvgHandlerTime.
func (s *Subscription) AvgHandlerTime() time.Duration { return time.Duration(s.avgHandler.Load()) }

// Prefetch is how many messages the client pulls ahead of the handlers
// now: fixed by the Prefetch option, or adapted to the measured handler
// time and payload size (see Prefetch).
func (s *Subscription) Prefetch() int { return int(s.prefetch.Load()) }
