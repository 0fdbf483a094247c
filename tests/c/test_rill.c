/* End-to-end test of the C ABI: open the default model, generate, tokenize and
 * detokenize, and every error path a C caller can hit. Built with -Wall -Wextra -Werror.
 * Usage: test_rill MODEL_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        checks++;                                          \
        if (!(cond)) {                                     \
            failures++;                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, " [last error: %s]\n", rill_last_error()); \
        }                                                  \
    } while (0)

#define EXPECT_STATUS(call, want)                                              \
    do {                                                                       \
        rill_status got_ = (call);                                             \
        CHECK(got_ == (want), "%s: got %s, want %s", #call, rill_status_str(got_), \
              rill_status_str(want));                                          \
    } while (0)

typedef struct {
    char text[8192];
    size_t len;
    int calls;
    int stop_after;
} collector;

static int collect(void *user, const char *piece, size_t len) {
    collector *c = (collector *)user;
    c->calls++;
    if (strlen(piece) != len) return 1; /* pieces are NUL-terminated at len */
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

static void test_generate(const rill_model *model) {
    rill_session *session = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"max_new_tokens\": 24, \"do_sample\": false}"), RILL_OK);
    collector c = {0};
    size_t n = 0;
    EXPECT_STATUS(rill_session_generate(session, "In the beginning God created", collect, &c, &n), RILL_OK);
    CHECK(n > 0 && n <= 24, "generated %zu tokens", n);
    CHECK(c.len > 0, "callback received text");
    printf("generated %zu tokens: In the beginning God created%s\n", n, c.text);

    /* Same prompt again: greedy, so the same text. */
    collector again = {0};
    size_t n2 = 0;
    EXPECT_STATUS(rill_session_generate(session, "In the beginning God created", collect, &again, &n2), RILL_OK);
    CHECK(n2 == n && strcmp(again.text, c.text) == 0, "greedy output is repeatable");

    /* The callback stops generation at once. */
    collector stop = {0};
    stop.stop_after = 1;
    EXPECT_STATUS(rill_session_generate(session, "And the king said", collect, &stop, &n), RILL_OK);
    CHECK(stop.calls == 1 && n == 1, "stopped after one piece (calls %d, tokens %zu)", stop.calls, n);

    /* NULL callback is allowed. */
    EXPECT_STATUS(rill_session_generate(session, "And", NULL, NULL, &n), RILL_OK);

    /* Bad generation configs leave the old settings. */
    EXPECT_STATUS(rill_session_set_generation_config(session, "{not json"), RILL_ERR_GENERATION_CONFIG);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"max_new_tokens\": -3}"), RILL_ERR_GENERATION_CONFIG);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"temperature\": 0}"), RILL_ERR_GENERATION_CONFIG);
    CHECK(strstr(rill_last_error(), "temperature") != NULL, "message names the key");
    rill_session_free(session);
}

static void test_tokenize(const rill_model *model) {
    const char *text = "naïve café 🦀 and the earth";
    size_t needed = 0;
    EXPECT_STATUS(rill_tokenize(model, text, NULL, 0, &needed), RILL_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 1, "needed %zu ids", needed);
    uint32_t ids[256];
    size_t n = 0;
    EXPECT_STATUS(rill_tokenize(model, text, ids, 256, &n), RILL_OK);
    CHECK(n == needed && ids[0] == 0, "BOS first, %zu ids", n);

    size_t size = 0;
    EXPECT_STATUS(rill_detokenize(model, ids, n, NULL, 0, &size), RILL_ERR_BUFFER_TOO_SMALL);
    CHECK(size == strlen(text) + 1, "needed %zu bytes", size);
    char buf[256];
    EXPECT_STATUS(rill_detokenize(model, ids, n, buf, sizeof buf, &size), RILL_OK);
    CHECK(strcmp(buf, text) == 0, "round trip: '%s'", buf);

    uint32_t bad[2] = {5, 4000000000u};
    EXPECT_STATUS(rill_detokenize(model, bad, 2, buf, sizeof buf, &size), RILL_ERR_TOKEN_OUT_OF_RANGE);
    EXPECT_STATUS(rill_detokenize(model, NULL, 0, buf, sizeof buf, &size), RILL_OK);
    CHECK(buf[0] == 0, "empty text");
}

