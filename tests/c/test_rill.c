/* End-to-end test of the C ABI: open the default model, generate, tokenize and
 * detokenize, and every error path a C caller can hit. Built with -Wall -Wextra -Werror.
 * Usage: test_rill MODEL_DIR */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

#include "check.h"

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

    /* Log-probabilities of the generated tokens, when asked for. */
    size_t count = 0;
    EXPECT_STATUS(rill_session_last_logprobs(session, NULL, 0, &count), RILL_OK);
    CHECK(count == 0, "no logprobs unless asked (%zu)", count);
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"max_new_tokens\": 6, \"do_sample\": false,"
                                                              " \"eos_token_id\": [], \"output_logprobs\": true}"), RILL_OK);
    EXPECT_STATUS(rill_session_generate(session, "In the beginning", NULL, NULL, &n), RILL_OK);
    EXPECT_STATUS(rill_session_last_logprobs(session, NULL, 0, &count), RILL_ERR_BUFFER_TOO_SMALL);
    float logprobs[6] = {0};
    EXPECT_STATUS(rill_session_last_logprobs(session, logprobs, 6, &count), RILL_OK);
    CHECK(count == n && n == 6, "one logprob per token (%zu of %zu)", count, n);
    for (size_t i = 0; i < count; i++) CHECK(logprobs[i] <= 0.0f && logprobs[i] > -30.0f, "logprob %f", logprobs[i]);
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

static rill_stop_reason last_stop(rill_session *session, rill_generation_info *info);

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

    /* The standard `regex` sampler from a JSON config: the text is a full match, then EOS. */
    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    EXPECT_STATUS(rill_session_set_generation_config(session,
        "{\"max_new_tokens\": 16, \"do_sample\": false, \"samplers\": [{\"name\": \"regex\", "
        "\"params\": {\"pattern\": \" [0-9]{4}\\\\.\"}, \"before_warpers\": true}]}"), RILL_OK);
    collector year = {0};
    EXPECT_STATUS(rill_session_generate(session, "The year of the flood was", collect, &year, &n), RILL_OK);
    rill_generation_info info;
    CHECK(last_stop(session, &info) == RILL_STOP_EOS, "ended at the full match");
    int shaped = year.len == 6 && year.text[0] == ' ' && year.text[5] == '.';
    for (size_t i = 1; shaped && i < 5; i++) shaped = year.text[i] >= '0' && year.text[i] <= '9';
    CHECK(shaped, "' dddd.' as the pattern says: '%s'", year.text);
    rill_session_free(session);
}

/* Cancels a session from another thread once the generating thread has seen a piece. The
 * generating thread's callback waits until the cancel has been made, so the cancel always
 * lands inside the generation, however the threads are scheduled (valgrind runs one
 * thread at a time). */
typedef struct {
    rill_session *session;
    atomic_int started;
    atomic_int cancelled;
} canceller;

static int signal_start(void *user, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    canceller *c = (canceller *)user;
    atomic_store(&c->started, 1);
    while (!atomic_load(&c->cancelled)) {
    }
    return 0;
}

static void *cancel_when_started(void *user) {
    canceller *c = (canceller *)user;
    while (!atomic_load(&c->started)) {
    }
    rill_session_cancel(c->session);
    atomic_store(&c->cancelled, 1);
    return NULL;
}

static rill_stop_reason last_stop(rill_session *session, rill_generation_info *info) {
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    EXPECT_STATUS(rill_session_last_generation(session, info), RILL_OK);
    return info->stop_reason;
}

