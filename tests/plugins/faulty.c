/* A plugin that misbehaves in every way the ABI lets rill observe, one sampler per fault.
 * Compiled by runtime/tests/plugins.rs; -DTABLE_ABI=N builds it for another ABI version,
 * -DNO_ENTRY leaves out the entry symbol. */
#include <math.h>
#include <stdio.h>

#include "rill_plugin.h"

#ifndef TABLE_ABI
#define TABLE_ABI RILL_PLUGIN_ABI_VERSION
#endif

static rill_plugin_status create(const char *params, const rill_host *host, void **state_out,
                                 char *error, size_t error_len) {
    (void)params; (void)host; (void)error; (void)error_len;
    static int dummy;
    *state_out = &dummy;
    return RILL_PLUGIN_OK;
}
static void destroy(void *state) { (void)state; }

#define FAULT(fn_name, body)                                                                     \
    static rill_plugin_status fn_name(void *state, rill_candidates *c,                           \
                                      const rill_sampler_context *ctx, char *error, size_t len) { \
        (void)state; (void)ctx; (void)error; (void)len;                                          \
        body;                                                                                    \
        return RILL_PLUGIN_OK;                                                                   \
    }

FAULT(apply_nan, c->logits[0] = NAN)
FAULT(apply_out_of_range, c->ids[0] = (uint32_t)ctx->vocab_size + 5)
FAULT(apply_grows, c->size += 1)
FAULT(apply_bad_select, c->selected = (int64_t)c->size)
static rill_plugin_status apply_fails(void *state, rill_candidates *c, const rill_sampler_context *ctx,
                                      char *error, size_t len) {
    (void)state; (void)c; (void)ctx;
    snprintf(error, len, "deliberate failure for the test");
    return RILL_PLUGIN_ERROR;
}

#define SAMPLER(var, name, apply_fn) \
    static const rill_sampler_vtable var = { \
        RILL_PLUGIN_ABI_VERSION, sizeof(rill_sampler_vtable), name, create, apply_fn, NULL, NULL, NULL, destroy};
SAMPLER(nan_s, "fault_nan", apply_nan)
SAMPLER(range_s, "fault_out_of_range", apply_out_of_range)
SAMPLER(grows_s, "fault_grows", apply_grows)
SAMPLER(select_s, "fault_bad_select", apply_bad_select)
SAMPLER(fails_s, "fault_fails", apply_fails)

static const rill_sampler_vtable *const samplers[] = {&nan_s, &range_s, &grows_s, &select_s, &fails_s};
static const rill_plugin_table table = {TABLE_ABI, sizeof(rill_plugin_table), "faulty", 5, samplers, 0, NULL};

#ifndef NO_ENTRY
rill_plugin_status rill_plugin_entry(uint32_t host_abi_version, const rill_host *host,
                                     const rill_plugin_table **table_out, char *error, size_t error_len) {
    (void)host_abi_version; (void)host; (void)error; (void)error_len;
    *table_out = &table;
    return RILL_PLUGIN_OK;
}
#else
int not_a_plugin(void) { return table.n_samplers > 0; }
#endif
