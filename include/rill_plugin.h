/*
 * rill_plugin.h: the ABI between rill and sampler plugins. Hand-written C.
 *
 * A plugin is a shared library exporting one symbol, RILL_PLUGIN_ENTRY_SYMBOL, of type
 * rill_plugin_entry_fn. rill calls it once, when the application loads the plugin, with
 * the host's ABI version and a host table; the plugin returns a table of the samplers it
 * provides (or an error, e.g. for an ABI version it was not built for). The same table
 * can be registered from a statically linked function pointer, for platforms that forbid
 * loading code at run time; rill's standard samplers are registered that way.
 *
 * Every table starts with abi_version and struct_size and grows only by appending
 * fields. Nothing may unwind or throw across this boundary: a failing call returns
 * RILL_PLUGIN_ERROR and writes a NUL-terminated message into the caller's error buffer.
 * rill validates everything a plugin hands back (sizes, token ids, finite logits) and
 * turns a violation into an error naming the plugin; the host process never crashes on
 * a plugin's mistake that the ABI can observe.
 *
 * Sample: a sampler that bans one token, configured as {"token": 17}.
 *
 *     static rill_plugin_status create(const char *params, const rill_host *host,
 *                                      void **state, char *error, size_t error_len) { ... }
 *     static rill_plugin_status apply(void *state, rill_candidates *c,
 *                                     const rill_sampler_context *ctx, char *error,
 *                                     size_t error_len) {
 *         for (size_t i = 0; i < c->size; i++)
 *             if (c->ids[i] == *(uint32_t *)state) c->logits[i] = -INFINITY;
 *         return RILL_PLUGIN_OK;
 *     }
 *     static const rill_sampler_vtable ban = { RILL_PLUGIN_ABI_VERSION,
 *         sizeof(rill_sampler_vtable), "ban", create, apply, NULL, NULL, NULL, destroy };
 *     static const rill_sampler_vtable *const samplers[] = { &ban };
 *     static const rill_plugin_table table = { RILL_PLUGIN_ABI_VERSION,
 *         sizeof(rill_plugin_table), "example", 1, samplers };
 *     rill_plugin_status rill_plugin_entry(uint32_t host_abi, const rill_host *host,
 *                                          const rill_plugin_table **out, char *error,
 *                                          size_t error_len) {
 *         if (host_abi != RILL_PLUGIN_ABI_VERSION) { ...write error...; return RILL_PLUGIN_ERROR; }
 *         *out = &table;
 *         return RILL_PLUGIN_OK;
 *     }
 */
#ifndef RILL_PLUGIN_H
#define RILL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a released table or function changes incompatibly. */
#define RILL_PLUGIN_ABI_VERSION 1

/* The name of the one symbol a plugin library exports. */
#define RILL_PLUGIN_ENTRY_SYMBOL "rill_plugin_entry"

/* The result of a plugin call. */
typedef enum rill_plugin_status {
    RILL_PLUGIN_OK = 0,
    RILL_PLUGIN_ERROR = 1
} rill_plugin_status;

/* Log levels for rill_host.log. */
typedef enum rill_log_level {
    RILL_LOG_DEBUG = 0,
    RILL_LOG_INFO = 1,
    RILL_LOG_WARN = 2,
    RILL_LOG_ERROR = 3
} rill_log_level;

/* What the host offers a plugin. Owned by rill; valid until the plugin is unloaded. */
typedef struct rill_host {
    uint32_t abi_version;
    uint32_t struct_size;
    /* Opaque; pass back to the functions below. */
    void *host_data;
    /* required: writes a message to the application's log. Thread-safe. */
    void (*log)(void *host_data, rill_log_level level, const char *message);
} rill_host;

/*
 * The candidates of one step, modified in place by each sampler of a chain.
 * ids[i] and logits[i] describe candidate i. A sampler may change logits (use -INFINITY
 * to remove a candidate), reorder both arrays together, shrink size, and pick a token by
 * setting selected. It must not grow size or write past it.
 */
typedef struct rill_candidates {
    uint32_t *ids;      /* token ids, owned by rill */
    float *logits;      /* their logits, owned by rill; finite or -INFINITY */
    size_t size;        /* live candidates, at most the vocabulary */
    int64_t selected;   /* index of the chosen candidate, or -1 when none is chosen yet */
    uint8_t sorted;     /* 1 when ordered by logit, highest first; clear it if you reorder */
} rill_candidates;

/* What a sampler may read about the sequence. Owned by rill; valid during the call. */
typedef struct rill_sampler_context {
    uint32_t abi_version;
    uint32_t struct_size;
    const uint32_t *tokens;  /* the sequence so far, prompt included */
    size_t n_tokens;
    size_t n_prompt;         /* how many of tokens are the prompt */
    size_t vocab_size;
    /* A uniform draw in [0, 1) from the session's seeded generator. */
    double (*random)(void *random_data);
    void *random_data;
    /* Appended in ABI version 1; read them only when struct_size covers them (a host
     * from before them passes a smaller struct), and treat NULL as "not given".
     * token_bytes: the bytes token `id` adds to the generated text (UTF-8, but a
     * byte-level token may hold part of a character; a special token adds nothing, as
     * it is not part of the text), their count written to *len_out; NULL for an id
     * outside the vocabulary. The bytes stay valid while the model is open. A
     * sampler that constrains the text (a grammar, a pattern) reads them. */
    const uint8_t *(*token_bytes)(const void *vocabulary, uint32_t id, size_t *len_out);
    const void *vocabulary;
    /* The generation's end-of-sequence ids (n_eos of them), valid during the call. */
    const uint32_t *eos_ids;
    size_t n_eos;
} rill_sampler_context;