static void test_conversation(const rill_model *model) {
    const char *greedy40 = "{\"max_new_tokens\": 40, \"do_sample\": false, \"eos_token_id\": []}";
    rill_session *session = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &session), RILL_OK);
    rill_generation_info info;
    CHECK(last_stop(session, &info) == RILL_STOP_NONE, "no generation yet");
    EXPECT_STATUS(rill_session_set_generation_config(session, greedy40), RILL_OK);
    collector full = {0};
    size_t n = 0;
    EXPECT_STATUS(rill_session_generate(session, "In the beginning God created", collect, &full, &n), RILL_OK);
    CHECK(last_stop(session, &info) == RILL_STOP_MAX_TOKENS && info.generated_tokens == 40, "max tokens");

    /* A stop string from the middle of the text: output ends right before it. */
    char stop[8] = {0};
    memcpy(stop, full.text + full.len / 2, 4);
    char config[256];
    snprintf(config, sizeof config, "{\"max_new_tokens\": 40, \"do_sample\": false, \"eos_token_id\": [], \"stop_strings\": [\"%s\"]}", stop);
    EXPECT_STATUS(rill_session_set_generation_config(session, config), RILL_OK);
    collector cut = {0};
    EXPECT_STATUS(rill_session_generate(session, "In the beginning God created", collect, &cut, &n), RILL_OK);
    CHECK(last_stop(session, &info) == RILL_STOP_STOP_STRING, "stopped by the stop string");
    CHECK(info.reused_tokens + 1 == info.prompt_tokens && info.evaluated_tokens == 1, "prompt reused (%zu of %zu)", info.reused_tokens, info.prompt_tokens);
    CHECK(strstr(full.text, stop) == full.text + cut.len && strncmp(full.text, cut.text, cut.len) == 0,
          "text ends before '%s': '%s'", stop, cut.text);

    /* Rollback and regenerate: same text as the first time. */
    EXPECT_STATUS(rill_session_set_generation_config(session, greedy40), RILL_OK);
    size_t count = 0;
    EXPECT_STATUS(rill_session_token_count(session, &count), RILL_OK);
    EXPECT_STATUS(rill_session_truncate(session, count + 1), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_truncate(session, 3), RILL_OK);
    EXPECT_STATUS(rill_session_token_count(session, &count), RILL_OK);
    CHECK(count == 3, "truncated to 3, holds %zu", count);
    collector regen = {0};
    EXPECT_STATUS(rill_session_generate(session, "In the beginning God created", collect, &regen, &n), RILL_OK);
    CHECK(strcmp(regen.text, full.text) == 0, "regenerated text equals the first");
    CHECK(last_stop(session, &info) == RILL_STOP_MAX_TOKENS && info.reused_tokens == 3, "reused %zu", info.reused_tokens);

    /* A new turn evaluates only its own tokens (and the reply's pending last token). */
    uint32_t ids[16];
    size_t n_ids = 0;
    EXPECT_STATUS(rill_tokenize(model, " And", ids, 16, &n_ids), RILL_OK); /* BOS + tokens */
    EXPECT_STATUS(rill_session_token_count(session, &count), RILL_OK);
    EXPECT_STATUS(rill_session_append(session, " And", NULL, NULL, &n), RILL_OK);
    last_stop(session, &info);
    CHECK(info.reused_tokens == count - 1 && info.evaluated_tokens == n_ids, "append reused %zu, evaluated %zu", info.reused_tokens, info.evaluated_tokens);

    /* Saved state: continue in a new session exactly as without stopping. */
    const char *greedy20 = "{\"max_new_tokens\": 20, \"do_sample\": false, \"eos_token_id\": []}";
    EXPECT_STATUS(rill_session_set_generation_config(session, greedy20), RILL_OK);
    collector part1 = {0};
    EXPECT_STATUS(rill_session_generate(session, "And the king said unto", collect, &part1, &n), RILL_OK);
    size_t size = 0;
    EXPECT_STATUS(rill_session_save(session, NULL, 0, &size), RILL_ERR_BUFFER_TOO_SMALL);
    unsigned char *blob = malloc(size);
    EXPECT_STATUS(rill_session_save(session, blob, size, &size), RILL_OK);
    rill_session *restored = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &restored), RILL_OK);
    blob[size / 2] ^= 1;
    EXPECT_STATUS(rill_session_load(restored, blob, size), RILL_ERR_STATE);
    CHECK(strstr(rill_last_error(), "checksum") != NULL, "corruption named");
    blob[size / 2] ^= 1;
    EXPECT_STATUS(rill_session_load(restored, blob, size - 9), RILL_ERR_STATE);
    EXPECT_STATUS(rill_session_load(restored, blob, size), RILL_OK);
    collector part2 = {0};
    EXPECT_STATUS(rill_session_append(restored, "", collect, &part2, &n), RILL_OK);
    rill_session *whole = NULL;
    EXPECT_STATUS(rill_session_new(model, NULL, &whole), RILL_OK);
    EXPECT_STATUS(rill_session_set_generation_config(whole, greedy40), RILL_OK);
    collector both = {0};
    EXPECT_STATUS(rill_session_generate(whole, "And the king said unto", collect, &both, &n), RILL_OK);
    CHECK(strncmp(both.text, part1.text, part1.len) == 0 && strcmp(both.text + part1.len, part2.text) == 0,
          "saved and continued ('%s' + '%s') equals uninterrupted ('%s')", part1.text, part2.text, both.text);
    free(blob);
    rill_session_free(whole);
    rill_session_free(restored);

    /* Chat template. */
    const char *msgs = "[{\"role\": \"user\", \"content\": \"Who made the heaven?\"}]";
    size_t needed = 0;
    EXPECT_STATUS(rill_model_apply_chat_template(model, msgs, 1, NULL, 0, &needed), RILL_ERR_BUFFER_TOO_SMALL);
    char rendered[256];
    EXPECT_STATUS(rill_model_apply_chat_template(model, msgs, 1, rendered, sizeof rendered, &needed), RILL_OK);
    CHECK(strstr(rendered, "user: Who made the heaven?") != NULL, "rendered: %s", rendered);
    EXPECT_STATUS(rill_model_apply_chat_template(model, "{\"role\": 1}", 1, rendered, sizeof rendered, &needed), RILL_ERR_INVALID_ARGUMENT);
    /* The object form (messages with tools and template variables) renders the same messages. */
    char with_tools[256];
    const char *request = "{\"messages\": [{\"role\": \"user\", \"content\": \"Who made the heaven?\"}], "
                          "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"date_string\": \"1 May\"}";
    EXPECT_STATUS(rill_model_apply_chat_template(model, request, 1, with_tools, sizeof with_tools, &needed), RILL_OK);
    CHECK(strcmp(with_tools, rendered) == 0, "object form: %s", with_tools);
    EXPECT_STATUS(rill_session_chat(session, msgs, NULL, NULL, &n), RILL_OK);

    /* Cancel from another thread. */
    EXPECT_STATUS(rill_session_set_generation_config(session, "{\"max_new_tokens\": 900, \"do_sample\": false, \"eos_token_id\": []}"), RILL_OK);
    canceller c = {session, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, cancel_when_started, &c);
    EXPECT_STATUS(rill_session_generate(session, "The function returns", signal_start, &c, &n), RILL_OK);
    pthread_join(thread, NULL);
    CHECK(last_stop(session, &info) == RILL_STOP_CANCELLED && n < 900, "cancelled after %zu tokens", n);
    EXPECT_STATUS(rill_session_set_generation_config(session, greedy40), RILL_OK);
    collector after = {0};
    EXPECT_STATUS(rill_session_generate(session, "In the beginning God created", collect, &after, &n), RILL_OK);
    CHECK(strcmp(after.text, full.text) == 0, "usable after a cancel");

    /* NULLs. */
    EXPECT_STATUS(rill_session_cancel(NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_truncate(NULL, 0), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_token_count(session, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_last_generation(session, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_save(session, NULL, 0, NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_load(session, NULL, 10), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_append(session, NULL, NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_session_chat(session, NULL, NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT);
    rill_session_free(session);
}

/* Execution providers: the CPU by default; CUDA where it cannot be used (no `cuda` feature,
 * a CPU build of ONNX Runtime or no GPU) is RILL_ERR_PROVIDER with a message; "CUDA, else
 * the CPU" opens on the CPU and says why. */
static void test_provider(const rill_model *model, const char *dir) {
    uint32_t provider = 9;
    int32_t device = -1;
    EXPECT_STATUS(rill_model_provider(model, &provider, &device), RILL_OK);
    CHECK(provider == 0 && device == 0, "the default model runs on the CPU");
    EXPECT_STATUS(rill_model_provider(model, NULL, NULL), RILL_ERR_INVALID_ARGUMENT);
    size_t needed = 0;
    EXPECT_STATUS(rill_model_provider_note(model, NULL, 0, &needed), RILL_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == 1, "no fallback note on a CPU model");

    rill_model_options o = rill_model_options_default();
    o.provider = 7;
    const rill_model *other = NULL;
    EXPECT_STATUS(rill_model_open(dir, &o, &other), RILL_ERR_INVALID_ARGUMENT);
    o.provider = 1;
    o.device_id = 0;
    rill_status s = rill_model_open(dir, &o, &other);
    if (s == RILL_OK) {
        printf("CUDA usable here: the error path of RILL_ERR_PROVIDER is not exercised\n");
        rill_model_free(other);
        return;
    }
    EXPECT_STATUS(s, RILL_ERR_PROVIDER);
    CHECK(strstr(rill_last_error(), "execution provider cuda:0") != NULL, "message names the provider: %s",
          rill_last_error());
    o.provider = 2;
    EXPECT_STATUS(rill_model_open(dir, &o, &other), RILL_OK);
    EXPECT_STATUS(rill_model_provider(other, &provider, NULL), RILL_OK);
    CHECK(provider == 0, "fell back to the CPU");
    char note[1024];
    EXPECT_STATUS(rill_model_provider_note(other, note, sizeof note, &needed), RILL_OK);
    CHECK(strstr(note, "CUDA not used") != NULL, "the fallback is explained: %s", note);
    rill_model_free(other);
}

/* The folder's two graphs: the fused-attention model.gqa.onnx by default, model.onnx on
 * request; a caller compiled before `graph` existed (a smaller struct_size) gets the
 * default whatever lies past its struct. */
static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static void test_graph_choice(const rill_model *model, const char *dir) {
    char path[4096];
    size_t needed = 0;
    EXPECT_STATUS(rill_model_graph_file(model, path, sizeof path, &needed), RILL_OK);
    CHECK(ends_with(path, "/model.gqa.onnx"), "the default model runs its fused graph: %s", path);
    EXPECT_STATUS(rill_model_graph_file(model, NULL, 0, &needed), RILL_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == strlen(path) + 1, "needed %zu for %zu bytes", needed, strlen(path));
    EXPECT_STATUS(rill_model_graph_file(NULL, path, sizeof path, &needed), RILL_ERR_INVALID_ARGUMENT);

    rill_model_options o = rill_model_options_default();
    const rill_model *other = NULL;
    o.graph = 9;
    EXPECT_STATUS(rill_model_open(dir, &o, &other), RILL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(rill_last_error(), "options.graph") != NULL, "message names the field: %s", rill_last_error());
    o.graph = 1;
    EXPECT_STATUS(rill_model_open(dir, &o, &other), RILL_OK);
    if (other != NULL) {
        EXPECT_STATUS(rill_model_graph_file(other, path, sizeof path, &needed), RILL_OK);
        CHECK(ends_with(path, "/model.onnx"), "graph 1 runs model.onnx: %s", path);
        rill_model_free(other);
        other = NULL;
    }
    o.struct_size = offsetof(rill_model_options, graph);
    EXPECT_STATUS(rill_model_open(dir, &o, &other), RILL_OK);
    if (other != NULL) {
        EXPECT_STATUS(rill_model_graph_file(other, path, sizeof path, &needed), RILL_OK);
        CHECK(ends_with(path, "/model.gqa.onnx"), "an older struct gets the default graph: %s", path);
        rill_model_free(other);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PLUGIN_PATH\n", argv[0]);
        return 2;
    }
    CHECK(strcmp(rill_status_str(RILL_ERR_WEIGHTS), "RILL_ERR_WEIGHTS") == 0, "status names");
    CHECK(strcmp(rill_status_str(RILL_ERR_OUT_OF_MEMORY), "RILL_ERR_OUT_OF_MEMORY") == 0, "status names");
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", RILL_VERSION_MAJOR, RILL_VERSION_MINOR, RILL_VERSION_PATCH);
    CHECK(strcmp(rill_version(), version) == 0, "rill_version() %s matches the header %s", rill_version(), version);

    const rill_model *model = NULL;
    rill_model_options options = rill_model_options_default();
    options.intra_threads = 2;
    EXPECT_STATUS(rill_set_onnxruntime_path(NULL), RILL_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(rill_model_open(argv[1], &options, &model), RILL_OK);
    /* The library is loaded now: its path can no longer change. */
    EXPECT_STATUS(rill_set_onnxruntime_path("/elsewhere/libonnxruntime.so"), RILL_ERR_INVALID_ARGUMENT);
    CHECK(strstr(rill_last_error(), "already loaded from") != NULL, "message says where from");
    if (model == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], rill_last_error());
        return 1;
    }
    test_generate(model);
    test_tokenize(model);
    test_errors(model);
    test_plugins(model, argv[2]);
    test_beams(model);
    test_conversation(model);
    test_provider(model, argv[1]);
    test_graph_choice(model, argv[1]);
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
