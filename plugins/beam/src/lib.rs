//! rill's search strategies as a plugin: `beam` (beam search, and diverse beam search when
//! `num_beam_groups` > 1), with transformers 4.53's semantics ([`search`]), exposed through
//! the strategy table of `include/rill_plugin.h`. The runtime registers [`rill_beam_entry`]
//! statically; building with the feature `export-entry` also exports it as
//! `rill_plugin_entry` for loading at run time.
//!
//! Parameters (JSON object, Hugging Face names): `num_beams` (required), `num_beam_groups`
//! (1), `diversity_penalty` (0), `length_penalty` (1), `early_stopping` (false / true /
//! "never"), `num_return_sequences` (1), `repetition_penalty` (1), `no_repeat_ngram_size`
//! (0), `sequence_bias` ([[[ids], bias], ...]), `bad_words_ids` ([[ids], ...]),
//! `min_length` (0), `min_new_tokens` (0), `suppress_tokens` ([]), `begin_suppress_tokens`
//! ([]), `eos_token_id` (list, []), `pad_token_id` (0); beam sampling: `do_sample` (false)
//! with `seed` (0), `temperature` (1), `top_k` (0: off), `top_p` (1), `min_p` (off),
//! `typical_p` (1), `epsilon_cutoff` (0), `eta_cutoff` (0).
//!
//! Beam search applies the host's stop check (`rill_search_step.stops`, the generation's
//! stop strings) as transformers applies its stopping criteria to each candidate: a
//! continuation that completes a stop string finishes its hypothesis, like an end token.
//! Diverse beam search refuses it.

pub mod search;

use std::ffi::{c_char, c_int, c_void};

use rill_plugin_abi::*;
use search::{EarlyStopping, Params, Processors, Sampling, Search, Step};
use serde_json::Value;

fn parse(text: &str) -> Result<Params, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("params are not JSON: {e}"))?;
    let int = |key: &str, default: u64| -> Result<usize, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default as usize),
            Some(x) => x
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("`{key}` must be a non-negative integer, got {x}")),
        }
    };
    let float = |key: &str, default: f64| -> Result<f32, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default as f32),
            Some(x) => x
                .as_f64()
                .map(|n| n as f32)
                .ok_or_else(|| format!("`{key}` must be a number, got {x}")),
        }
    };
    let early_stopping = match v.get("early_stopping") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => EarlyStopping::False,
        Some(Value::Bool(true)) => EarlyStopping::True,
        Some(Value::String(s)) if s == "never" => EarlyStopping::Never,
        Some(other) => {
            return Err(format!(
                "early_stopping must be true, false or \"never\", got {other}"
            ))
        }
    };
    let eos = match v.get("eos_token_id") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .map(|n| n as u32)
                    .ok_or("eos_token_id entries must be ids")
            })
            .collect::<Result<_, _>>()?,
        Some(x) => vec![x
            .as_u64()
            .ok_or("eos_token_id must be an id or a list of ids")? as u32],
    };
    let list = |key: &str| -> Result<Value, String> {
        Ok(match v.get(key) {
            None | Some(Value::Null) => Value::Array(vec![]),
            Some(x) => x.clone(),
        })
    };
    let sequence_bias = serde_json::from_value(list("sequence_bias")?)
        .map_err(|e| format!("`sequence_bias` must be [[[ids], bias], ...]: {e}"))?;
    let bad_words_ids = serde_json::from_value(list("bad_words_ids")?)
        .map_err(|e| format!("`bad_words_ids` must be [[ids], ...]: {e}"))?;
    let ids = |key: &str| -> Result<Vec<u32>, String> {
        serde_json::from_value(list(key)?)
            .map_err(|e| format!("`{key}` must be a list of token ids: {e}"))
    };
    Ok(Params {
        processors: Processors {
            sequence_bias,
            bad_words_ids,
            min_length: int("min_length", 0)?,
            min_new_tokens: int("min_new_tokens", 0)?,
            suppress_tokens: ids("suppress_tokens")?,
            begin_suppress_tokens: ids("begin_suppress_tokens")?,
        },
        num_beams: int("num_beams", 0)?,
        num_beam_groups: int("num_beam_groups", 1)?,
        diversity_penalty: float("diversity_penalty", 0.0)?,
        length_penalty: float("length_penalty", 1.0)?,
        early_stopping,
        num_return_sequences: int("num_return_sequences", 1)?,
        repetition_penalty: float("repetition_penalty", 1.0)?,
        no_repeat_ngram_size: int("no_repeat_ngram_size", 0)?,
        eos,
        pad: int("pad_token_id", 0)? as u32,
        sampling: match v.get("do_sample") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(Sampling {
                seed: v.get("seed").and_then(Value::as_u64).unwrap_or(0),
                temperature: float("temperature", 1.0)?,
                top_k: int("top_k", 0)?,
                top_p: float("top_p", 1.0)?,
                min_p: match v.get("min_p") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(float("min_p", 0.0)?),
                },
                typical_p: float("typical_p", 1.0)?,
                epsilon_cutoff: float("epsilon_cutoff", 0.0)?,
                eta_cutoff: float("eta_cutoff", 0.0)?,
            }),
            Some(other) => return Err(format!("do_sample must be true or false, got {other}")),
        },
    })
}

