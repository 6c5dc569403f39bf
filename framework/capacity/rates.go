package capacity

// saturated reports whether work waited at every sample of the window:
// messages not yet delivered, or ack-pending at the consumer's limit. The
// instances were then busy all the time, so throughput is their capacity.
func saturated(rw []Sample) bool {
	if len(rw) < 2 {
		return false
	}
	for _, s := range rw {
		busy := s.NumPending > 0 || (s.MaxAckPending > 0 && s.NumAckPending >= s.MaxAckPending)
		if !busy {
			return false
		}
	}
	return true
}

func instancesOf(lt *LocalTiming) int {
	if lt == nil {
		return 0
	}
	return lt.Instances
}

// arrivals counts messages matching the consumer's filter that arrived
// between a and b. A matching message is either still pending (not yet
// delivered) or was delivered for the first time, so
//
//	arrivals = Δnum_pending + first deliveries.
//
// For a consumer that sees the whole stream, first deliveries are the
// advance of its read position delivered.stream_seq (every sequence in
// between matched). For a filtered consumer sequences in between belong to
// other subjects too, so first deliveries are counted as the advance of
// delivered.consumer_seq, which also counts redeliveries: exact when
// nothing is redelivered, an over-estimate by the redelivery rate when
// something is (approx is then true). The stream's last sequence is never
// used: it counts other subjects' messages.
func arrivals(a, b Sample) (n float64, firstDeliveries float64, approx bool) {
	dPending := float64(b.NumPending) - float64(a.NumPending)
	if b.Filtered || a.Filtered {
		firstDeliveries = float64(b.Delivered.Consumer) - float64(a.Delivered.Consumer)
		approx = a.NumRedelivered > 0 || b.NumRedelivered > 0
	} else {
		firstDeliveries = float64(b.Delivered.Stream) - float64(a.Delivered.Stream)
	}
	firstDeliveries = max(firstDeliveries, 0)
	return max(dPending+firstDeliveries, 0), firstDeliveries, approx
}

// rates measures λ and the processed rate between the first and last
// samples of the window. Processed = first deliveries − Δack-pending: a
// delivered message leaves ack-pending when it is acked or terminated.
func rates(w []Sample) (arrival, processed Rate) {
	if len(w) < 2 {
		note := "needs two samples"
		return Rate{Samples: len(w), Note: note}, Rate{Samples: len(w), Note: note}
	}
	a, b := w[0], w[len(w)-1]
	dt := b.At.Sub(a.At).Seconds()
	arrival = Rate{From: a.At, To: b.At, Samples: len(w)}
	processed = arrival
	if dt <= 0 {
		arrival.Note, processed.Note = "samples share a timestamp", "samples share a timestamp"
		return arrival, processed
	}
	n, first, approx := arrivals(a, b)
	arrival.PerSecond = n / dt
	done := max(first-(float64(b.NumAckPending)-float64(a.NumAckPending)), 0)
	processed.PerSecond = done / dt
	if b.Filtered {
		arrival.Note = "filtered consumer: Δpending + Δdelivered.consumer_seq"
	} else {
		arrival.Note = "Δpending + Δdelivered.stream_seq"
	}
	if approx {
		arrival.Note += "; redeliveries in the window count as arrivals (over-estimate)"
		processed.Note = "redeliveries in the window count as processed (over-estimate)"
	}
	return arrival, processed
}
