/* The bad-input catalogue, run through the public C ABI: every row is one bad input, the
 * status and a word of the message rill must answer with, then a follow-up call proving
 * the model and the session still work. Model folders broken one way each come from
 * make_cases.py (cases.tsv); the rows below break calls, buffers, prompts, settings,
 * plugins and saved state.
 * Usage: catalogue MODEL_DIR CASES_DIR FAULTY_PLUGIN */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

static int rows = 0, failures = 0;
static const rill_model *model = NULL;
static rill_session *session = NULL;
static const char *faulty_plugin = NULL;
static const char *model_dir = NULL;

static void fail(const char *row, const char *fmt, const char *a, const char *b) {
    failures++;
    fprintf(stderr, "FAIL %s: ", row);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
}

/* The model and the session still generate, from a clean configuration. */
static void still_works(const char *row) {
    size_t n = 0;
    rill_status s = rill_session_set_generation_config(session, "{\"max_new_tokens\": 3, \"do_sample\": false}");
    if (s == RILL_OK) s = rill_session_generate(session, "In the beginning", NULL, NULL, &n);
    if (s != RILL_OK || n == 0) fail(row, "follow-up generation failed: %s %s", rill_status_str(s), rill_last_error());
}

static void expect(const char *row, rill_status got, const char *want, const char *needle) {
    rows++;
    if (strcmp(rill_status_str(got), want) != 0) {
        fail(row, "status %s, expected %s", rill_status_str(got), want);
        fprintf(stderr, "     message: %s\n", rill_last_error());
    } else if (needle && strstr(rill_last_error(), needle) == NULL) {
        fail(row, "message '%s' does not name '%s'", rill_last_error(), needle);
    }
    still_works(row);
}

/* ---- model folders ------------------------------------------------------------------ */

static void model_folders(const char *dir) {
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/cases.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    while (fgets(line, sizeof line, f)) {
        char *name = strtok(line, "\t\n"), *status = strtok(NULL, "\t\n"), *needle = strtok(NULL, "\t\n");
        if (!name || !status) continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        const rill_model *bad = (const rill_model *)0x1;
        rill_status got = rill_model_open(path, NULL, &bad);
        if (got != RILL_OK && bad != (const rill_model *)0x1) fail(name, "%s%s", "the out-pointer was written on failure", "");
        if (got == RILL_OK) {
            /* Opens (e.g. NaN weights cannot be seen without reading them all): generating
             * must fail instead. */
            rill_session *s = NULL;
            size_t n = 0;
            got = rill_session_new(bad, NULL, &s);
            if (got == RILL_OK) got = rill_session_generate(s, "In the beginning", NULL, NULL, &n);
            rill_session_free(s);
            rill_model_free(bad);
        }
        expect(name, got, status, needle);
    }
    fclose(f);
}

/* ---- calls, buffers, prompts, settings ----------------------------------------------- */

#define ROW(name, call, status, needle) expect(name, (call), #status, needle)

