package framework

import (
	"errors"
	"fmt"

	"github.com/jetkit/jetkit/internal/wire"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every configuration error.
	ErrInvalidConfig = errors.New("invalid jetkit config")
	// ErrInvalidSubject is wrapped by every subject or token validation error.
	ErrInvalidSubject = wire.ErrInvalidSubject
	// ErrIncompatibleChange is returned when a declared stream or consumer
	// differs from the one on the server in a field JetStream cannot update,
	// or in one the caller may not change because another service owns
	// the stream (see EnsureStream).
	ErrIncompatibleChange = errors.New("incompatible change to existing JetStream asset")
	// ErrPermanent marks a handler error that must not be retried: the
	// message is dead-lettered at once. Wrap errors with Permanent.
	ErrPermanent = errors.New("permanent failure")
	// ErrDecode is wrapped when a payload or envelope cannot be decoded.
	// Decode failures are permanent: retrying cannot fix the bytes.
	ErrDecode = errors.New("cannot decode message")
	// ErrMessageTooLarge is returned when an encoded event exceeds the
	// server's max_payload (or the configured limit); nothing is published.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrInvalidHeader is returned when a publish carries a header a jetkit
	// subscriber would refuse: a name that spells an envelope header, a
	// value with CR or LF, or more than wire.MaxHeaders values or
	// wire.MaxHeaderBytes; nothing is published.
	ErrInvalidHeader = errors.New("invalid header")
	// ErrClosed is returned when publishing or subscribing on a service that
	// is shutting down or has shut down.
	ErrClosed = errors.New("jetkit service is closed")
	// ErrMaxHandlerTime is wrapped by the context cause and the error of a
	// delivery whose handler ran past MaxHandlerTime.
	ErrMaxHandlerTime = errors.New("handler ran past MaxHandlerTime")
	// ErrPermissionDenied is wrapped (by *PermissionError) when the NATS
	// server refused a publish or subscribe for lack of permission.
	ErrPermissionDenied = errors.New("NATS permission denied")
)

// permanentError wraps an error so that errors.Is(err, ErrPermanent) holds
// while errors.Is/As still reach the wrapped error.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }

func (p permanentError) Unwrap() []error { return []error{ErrPermanent, p.err} }

// Permanent marks err as not retryable: the framework dead-letters the
// message with err as the reason instead of redelivering it.
//
//	if order.Qty <= 0 {
//		return framework.Permanent(fmt.Errorf("order %s: qty must be > 0", order.ID))
//	}
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrPermanent) {
		return err
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err (or anything it wraps) is permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// decodeError builds a permanent decode error naming what failed.
func decodeError(format string, args ...any) error {
	return Permanent(fmt.Errorf("%w: %s", ErrDecode, fmt.Sprintf(format, args...)))
}
