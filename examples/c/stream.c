/* A minimal streaming generator over rill's C ABI (greedy).
 * Usage: stream MODEL_DIR PROMPT [MAX_NEW_TOKENS] */
#include <stdio.h>
#include <stdlib.h>

#include "rill.h"

static int print_piece(void *user, const char *piece, size_t len) {
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop generation */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT [MAX_NEW_TOKENS]\n", argv[0]);
        return 2;
    }
    char config[96];
    snprintf(config, sizeof config, "{\"max_new_tokens\": %d, \"do_sample\": false}", argc > 3 ? atoi(argv[3]) : 32);

    const rill_model *model = NULL;
    rill_session *session = NULL;
    size_t n_tokens = 0;
    int ok = rill_model_open(argv[1], NULL, &model) == RILL_OK &&
             rill_session_new(model, NULL, &session) == RILL_OK &&
             rill_session_set_generation_config(session, config) == RILL_OK &&
             fputs(argv[2], stdout) >= 0 &&
             rill_session_generate(session, argv[2], print_piece, NULL, &n_tokens) == RILL_OK;
    if (ok) {
        putchar('\n');
    } else {
        fprintf(stderr, "rill: %s\n", rill_last_error());
    }
    rill_session_free(session); /* NULL is a no-op */
    rill_model_free(model);
    return ok ? 0 : 1;
}