static void test_errors(const rill_model *model) {
    const rill_model *none = NULL;
    rill_session *session = NULL;
    size_t n = 0;
    uint32_t ids[8];
    char buf[64];

    /* NULL for every pointer argument. */
    EXPECT_STATUS(rill_model_open(NULL, NULL, &none), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_model_open("x", NULL, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_new(NULL, NULL, &session), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_new(model, NULL, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_set_generation_config(NULL, "{}"), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_generate(NULL, "x", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_tokenize(NULL, "x", ids, 8, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_tokenize(model, NULL, ids, 8, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_tokenize(model, "x", ids, 8, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_tokenize(model, "the earth", NULL, 8, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_detokenize(NULL, ids, 1, buf, 64, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_detokenize(model, NULL, 3, buf, 64, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_detokenize(model, ids, 0, buf, 64, NULL), RILL_ERR_INVALID_ARGUMENT);
    rill_model_free(NULL);
    rill_session_free(NULL);
    CHECK(strlen(rill_last_error()) > 0, "a message is set");

    /* Missing folder: status, message naming it, out-pointer untouched. */
    none = (const rill_model *)0x1;
    EXPECT_STATUS(rill_model_open("/nonexistent/model", NULL, &none), RILL_ERR_NOT_FOUND);
    CHECK(strstr(rill_last_error(), "/nonexistent/model") != NULL, "message names the folder");
    CHECK(none == (const rill_model *)0x1, "out-pointer untouched on failure");

    /* Options with a bad struct_size. */
    rill_model_options mo = rill_model_options_default();
    mo.struct_size = 3;
    EXPECT_STATUS(rill_model_open("/nonexistent/model", &mo, &none), RILL_ERR_INVALID_ARGUMENT);

    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    /* Invalid UTF-8 prompt and NULL prompt / out-pointer. */
    EXPECT_STATUS(rill_session_generate(session, "abc\xff\xfe", NULL, NULL, &n), RILL_ERR_INVALID_UTF8);
    EXPECT_STATUS(rill_session_generate(session, NULL, NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_generate(session, "x", NULL, NULL, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_set_generation_config(session, NULL), RILL_ERR_INVALID_ARGUMENT);
    rill_session_free(session);

    /* A prompt longer than the context, then the same session still works. */
    rill_session_options so = rill_session_options_default();
    so.context_len = 16;
    EXPECT_STATUS(rill_session_new(model, &so, &session), RILL_OK);
    EXPECT_STATUS(rill_session_generate(session,
        "And the king said unto him, go and do thou likewise, for the day is at hand and the night is far spent",
        NULL, NULL, &n), RILL_ERR_PROMPT_TOO_LONG);
    CHECK(strstr(rill_last_error(), "context of 16 tokens") != NULL, "message gives the context");
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"max_new_tokens\": 4}"), RILL_OK);
    EXPECT_STATUS(rill_session_generate(session, "In the", NULL, NULL, &n), RILL_OK);
    CHECK(n > 0, "session usable after an error");
    rill_session_free(session);

    so = rill_session_options_default();
    so.context_len = 1u << 30;
    EXPECT_STATUS(rill_session_new(model, &so, &session), RILL_ERR_INVALID_ARGUMENT);
}

static void test_beams(const rill_model *model) {
    rill_session *session = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    EXPECT_STATUS(rill_session_set_generation_config(session,
        "{\"max_new_tokens\": 12, \"do_sample\": false, \"num_beams\": 4, \"num_return_sequences\": 3}"), RILL_OK);
    collector best = {0};
    size_t n = 0, count = 0;
    EXPECT_STATUS(rill_session_generate(session, "In the beginning", collect, &best, &n), RILL_OK);
    EXPECT_STATUS(rill_session_beam_count(session, &count), RILL_OK);
    CHECK(count == 3, "three hypotheses, got %zu", count);
    float prev = 1.0f;
    for (size_t i = 0; i < count; i++) {
        char text[1024];
        size_t needed = 0;
        float score = 0.0f;
        EXPECT_STATUS(rill_session_beam_result(session, i, text, sizeof text, &needed, &score), RILL_OK);
        CHECK(score <= prev && score < 0.0f, "scores sorted and negative (%f)", (double)score);
        prev = score;
        if (i == 0) CHECK(strcmp(text, best.text) == 0, "best hypothesis is what was streamed");
    }
    size_t needed = 0;
    EXPECT_STATUS(rill_session_beam_result(session, 0, NULL, 0, &needed, NULL), RILL_ERR_BUFFER_TOO_SMALL);
    EXPECT_STATUS(rill_session_beam_result(session, 3, NULL, 0, &needed, NULL), RILL_ERR_INVALID_ARGUMENT);
    /* Diverse beam search: two groups of two, four different hypotheses. */
    EXPECT_STATUS(rill_session_set_generation_config(session,
        "{\"num_beams\": 4, \"num_beam_groups\": 2, \"diversity_penalty\": 1.0, \"num_return_sequences\": 4, \"do_sample\": false}"), RILL_OK);
    EXPECT_STATUS(rill_session_generate(session, "In the beginning", NULL, NULL, &n), RILL_OK);
    EXPECT_STATUS(rill_session_beam_count(session, &count), RILL_OK);
    CHECK(count == 4, "four diverse hypotheses, got %zu", count);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"num_beams\": 4, \"num_beam_groups\": 3}"), RILL_ERR_GENERATION_CONFIG);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"num_beams\": 2, \"num_return_sequences\": 5}"), RILL_ERR_GENERATION_CONFIG);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"num_beams\": 2, \"early_stopping\": \"sometimes\"}"), RILL_ERR_GENERATION_CONFIG);
    rill_session_free(session);
}

static void test_plugins(const rill_model *model, const char *plugin_path) {
    const rill_plugin *plugin = NULL;
    EXPECT_STATUS(rill_plugin_load("/nonexistent/libx.so", &plugin), RILL_ERR_PLUGIN_LOAD);
    CHECK(strstr(rill_last_error(), "/nonexistent/libx.so") != NULL, "message names the file");
    EXPECT_STATUS(rill_plugin_load(NULL, &plugin), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_plugin_load(plugin_path, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_plugin_load(plugin_path, &plugin), RILL_OK);

    rill_session *session = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    EXPECT_STATUS(rill_session_set_generation_config(session,
        "{\"max_new_tokens\": 8, \"do_sample\": false, \"repetition_penalty\": 1.0}"), RILL_OK);
    collector plain = {0};
    size_t n = 0;
    EXPECT_STATUS(rill_session_generate(session, "In the beginning", collect, &plain, &n), RILL_OK);

    /* Ban the first token of the greedy continuation: the output must change. */
    uint32_t ids[64];
    size_t n_prompt = 0, n_full = 0;
    EXPECT_STATUS(rill_tokenize(model, "In the beginning", ids, 64, &n_prompt), RILL_OK);
    char full[8300];
    snprintf(full, sizeof full, "In the beginning%s", plain.text);
    EXPECT_STATUS(rill_tokenize(model, full, ids, 64, &n_full), RILL_OK);
    char params[64];
    snprintf(params, sizeof params, "{\"tokens\": [%u]}", (unsigned)ids[n_prompt]);
    EXPECT_STATUS(rill_session_add_sampler(session, "ban_tokens", params), RILL_OK);
    collector banned = {0};
    EXPECT_STATUS(rill_session_generate(session, "In the beginning", collect, &banned, &n), RILL_OK);
    CHECK(strcmp(banned.text, plain.text) != 0, "the plugin changed the output ('%s')", banned.text);

    EXPECT_STATUS(rill_session_add_sampler(session, "no_such_sampler", NULL), RILL_ERR_UNKNOWN_SAMPLER);
    EXPECT_STATUS(rill_session_add_sampler(session, "ban_tokens", "{nope"), RILL_ERR_GENERATION_CONFIG);
    EXPECT_STATUS(rill_session_add_sampler(session, "ban_tokens", "{}"), RILL_ERR_PLUGIN);
    EXPECT_STATUS(rill_session_add_sampler(NULL, "ban_tokens", "{}"), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_add_sampler(session, NULL, "{}"), RILL_ERR_INVALID_ARGUMENT);
    /* Failed additions left the chain as it was. */
    collector again = {0};
    EXPECT_STATUS(rill_session_generate(session, "In the beginning", collect, &again, &n), RILL_OK);
    CHECK(strcmp(again.text, banned.text) == 0, "chain unchanged by failed additions");
    rill_session_free(session);
    rill_plugin_free(plugin);
    rill_plugin_free(NULL);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PLUGIN_PATH\n", argv[0]);
        return 2;
    }
    CHECK(strcmp(rill_status_str(RILL_ERR_WEIGHTS), "RILL_ERR_WEIGHTS") == 0, "status names");
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", RILL_VERSION_MAJOR, RILL_VERSION_MINOR, RILL_VERSION_PATCH);
    CHECK(strcmp(rill_version(), version) == 0, "rill_version() %s matches the header %s", rill_version(), version);

    const rill_model *model = NULL;
    rill_model_options options = rill_model_options_default();
    options.intra_threads = 2;
    EXPECT_STATUS(rill_model_open(argv[1], &options, &model), RILL_OK);
    if (model == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], rill_last_error());
        return 1;
    }
    test_generate(model);
    test_tokenize(model);
    test_errors(model);
    test_plugins(model, argv[2]);
    test_beams(model);
    /* A session outlives the caller's model reference. */
    rill_session *session = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    rill_model_free(model);
    size_t n = 0;
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"max_new_tokens\": 3}"), RILL_OK);
    EXPECT_STATUS(rill_session_generate(session, "The", NULL, NULL, &n), RILL_OK);
    rill_session_free(session);

    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
