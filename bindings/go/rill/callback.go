package rill

// #include <stdint.h>
// #include <stddef.h>
import "C"

import (
	"errors"
	"runtime/cgo"
	"strings"
	"sync/atomic"
)

// Stop, returned by a piece callback, ends the generation without an error
// (StopCallback).
var Stop = errors.New("rill: stop generation")

// pieceSink is what one generating call hands to C through a cgo.Handle.
type pieceSink struct {
	fn       func(piece string) error
	text     strings.Builder
	err      error // the callback's error (ends generation)
	panicked bool
	panicVal any
}

// liveHandles counts cgo.Handles not yet deleted; tests check that it returns to zero.
var liveHandles atomic.Int64

func newHandle(sink *pieceSink) cgo.Handle {
	liveHandles.Add(1)
	return cgo.NewHandle(sink)
}

func deleteHandle(h cgo.Handle) {
	h.Delete()
	liveHandles.Add(-1)
}

// goRillPiece receives each piece from rill. Nothing unwinds into C: a panic in the
// callback is recovered here, ends generation, and is re-raised by the Go caller once
// rill has returned.
//
//export goRillPiece
func goRillPiece(handle C.uintptr_t, piece *C.char, n C.size_t) (stop C.int) {
	sink := cgo.Handle(handle).Value().(*pieceSink)
	defer func() {
		if r := recover(); r != nil {
			sink.panicked = true
			sink.panicVal = r
			stop = 1
		}
	}()
	text := C.GoStringN(piece, C.int(n))
	sink.text.WriteString(text)
	if sink.fn != nil {
		if err := sink.fn(text); err != nil {
			sink.err = err
			return 1
		}
	}
	return 0
}

// finish re-raises a panic of the callback with its own value, now that no C frame is
// below.
func (s *pieceSink) finish() {
	if s.panicked {
		panic(s.panicVal)
	}
}
