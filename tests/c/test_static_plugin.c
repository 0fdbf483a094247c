/* A sampler plugin linked into the application and registered from its entry function
 * (rill_plugin_register), as on platforms that forbid loading code at run time: the example
 * plugin plugins/examples/ban_tokens.c is compiled into this program, not loaded.
 * Usage: test_static_plugin MODEL_DIR */
#include <stdio.h>
#include <string.h>

#include "rill.h"

/* The example plugin's entry function, linked in from ban_tokens.c. */
rill_plugin_status rill_plugin_entry(uint32_t host_abi_version, const rill_host *host,
                                     const rill_plugin_table **table_out, char *error, size_t error_len);

#include "check.h"

static int collect(void *user, const char *piece, size_t len) {
    strncat((char *)user, piece, len);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    const rill_model *model = NULL;
    EXPECT_STATUS(rill_model_open(argv[1], NULL, &model), RILL_OK);
    rill_session *session = NULL;
    CHECK(rill_session_new(model, NULL, &session) == RILL_OK, "session");
    CHECK(rill_session_add_sampler(session, "ban_tokens", "{\"tokens\": [5]}") == RILL_ERR_UNKNOWN_SAMPLER,
          "not registered before");

    const rill_plugin *plugin = NULL;
    CHECK(rill_plugin_register(NULL, &plugin) == RILL_ERR_INVALID_ARGUMENT, "NULL entry");
    CHECK(rill_plugin_register(rill_plugin_entry, NULL) == RILL_ERR_INVALID_ARGUMENT, "NULL out");
    CHECK(rill_plugin_register(rill_plugin_entry, &plugin) == RILL_OK, "registered");
    const rill_plugin *twice = NULL;
    CHECK(rill_plugin_register(rill_plugin_entry, &twice) == RILL_ERR_PLUGIN_LOAD, "a second registration");
    CHECK(strstr(rill_last_error(), "ban_tokens") != NULL, "names the taken sampler");

    CHECK(rill_session_set_generation_config(session,
        "{\"max_new_tokens\": 8, \"do_sample\": false, \"repetition_penalty\": 1.0}") == RILL_OK, "config");
    char plain[4096] = "", banned[4096] = "";
    size_t n = 0;
    CHECK(rill_session_generate(session, "In the beginning", collect, plain, &n) == RILL_OK, "plain");
    /* Ban the first generated token: the statically linked sampler must change the output. */
    uint32_t ids[64];
    size_t n_prompt = 0, n_full = 0;
    char full[8192];
    snprintf(full, sizeof full, "In the beginning%s", plain);
    CHECK(rill_tokenize(model, "In the beginning", ids, 64, &n_prompt) == RILL_OK, "tokenize");
    CHECK(rill_tokenize(model, full, ids, 64, &n_full) == RILL_OK, "tokenize");
    char params[64];
    snprintf(params, sizeof params, "{\"tokens\": [%u]}", (unsigned)ids[n_prompt]);
    CHECK(rill_session_add_sampler(session, "ban_tokens", params) == RILL_OK, "sampler added");
    CHECK(rill_session_generate(session, "In the beginning", collect, banned, &n) == RILL_OK, "banned");
    CHECK(strcmp(plain, banned) != 0, "the static plugin changed the output ('%s')", banned);

    rill_session_free(session);
    rill_plugin_free(plugin);
    rill_model_free(model);
    printf("static plugin: %d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