static void calls(void) {
    size_t n = 0, needed = 0;
    uint32_t ids[4];
    char buf[8];
    const rill_model *m = NULL;
    rill_session *s = NULL;
    ROW("open_null_path", rill_model_open(NULL, NULL, &m), RILL_ERR_INVALID_ARGUMENT, "path");
    ROW("open_null_out", rill_model_open("models/rill-tiny", NULL, NULL), RILL_ERR_INVALID_ARGUMENT, "model_out");
    ROW("open_empty_path", rill_model_open("", NULL, &m), RILL_ERR_NOT_FOUND, "not found");
    ROW("open_invalid_utf8_path", rill_model_open("\xff\xfe", NULL, &m), RILL_ERR_INVALID_UTF8, "path");
    rill_model_options small = rill_model_options_default();
    small.struct_size = 4;
    ROW("open_options_struct_size_too_small", rill_model_open("x", &small, &m), RILL_ERR_INVALID_ARGUMENT, "struct_size");
    rill_model_options prov = rill_model_options_default();
    prov.provider = 7;
    ROW("open_unknown_provider", rill_model_open(model_dir, &prov, &m), RILL_ERR_INVALID_ARGUMENT, "options.provider");
    prov.provider = 1;
    prov.device_id = 0;
    if (rill_model_open(model_dir, &prov, &m) == RILL_OK) {
        rill_model_free(m); /* CUDA usable here: no error to check */
    } else {
        ROW("open_cuda_unusable", rill_model_open(model_dir, &prov, &m), RILL_ERR_PROVIDER, "execution provider cuda:0");
    }
    uint32_t provider = 0;
    ROW("provider_null_model", rill_model_provider(NULL, &provider, NULL), RILL_ERR_INVALID_ARGUMENT, "model");
    ROW("provider_null_out", rill_model_provider(model, NULL, NULL), RILL_ERR_INVALID_ARGUMENT, "provider_out");
    ROW("provider_note_null_needed", rill_model_provider_note(model, NULL, 0, NULL), RILL_ERR_INVALID_ARGUMENT, "needed_out");
    ROW("session_null_model", rill_session_new(NULL, NULL, &s), RILL_ERR_INVALID_ARGUMENT, "model");
    rill_session_options big = rill_session_options_default();
    big.context_len = 1u << 30;
    ROW("session_context_larger_than_model", rill_session_new(model, &big, &s), RILL_ERR_INVALID_ARGUMENT, "max_position_embeddings");
    rill_session_options window = rill_session_options_default();
    window.context_len = 16;
    window.context_policy = 1;
    window.pinned_tokens = 15;
    ROW("session_window_without_room", rill_session_new(model, &window, &s), RILL_ERR_INVALID_ARGUMENT, "sliding window");
    window.context_policy = 7;
    ROW("session_unknown_context_policy", rill_session_new(model, &window, &s), RILL_ERR_INVALID_ARGUMENT, "context_policy");
    ROW("generate_null_session", rill_session_generate(NULL, "x", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "session");
    ROW("generate_null_prompt", rill_session_generate(session, NULL, NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "prompt");
    ROW("generate_null_count", rill_session_generate(session, "x", NULL, NULL, NULL), RILL_ERR_INVALID_ARGUMENT, "n_tokens_out");
    ROW("generate_invalid_utf8", rill_session_generate(session, "caf\xc3", NULL, NULL, &n), RILL_ERR_INVALID_UTF8, "prompt");
    rill_session *narrow = NULL;
    rill_session_options o = rill_session_options_default();
    o.context_len = 8;
    rill_session_new(model, &o, &narrow);
    ROW("prompt_longer_than_context", rill_session_generate(narrow, "In the beginning God created the heaven and the earth", NULL, NULL, &n),
        RILL_ERR_PROMPT_TOO_LONG, "context of 8 tokens");
    size_t huge_len = 1 << 20;
    char *huge = malloc(huge_len + 1);
    for (size_t i = 0; i < huge_len; i++) huge[i] = "abc def "[i % 8];
    huge[huge_len] = 0;
    ROW("huge_prompt", rill_session_generate(session, huge, NULL, NULL, &n), RILL_ERR_PROMPT_TOO_LONG, "does not fit");
    free(huge);
    rill_session_free(narrow);
    ROW("config_null", rill_session_set_generation_config(session, NULL), RILL_ERR_INVALID_ARGUMENT, "json");
    ROW("config_not_json", rill_session_set_generation_config(session, "{max_new_tokens: 3}"), RILL_ERR_GENERATION_CONFIG, "generation config");
    ROW("config_negative_tokens", rill_session_set_generation_config(session, "{\"max_new_tokens\": -1}"), RILL_ERR_GENERATION_CONFIG, "max_new_tokens");
    ROW("config_temperature_zero", rill_session_set_generation_config(session, "{\"do_sample\": true, \"temperature\": 0}"), RILL_ERR_GENERATION_CONFIG, "temperature");
    ROW("config_top_p_above_one", rill_session_set_generation_config(session, "{\"do_sample\": true, \"top_p\": 2}"), RILL_ERR_GENERATION_CONFIG, "top_p");
    ROW("config_more_returns_than_beams", rill_session_set_generation_config(session, "{\"num_beams\": 2, \"do_sample\": false, \"num_return_sequences\": 3}"), RILL_ERR_GENERATION_CONFIG, "num_return_sequences");
    ROW("config_unknown_sampler", rill_session_set_generation_config(session, "{\"samplers\": [{\"name\": \"no_such_sampler\"}]}"), RILL_ERR_UNKNOWN_SAMPLER, "no_such_sampler");
    rill_status st = rill_session_set_generation_config(session, "{\"search_strategy\": {\"name\": \"no_such_strategy\"}}");
    if (st == RILL_OK) st = rill_session_generate(session, "x", NULL, NULL, &n);
    ROW("config_unknown_strategy", st, RILL_ERR_UNKNOWN_SAMPLER, "no_such_strategy");
    ROW("tokenize_buffer_too_small", rill_tokenize(model, "In the beginning God created", ids, 2, &needed), RILL_ERR_BUFFER_TOO_SMALL, "ids");
    ROW("tokenize_null_text", rill_tokenize(model, NULL, ids, 4, &needed), RILL_ERR_INVALID_ARGUMENT, "text");
    uint32_t outside[2] = {5, 99999};
    ROW("detokenize_out_of_range", rill_detokenize(model, outside, 2, buf, sizeof buf, &needed), RILL_ERR_TOKEN_OUT_OF_RANGE, "99999");
    ROW("detokenize_null_ids", rill_detokenize(model, NULL, 3, buf, sizeof buf, &needed), RILL_ERR_INVALID_ARGUMENT, "ids");
    uint32_t few[3] = {5, 6, 7};
    ROW("detokenize_buffer_too_small", rill_detokenize(model, few, 3, buf, 1, &needed), RILL_ERR_BUFFER_TOO_SMALL, "needed");
    ROW("truncate_beyond_history", rill_session_truncate(session, 1u << 20), RILL_ERR_INVALID_ARGUMENT, "holds");
    ROW("beam_result_without_beams", rill_session_beam_result(session, 0, buf, sizeof buf, &needed, NULL), RILL_ERR_INVALID_ARGUMENT, "out of range");
    ROW("chat_messages_not_json", rill_session_chat(session, "[{\"role\": \"user\"", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "messages_json");
    ROW("chat_messages_wrong_shape", rill_session_chat(session, "{\"role\": \"user\", \"content\": \"x\"}", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "JSON array");
    rill_generation_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = 3;
    ROW("last_generation_struct_size_too_small", rill_session_last_generation(session, &info), RILL_ERR_INVALID_ARGUMENT, "struct_size");
}

/* ---- saved state --------------------------------------------------------------------- */

static void saved_state(const char *cases_dir) {
    size_t size = 0, n = 0;
    rill_session_generate(session, "And the king said", NULL, NULL, &n);
    rill_session_save(session, NULL, 0, &size);
    unsigned char *blob = malloc(size);
    rill_session_save(session, blob, size, &size);
    ROW("state_truncated", rill_session_load(session, blob, size - 1), RILL_ERR_STATE, "checksum");
    ROW("state_empty", rill_session_load(session, blob, 0), RILL_ERR_STATE, "magic");
    ROW("state_null_data", rill_session_load(session, NULL, 64), RILL_ERR_INVALID_ARGUMENT, "data");
    blob[size - 10] ^= 0x80;
    ROW("state_bit_flipped", rill_session_load(session, blob, size), RILL_ERR_STATE, "checksum");
    blob[size - 10] ^= 0x80;
    ROW("state_garbage", rill_session_load(session, (const unsigned char *)"RILLSTAT but nothing else", 25), RILL_ERR_STATE, "checksum");
    /* A state of another model folder (same architecture, different config). */
    char path[4096];
    snprintf(path, sizeof path, "%s/other_model", cases_dir);
    const rill_model *other = NULL;
    rill_session *foreign = NULL;
    if (rill_model_open(path, NULL, &other) == RILL_OK && rill_session_new(other, NULL, &foreign) == RILL_OK) {
        ROW("state_from_another_model", rill_session_load(foreign, blob, size), RILL_ERR_STATE, "another model");
        rill_session_free(foreign);
        rill_model_free(other);
    } else {
        fail("state_from_another_model", "cannot open %s: %s", path, rill_last_error());
    }
    ROW("state_roundtrip_still_loads", rill_session_load(session, blob, size), RILL_OK, NULL);
    free(blob);
}

/* ---- plugins ------------------------------------------------------------------------- */

static void plugins(void) {
    const rill_plugin *p = NULL;
    ROW("plugin_missing_file", rill_plugin_load("/nonexistent/librill_plugin.so", &p), RILL_ERR_PLUGIN_LOAD, "/nonexistent");
    ROW("plugin_not_a_library", rill_plugin_load("tests/bad_inputs/make_cases.py", &p), RILL_ERR_PLUGIN_LOAD, "make_cases.py");
    ROW("plugin_null_path", rill_plugin_load(NULL, &p), RILL_ERR_INVALID_ARGUMENT, "path");
    ROW("plugin_loads", rill_plugin_load(faulty_plugin, &p), RILL_OK, NULL);
    static const struct {
        const char *name, *needle;
    } faults[] = {
        {"fault_nan", "NaN"},
        {"fault_out_of_range", "outside"},
        {"fault_grows", "grew"},
        {"fault_bad_select", "select"},
        {"fault_fails", "fault_fails"},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        size_t n = 0;
        rill_session_set_generation_config(session, "{\"max_new_tokens\": 3, \"do_sample\": false}");
        rill_status s = rill_session_add_sampler(session, faults[i].name, "{}");
        if (s == RILL_OK) s = rill_session_generate(session, "In the beginning", NULL, NULL, &n);
        expect(faults[i].name, s, "RILL_ERR_PLUGIN", faults[i].needle);
    }
    ROW("sampler_params_not_json", rill_session_add_sampler(session, "top_k", "{k: 3"), RILL_ERR_GENERATION_CONFIG, "params");
    ROW("sampler_unknown_name", rill_session_add_sampler(session, "fault_none", "{}"), RILL_ERR_UNKNOWN_SAMPLER, "fault_none");
    rill_plugin_free(p);
}

/* ---- handles: freed, foreign, doubly freed, and used from two threads at once ---------- */

typedef struct {
    rill_session *session;
    atomic_int started;
    rill_status status;
} busy_session;

static int mark_started(void *user, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    atomic_store(&((busy_session *)user)->started, 1);
    return 0;
}

static void *generate_long(void *user) {
    busy_session *b = user;
    size_t n = 0;
    b->status = rill_session_generate(b->session, "In the beginning", mark_started, b, &n);
    return NULL;
}

static void handles(void) {
    size_t n = 0;
    /* A freed session: refused by name, never read. */
    rill_session *gone = NULL;
    rill_session_new(model, NULL, &gone);
    rill_session_free(gone);
    ROW("session_used_after_free", rill_session_generate(gone, "x", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "not a live rill_session");
    ROW("session_truncated_after_free", rill_session_truncate(gone, 0), RILL_ERR_INVALID_ARGUMENT, "freed already");
    ROW("session_cancelled_after_free", rill_session_cancel(gone), RILL_ERR_INVALID_ARGUMENT, "not a live rill_session");
    rill_session_free(gone); /* a double free is ignored */
    ROW("session_double_free_ignored", strstr(rill_last_error(), "free ignored") ? RILL_OK : RILL_ERR_PANIC, RILL_OK, NULL);
    /* A pointer rill never made: refused without being read. */
    long not_a_session[64];
    memset(not_a_session, 0xab, sizeof not_a_session);
    ROW("foreign_session_pointer", rill_session_generate((rill_session *)not_a_session, "x", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "did not come from rill_session_new");
    ROW("foreign_model_pointer", rill_session_new((const rill_model *)not_a_session, NULL, &gone), RILL_ERR_INVALID_ARGUMENT, "not a live rill_model");
    ROW("foreign_assistant_pointer", rill_session_set_assistant(session, (const rill_model *)not_a_session), RILL_ERR_INVALID_ARGUMENT, "not a live rill_model");
    ROW("assistant_on_null_session", rill_session_set_assistant(NULL, model), RILL_ERR_INVALID_ARGUMENT, "session");
    ROW("logprobs_null_count", rill_session_last_logprobs(session, NULL, 0, NULL), RILL_ERR_INVALID_ARGUMENT, "n_out");
    /* A freed model handle (its sessions keep the model itself alive). */
    const rill_model *second = NULL;
    rill_model_open(model_dir, NULL, &second);
    rill_session *orphan = NULL;
    rill_session_new(second, NULL, &orphan);
    rill_model_free(second);
    rill_model_free(second);
    ROW("model_double_free_ignored", strstr(rill_last_error(), "free ignored") ? RILL_OK : RILL_ERR_PANIC, RILL_OK, NULL);
    uint32_t ids[8];
    ROW("model_used_after_free", rill_tokenize(second, "x", ids, 8, &n), RILL_ERR_INVALID_ARGUMENT, "not a live rill_model");
    rill_session_set_generation_config(orphan, "{\"max_new_tokens\": 2}");
    ROW("session_outlives_freed_model_handle", rill_session_generate(orphan, "In the", NULL, NULL, &n), RILL_OK, NULL);
    rill_session_free(orphan);
    /* The same session from two threads at once: the second call is refused, a free
     * meanwhile is ignored, a cancel is allowed and ends the first call. */
    busy_session b = {0};
    rill_session_new(model, NULL, &b.session);
    rill_session_set_generation_config(b.session, "{\"max_new_tokens\": 400, \"do_sample\": false, \"eos_token_id\": []}");
    pthread_t worker;
    pthread_create(&worker, NULL, generate_long, &b);
    while (!atomic_load(&b.started)) {
    }
    ROW("session_called_from_a_second_thread", rill_session_generate(b.session, "x", NULL, NULL, &n), RILL_ERR_INVALID_ARGUMENT, "in use by a call on another thread");
    ROW("session_read_from_a_second_thread", rill_session_token_count(b.session, &n), RILL_ERR_INVALID_ARGUMENT, "one thread at a time");
    rill_session_free(b.session);
    ROW("session_freed_while_in_use_ignored", strstr(rill_last_error(), "in use") ? RILL_OK : RILL_ERR_PANIC, RILL_OK, NULL);
    ROW("session_cancelled_from_a_second_thread", rill_session_cancel(b.session), RILL_OK, NULL);
    pthread_join(worker, NULL);
    ROW("first_thread_finished_cancelled", b.status, RILL_OK, NULL);
    ROW("session_usable_after_the_race", rill_session_generate(b.session, "In the", NULL, NULL, &n), RILL_OK, NULL);
    rill_session_free(b.session);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR CASES_DIR FAULTY_PLUGIN\n", argv[0]);
        return 2;
    }
    faulty_plugin = argv[3];
    rill_model_options options = rill_model_options_default();
    options.intra_threads = 2;
    model_dir = argv[1];
    if (rill_model_open(argv[1], &options, &model) != RILL_OK || rill_session_new(model, NULL, &session) != RILL_OK) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], rill_last_error());
        return 1;
    }
    model_folders(argv[2]);
    calls();
    handles();
    saved_state(argv[2]);
    plugins();
    rill_session_free(session);
    rill_model_free(model);
    printf("bad-input catalogue: %d rows, %d failed\n", rows, failures);
    return failures == 0 ? 0 : 1;
}
