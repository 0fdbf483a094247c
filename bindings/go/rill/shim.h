/* C side of the Go binding: one entry point for the three generating calls, passing a
 * cgo.Handle as the callback's user_data (a uintptr_t, never a Go pointer). */
#ifndef RILL_GO_SHIM_H
#define RILL_GO_SHIM_H

#include <stdint.h>
#include <stdlib.h>

#include "rill.h"

enum { RILL_GO_GENERATE = 0, RILL_GO_APPEND = 1, RILL_GO_CHAT = 2 };

/* rill_session_generate / _append / _chat (by `kind`) with pieces going to the Go
 * function goRillPiece with `handle`; handle 0 passes no callback. */
enum rill_status rill_go_run(int kind, rill_session *session, const char *text, uintptr_t handle,
                             size_t *n_tokens_out);

#endif
