/* ban_tokens: a sampler plugin in plain C against rill_plugin.h.
 * Removes the token ids given as {"tokens": [id, ...]} from the candidates, so they are
 * never generated. Build: cc -shared -fPIC -Iinclude plugins/examples/ban_tokens.c -o libban_tokens.so */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill_plugin.h"

typedef struct {
    uint32_t *tokens;
    size_t n;
} ban_state;

static void set_error(char *error, size_t len, const char *message) {
    if (error != NULL && len > 0) snprintf(error, len, "%s", message);
}

/* Reads the integers of the "tokens" array of a flat JSON object. */
static rill_plugin_status create(const char *params, const rill_host *host, void **state_out,
                                 char *error, size_t error_len) {
    const char *key = params ? strstr(params, "\"tokens\"") : NULL;
    const char *p = key ? strchr(key, '[') : NULL;
    if (p == NULL) {
        set_error(error, error_len, "params need \"tokens\": [id, ...]");
        return RILL_PLUGIN_ERROR;
    }
    ban_state *s = calloc(1, sizeof *s);
    if (s == NULL) return RILL_PLUGIN_ERROR;
    for (p++; *p && *p != ']';) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p) { p++; continue; }
        if (v < 0) {
            free(s->tokens);
            free(s);
            set_error(error, error_len, "token ids must not be negative");
            return RILL_PLUGIN_ERROR;
        }
        uint32_t *grown = realloc(s->tokens, (s->n + 1) * sizeof *grown);
        if (grown == NULL) { free(s->tokens); free(s); return RILL_PLUGIN_ERROR; }
        s->tokens = grown;
        s->tokens[s->n++] = (uint32_t)v;
        p = end;
    }
    if (host != NULL && host->log != NULL) {
        char line[64];
        snprintf(line, sizeof line, "ban_tokens: %zu token(s) banned", s->n);
        host->log(host->host_data, RILL_LOG_DEBUG, line);
    }
    *state_out = s;
    return RILL_PLUGIN_OK;
}

static rill_plugin_status apply(void *state, rill_candidates *c, const rill_sampler_context *ctx,
                                char *error, size_t error_len) {
    (void)ctx; (void)error; (void)error_len;
    const ban_state *s = state;
    for (size_t i = 0; i < c->size; i++)
        for (size_t j = 0; j < s->n; j++)
            if (c->ids[i] == s->tokens[j]) c->logits[i] = -INFINITY;
    return RILL_PLUGIN_OK;
}

static void destroy(void *state) {
    ban_state *s = state;
    if (s != NULL) free(s->tokens);
    free(s);
}

static const rill_sampler_vtable ban_tokens = {
    RILL_PLUGIN_ABI_VERSION, sizeof(rill_sampler_vtable), "ban_tokens",
    create, apply, NULL, NULL, NULL, destroy,
};
static const rill_sampler_vtable *const samplers[] = {&ban_tokens};
static const rill_plugin_table table = {
    RILL_PLUGIN_ABI_VERSION, sizeof(rill_plugin_table), "ban-tokens-example", 1, samplers, 0, NULL,
};

rill_plugin_status rill_plugin_entry(uint32_t host_abi_version, const rill_host *host,
                                     const rill_plugin_table **table_out, char *error, size_t error_len) {
    (void)host;
    if (host_abi_version != RILL_PLUGIN_ABI_VERSION) {
        set_error(error, error_len, "ban_tokens was built for plugin ABI version 1");
        return RILL_PLUGIN_ERROR;
    }
    *table_out = &table;
    return RILL_PLUGIN_OK;
}
