package framework

// IsTransient reports whether err, from a publish or a JetStream API call
// (KV reads and writes included), left the outcome unknown for a reason
// that passes: a lost or late answer, no stream leader (an election), no
// responders, a connection being re-established, a cluster temporarily
// unavailable. Publish retries exactly these; an operation that is safe to
// repeat may be retried on them too. A rejected request, a closed
// connection and the caller's own cancellation are not transient.
func IsTransient(err error) bool { return err != nil && transientError(err) }
