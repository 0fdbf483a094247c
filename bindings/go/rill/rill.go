// Package rill is the Go binding of rill, an embeddable inference runtime for language
// models (ONNX Runtime underneath, a C ABI on top; see include/rill.h).
//
//	model, err := rill.Open("models/rill-tiny", nil)
//	if err != nil { ... }
//	defer model.Close()
//	session, err := model.NewSession(nil)
//	if err != nil { ... }
//	defer session.Close()
//	session.SetConfigJSON(`{"max_new_tokens": 32}`)
//	_, err = session.Generate(ctx, "In the beginning", func(piece string) error {
//		fmt.Print(piece)
//		return nil
//	})
//
// Every object has an explicit, idempotent Close; a finalizer frees a forgotten one only
// as a safety net. A Model may be used from any goroutine; a Session serialises its calls
// (one generation at a time), and Session.Cancel and the context passed to Generate stop
// a generation from elsewhere. Errors are *Error values carrying the C status; the
// statuses are sentinel errors for errors.Is (errors.Is(err, rill.ErrNotFound)).
package rill

// #include "shim.h"
import "C"

import (
	"runtime"
	"strings"
	"sync/atomic"
)

// Status is a rill_status other than RILL_OK. It is an error, so that the constants
// below work as sentinels with errors.Is.
type Status int

// The statuses of rill.h, with the same values.
const (
	ErrInvalidArgument  Status = C.RILL_ERR_INVALID_ARGUMENT
	ErrInvalidUTF8      Status = C.RILL_ERR_INVALID_UTF8
	ErrBufferTooSmall   Status = C.RILL_ERR_BUFFER_TOO_SMALL
	ErrPanic            Status = C.RILL_ERR_PANIC
	ErrNotFound         Status = C.RILL_ERR_NOT_FOUND
	ErrIO               Status = C.RILL_ERR_IO
	ErrConfig           Status = C.RILL_ERR_CONFIG
	ErrWeights          Status = C.RILL_ERR_WEIGHTS
	ErrGraphMismatch    Status = C.RILL_ERR_GRAPH_MISMATCH
	ErrTokenizer        Status = C.RILL_ERR_TOKENIZER
	ErrORTNotFound      Status = C.RILL_ERR_ORT_NOT_FOUND
	ErrORT              Status = C.RILL_ERR_ORT
	ErrGenerationConfig Status = C.RILL_ERR_GENERATION_CONFIG
	ErrProvider         Status = C.RILL_ERR_PROVIDER
	ErrOutOfMemory      Status = C.RILL_ERR_OUT_OF_MEMORY
	ErrPromptTooLong    Status = C.RILL_ERR_PROMPT_TOO_LONG
	ErrEmptyPrompt      Status = C.RILL_ERR_EMPTY_PROMPT
	ErrTokenOutOfRange  Status = C.RILL_ERR_TOKEN_OUT_OF_RANGE
	ErrChatTemplate     Status = C.RILL_ERR_CHAT_TEMPLATE
	ErrState            Status = C.RILL_ERR_STATE
	ErrPluginLoad       Status = C.RILL_ERR_PLUGIN_LOAD
	ErrPlugin           Status = C.RILL_ERR_PLUGIN
	ErrUnknownSampler   Status = C.RILL_ERR_UNKNOWN_SAMPLER
)

// String is the status's name in rill.h, e.g. "RILL_ERR_NOT_FOUND".
func (s Status) String() string { return C.GoString(C.rill_status_str(C.enum_rill_status(s))) }

// Error makes a Status usable as a sentinel error.
func (s Status) Error() string { return s.String() }

// Error is a failed rill call: its status and the message rill gave for it.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return e.Status.String() + ": " + e.Message }

// Unwrap gives the Status, so that errors.Is(err, rill.ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Status }

// call runs one C call and, on failure, reads rill_last_error on the same OS thread: the
// message is thread-local in C, and a goroutine may otherwise move to another thread
// between two cgo calls.
func call(f func() C.enum_rill_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if status := f(); status != C.RILL_OK {
		return &Error{Status: Status(status), Message: C.GoString(C.rill_last_error())}
	}
	return nil
}

// checkNoNUL checks that s has no NUL byte (C would see the text cut short there); the
// caller makes the C copy.
func checkNoNUL(s, what string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return &Error{Status: ErrInvalidArgument, Message: what + " contains a NUL byte"}
	}
	return nil
}

// Version is the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.rill_version()) }

// liveObjects counts C objects (models, sessions, plugins) not yet freed; tests check
// that Close and the finalizers bring it back.
var liveObjects atomic.Int64
