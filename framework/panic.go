package framework

import (
	"fmt"
	"runtime/debug"
)

// PanicError is what a handler panic becomes: the message is retried or
// dead-lettered like any error, and the worker keeps running.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the goroutine stack at the panic.
	Stack []byte
}

func newPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }

// Error implements error; the stack is kept out of the one-line message.
func (p *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", p.Value) }

// Unwrap exposes a panicked error value to errors.Is/As.
func (p *PanicError) Unwrap() error {
	if err, ok := p.Value.(error); ok {
		return err
	}
	return nil
}
