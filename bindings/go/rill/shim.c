#include "shim.h"

#include "_cgo_export.h"

static int rill_go_piece(void *user, const char *piece, size_t len) {
    return goRillPiece((uintptr_t)user, (char *)piece, len);
}

enum rill_status rill_go_run(int kind, rill_session *session, const char *text, uintptr_t handle,
                             size_t *n_tokens_out) {
    rill_token_callback callback = handle ? rill_go_piece : NULL;
    void *user = (void *)handle;
    switch (kind) {
    case RILL_GO_APPEND:
        return rill_session_append(session, text, callback, user, n_tokens_out);
    case RILL_GO_CHAT:
        return rill_session_chat(session, text, callback, user, n_tokens_out);
    default:
        return rill_session_generate(session, text, callback, user, n_tokens_out);
    }
}