unsafe extern "C" fn create(
    params: *const c_char,
    _host: *const rill_host,
    out: *mut *mut c_void,
    rows: *mut usize,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: per the ABI the host passes valid pointers.
    unsafe {
        guard(error, len, || {
            let text = params_text(params)?;
            let search = Search::new(parse(text)?)?;
            *rows = search.rows();
            *out = Box::into_raw(Box::new(search)) as *mut c_void;
            Ok(())
        })
    }
}

unsafe extern "C" fn step(
    state: *mut c_void,
    s: *const rill_search_step,
    choices: *mut rill_search_choice,
    done: *mut u8,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: per the ABI: a state from create, a valid step, n_rows writable choices.
    unsafe {
        guard(error, len, || {
            let search = &mut *(state as *mut Search);
            let s = &*s;
            let logits = std::slice::from_raw_parts(s.logits, s.n_rows * s.vocab_size);
            let tokens = std::slice::from_raw_parts(s.tokens, s.n_rows * s.length);
            // `stops` is read only from a host whose step struct has it.
            let stops = (s.struct_size as usize >= std::mem::size_of::<rill_search_step>())
                .then_some(s.stops)
                .flatten();
            let data = s.stop_data;
            let check = stops.map(|f| move |row: usize, token: u32| f(data, row, token) != 0);
            let step = Step {
                logits,
                vocab: s.vocab_size,
                rows: tokens.chunks(s.length.max(1)).take(s.n_rows).collect(),
                prompt_len: s.prompt_len,
                max_length: s.max_length,
                stops: check.as_ref().map(|c| c as &dyn Fn(usize, u32) -> bool),
            };
            match search.step(&step)? {
                Some(next) => {
                    let out = std::slice::from_raw_parts_mut(choices, s.n_rows);
                    for (o, (parent, token)) in out.iter_mut().zip(next) {
                        *o = rill_search_choice { parent, token };
                    }
                    *done = 0;
                }
                None => *done = 1,
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn n_results(state: *const c_void) -> usize {
    // SAFETY: a state from create.
    unsafe { (*(state as *const Search)).results().len() }
}

unsafe extern "C" fn result(
    state: *const c_void,
    i: usize,
    tokens: *mut *const u32,
    length: *mut usize,
    score: *mut f32,
) -> c_int {
    // SAFETY: a state from create; valid out-pointers.
    unsafe {
        let Some((t, s)) = (*(state as *const Search)).results().get(i) else {
            return RILL_PLUGIN_ERROR;
        };
        *tokens = t.as_ptr();
        *length = t.len();
        *score = *s;
        RILL_PLUGIN_OK
    }
}

unsafe extern "C" fn destroy(state: *mut c_void) {
    if !state.is_null() {
        // SAFETY: a state from create, destroyed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(state as *mut Search) }));
    }
}

static BEAM: rill_search_vtable = rill_search_vtable {
    abi_version: RILL_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<rill_search_vtable>() as u32,
    name: c"beam".as_ptr(),
    create: Some(create),
    step: Some(step),
    n_results: Some(n_results),
    result: Some(result),
    destroy: Some(destroy),
    flags: RILL_SEARCH_APPLIES_STOPS,
};

struct List([*const rill_search_vtable; 1]);
// SAFETY: a pointer to an immutable static.
unsafe impl Sync for List {}
static STRATEGIES: List = List([&BEAM]);

static TABLE: rill_plugin_table = rill_plugin_table {
    abi_version: RILL_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<rill_plugin_table>() as u32,
    plugin_name: c"rill-beam".as_ptr(),
    n_samplers: 0,
    samplers: std::ptr::null(),
    n_strategies: 1,
    strategies: &STRATEGIES.0 as *const _ as *const *const rill_search_vtable,
};

plugin_entry!(
    /// The entry of the beam-search plugin (registered statically by the runtime).
    rill_beam_entry,
    &TABLE
);