/*
 * A sampler type. State is the plugin's own, created per session by create and passed
 * back to every other call; rill calls one session's sampler from one thread at a time.
 * error/error_len: a buffer for a NUL-terminated message when a call fails.
 */
typedef struct rill_sampler_vtable {
    uint32_t abi_version;
    uint32_t struct_size;
    /* required: the name sessions use to ask for this sampler (UTF-8, static). */
    const char *name;
    /* required: makes a state from JSON parameters (an object, "{}" when none). */
    rill_plugin_status (*create)(const char *params_json, const rill_host *host, void **state_out,
                                 char *error, size_t error_len);
    /* required: transforms the candidates (and may pick one). */
    rill_plugin_status (*apply)(void *state, rill_candidates *candidates,
                                const rill_sampler_context *context, char *error, size_t error_len);
    /* may be NULL: told which token was chosen. */
    void (*accept)(void *state, uint32_t token);
    /* may be NULL: forget everything accepted (a new generation starts). */
    void (*reset)(void *state);
    /* may be NULL: a copy of the state (for beam hypotheses); NULL means "not cloneable". */
    rill_plugin_status (*clone)(const void *state, void **state_out, char *error, size_t error_len);
    /* required: frees a state. */
    void (*destroy)(void *state);
} rill_sampler_vtable;

/*
 * One step of a search strategy: the raw next-token logits of every live row (hypothesis)
 * and the rows' tokens so far. Owned by rill; valid during the call.
 */
typedef struct rill_search_step {
    uint32_t abi_version;
    uint32_t struct_size;
    size_t n_rows;          /* live rows, as the strategy asked for (rows()) */
    size_t vocab_size;
    const float *logits;    /* [n_rows * vocab_size], row-major, raw logits */
    const uint32_t *tokens; /* [n_rows * length], row-major: prompt and generated tokens */
    size_t length;          /* tokens per row so far */
    size_t prompt_len;
    size_t max_length;      /* prompt_len + max_new_tokens */
    /* Appended in ABI version 1; read only when struct_size covers it. The host's text
     * stopping criteria (the generation's stop strings), or NULL when there are none:
     * returns 1 when row `row` followed by `token` completes a stop string in the text
     * generated after the prompt. A strategy that declares RILL_SEARCH_APPLIES_STOPS
     * treats such a continuation as it treats an end-of-sequence token (the hypothesis
     * is finished there, the token included, and is not continued). Valid during the
     * step call only. */
    uint8_t (*stops)(void *stop_data, size_t row, uint32_t token);
    void *stop_data;
} rill_search_step;

/* What a strategy decides for one row of the next step: the row it continues and the token
 * it appends. rill reorders the KV cache by parent and feeds the tokens. */
typedef struct rill_search_choice {
    uint32_t parent;
    uint32_t token;
} rill_search_choice;

/*
 * A search strategy (beam search, diverse beam search, ...). It decides, step by step,
 * which hypotheses live on; rill runs the model on all rows in one batched pass.
 */
typedef struct rill_search_vtable {
    uint32_t abi_version;
    uint32_t struct_size;
    /* required: the name generation settings use (UTF-8, static). */
    const char *name;
    /* required: makes a state from JSON parameters; writes how many rows it runs. */
    rill_plugin_status (*create)(const char *params_json, const rill_host *host, void **state_out,
                                 size_t *n_rows_out, char *error, size_t error_len);
    /* required: one step: writes n_rows choices; sets *done_out to 1 when the search ended
     * (the choices are then ignored). */
    rill_plugin_status (*step)(void *state, const rill_search_step *step, rill_search_choice *choices,
                               uint8_t *done_out, char *error, size_t error_len);
    /* required: after done, how many hypotheses it returns, best first. */
    size_t (*n_results)(const void *state);
    /* required: hypothesis i: its tokens (prompt included; owned by the state, valid until
     * destroy) and score. */
    rill_plugin_status (*result)(const void *state, size_t i, const uint32_t **tokens_out, size_t *length_out,
                                 float *score_out);
    /* required: frees a state. */
    void (*destroy)(void *state);
    /* Appended in ABI version 1; read only when struct_size covers it. RILL_SEARCH_*
     * bits. rill refuses stop strings with a strategy that lacks
     * RILL_SEARCH_APPLIES_STOPS rather than ignore them. */
    uint32_t flags;
} rill_search_vtable;

/* rill_search_vtable.flags: the strategy applies rill_search_step.stops. */
#define RILL_SEARCH_APPLIES_STOPS 1u

/* Everything a plugin provides. Static storage; valid until the plugin is unloaded.
 * Fields after `samplers` were appended in the same ABI version 1 and are read only when
 * struct_size covers them. */
typedef struct rill_plugin_table {
    uint32_t abi_version;
    uint32_t struct_size;
    /* required: the plugin's name, used in error messages (UTF-8, static). */
    const char *plugin_name;
    size_t n_samplers;
    const rill_sampler_vtable *const *samplers;
    size_t n_strategies;
    const rill_search_vtable *const *strategies;
} rill_plugin_table;

/*
 * The entry point. host_abi_version is the host's RILL_PLUGIN_ABI_VERSION; a plugin that
 * cannot serve it returns RILL_PLUGIN_ERROR with a message. On success writes its table.
 */
typedef rill_plugin_status (*rill_plugin_entry_fn)(uint32_t host_abi_version, const rill_host *host,
                                                   const rill_plugin_table **table_out, char *error,
                                                   size_t error_len);

#ifdef __cplusplus
}
#endif

#endif /* RILL_PLUGIN_H */
