//! The standard samplers as a plugin table, through the same ABI as any plugin
//! (`include/rill_plugin.h`): the runtime registers [`rill_samplers_entry`] statically;
//! with the feature `export-entry` the cdylib exports it as `rill_plugin_entry` too.
//!
//! Names and parameters (JSON objects, Hugging Face meanings):
//! `temperature {"temperature"}`, `top_k {"top_k", "min_tokens_to_keep"}`,
//! `top_p {"top_p", "min_tokens_to_keep"}`, `min_p {"min_p", "min_tokens_to_keep"}`,
//! `typical_p {"typical_p", "min_tokens_to_keep"}`, `repetition_penalty {"penalty"}`,
//! `no_repeat_ngram {"size"}`, `sequence_bias {"sequence_bias": [[[ids], bias], ...]}`,
//! `bad_words {"bad_words_ids": [[ids], ...], "eos_token_id": [ids]}`,
//! `penalties {"presence_penalty", "frequency_penalty"}` (over generated tokens),
//! `suppress_tokens {"tokens": [ids]}`, `begin_suppress_tokens {"tokens": [ids]}` (the
//! first new token only), `min_length {"min_length", "eos_token_id": [ids]}` (all tokens),
//! `min_new_tokens {"min_new_tokens", "eos_token_id": [ids]}`,
//! `epsilon_cutoff {"epsilon", "min_tokens_to_keep"}`, `eta_cutoff {"epsilon",
//! "min_tokens_to_keep"}`, `greedy {}` (picks the argmax), `dist {}` (draws from the
//! softmax with the session's generator), `regex {"pattern"}` (keeps the generated text
//! a prefix of a full match, [`crate::pattern`]) and `json {"top", "max_depth",
//! "max_whitespace", "max_string_bytes"}` (a prefix of one JSON value,
//! [`crate::json`]); these two need the host's token text.

use std::ffi::{c_char, c_int, c_void};

use rill_plugin_abi::*;
use serde_json::Value;

use crate::constraint::TextConstraint;
use crate::json::Json;
use crate::pattern::Pattern;
use crate::processors;

/// One configured standard sampler.
#[derive(Clone, Debug)]
enum Standard {
    Temperature(f32),
    TopK(usize, usize),
    TopP(f32, usize),
    MinP(f32, usize),
    TypicalP(f32, usize),
    RepetitionPenalty(f32),
    NoRepeatNgram(usize),
    SequenceBias(Vec<(Vec<u32>, f32)>),
    BadWords(Vec<Vec<u32>>, Vec<u32>),
    Penalties(f32, f32),
    /// Sorted, deduplicated ids.
    Suppress(Vec<u32>),
    BeginSuppress(Vec<u32>),
    /// Minimum length counting all tokens, end-of-sequence ids.
    MinLength(usize, Vec<u32>),
    /// Minimum count of new tokens, end-of-sequence ids.
    MinNewTokens(usize, Vec<u32>),
    EpsilonCutoff(f32, usize),
    EtaCutoff(f32, usize),
    Greedy,
    Dist,
}

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("missing number `{key}` in {v}"))
}

fn ids(v: &Value, key: &str) -> Result<Vec<u32>, String> {
    let mut ids: Vec<u32> =
        serde_json::from_value(v.get(key).cloned().unwrap_or(Value::Array(vec![])))
            .map_err(|e| format!("`{key}` must be a list of token ids: {e}"))?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn cutoff(v: &Value) -> Result<f32, String> {
    let e = number(v, "epsilon")?;
    if e > 0.0 && e < 1.0 {
        Ok(e as f32)
    } else {
        Err(format!("epsilon must be in (0, 1), got {e}"))
    }
}

fn keep(v: &Value) -> usize {
    v.get("min_tokens_to_keep")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize
}

impl Standard {
    fn parse(kind: &str, params: &str) -> Result<Standard, String> {
        let v: Value =
            serde_json::from_str(params).map_err(|e| format!("params are not JSON: {e}"))?;
        if !v.is_object() {
            return Err(format!("params must be a JSON object, got {v}"));
        }
        let unit = |x: f64, name: &str| {
            if x > 0.0 && x <= 1.0 {
                Ok(x as f32)
            } else {
                Err(format!("{name} must be in (0, 1], got {x}"))
            }
        };
        Ok(match kind {
            "temperature" => {
                let t = number(&v, "temperature")?;
                if !(t > 0.0 && t.is_finite()) {
                    return Err(format!("temperature must be positive, got {t}"));
                }
                Standard::Temperature(t as f32)
            }
            "top_k" => Standard::TopK(number(&v, "top_k")? as usize, keep(&v)),
            "top_p" => Standard::TopP(unit(number(&v, "top_p")?, "top_p")?, keep(&v)),
            "min_p" => Standard::MinP(number(&v, "min_p")?.clamp(0.0, 1.0) as f32, keep(&v)),
            "typical_p" => {
                Standard::TypicalP(unit(number(&v, "typical_p")?, "typical_p")?, keep(&v))
            }
            "repetition_penalty" => {
                let p = number(&v, "penalty")?;
                if !(p > 0.0 && p.is_finite()) {
                    return Err(format!("penalty must be positive, got {p}"));
                }
                Standard::RepetitionPenalty(p as f32)
            }
            "no_repeat_ngram" => Standard::NoRepeatNgram(number(&v, "size")? as usize),
            "sequence_bias" => Standard::SequenceBias(
                serde_json::from_value(v.get("sequence_bias").cloned().unwrap_or(Value::Null))
                    .map_err(|e| format!("`sequence_bias` must be [[[ids], bias], ...]: {e}"))?,
            ),
            "bad_words" => Standard::BadWords(
                serde_json::from_value(v.get("bad_words_ids").cloned().unwrap_or(Value::Null))
                    .map_err(|e| format!("`bad_words_ids` must be [[ids], ...]: {e}"))?,
                serde_json::from_value(
                    v.get("eos_token_id")
                        .cloned()
                        .unwrap_or(Value::Array(vec![])),
                )
                .map_err(|e| format!("`eos_token_id` must be a list of ids: {e}"))?,
            ),
            "penalties" => Standard::Penalties(
                v.get("presence_penalty")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0) as f32,
                v.get("frequency_penalty")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0) as f32,
            ),
            "suppress_tokens" => Standard::Suppress(ids(&v, "tokens")?),
            "begin_suppress_tokens" => Standard::BeginSuppress(ids(&v, "tokens")?),
            "min_length" => {
                Standard::MinLength(number(&v, "min_length")? as usize, ids(&v, "eos_token_id")?)
            }
            "min_new_tokens" => Standard::MinNewTokens(
                number(&v, "min_new_tokens")? as usize,
                ids(&v, "eos_token_id")?,
            ),
            "epsilon_cutoff" => Standard::EpsilonCutoff(cutoff(&v)?, keep(&v)),
            "eta_cutoff" => Standard::EtaCutoff(cutoff(&v)?, keep(&v)),
            "greedy" => Standard::Greedy,
            "dist" => Standard::Dist,
            other => return Err(format!("no standard sampler `{other}`")),
        })
    }

    /// Applies to candidates (ids + logits of equal length); returns a selected index.
    fn apply(
        &self,
        ids: &[u32],
        logits: &mut [f32],
        tokens: &[u32],
        n_prompt: usize,
        vocab: usize,
        draw: impl FnOnce() -> f64,
    ) -> Option<usize> {
        match *self {
            Standard::Temperature(t) => processors::temperature(logits, t),
            Standard::TopK(k, m) => processors::top_k(logits, k, m),
            Standard::TopP(p, m) => processors::top_p(logits, p, m),
            Standard::MinP(p, m) => processors::min_p(logits, p, m),
            Standard::TypicalP(p, m) => processors::typical_p(logits, p, m),
            Standard::RepetitionPenalty(p) => {
                let penalize = |x: &mut f32| *x = if *x < 0.0 { *x * p } else { *x / p };
                // Candidates still in id order (as the whole vocabulary comes to the
                // chain's first sampler): the context's tokens are found by index.
                if at_their_index(ids, vocab, tokens) {
                    let mut seen = tokens.to_vec();
                    seen.sort_unstable();
                    seen.dedup();
                    for t in seen {
                        penalize(&mut logits[t as usize]);
                    }
                    return None;
                }
                let mut seen = vec![false; vocab];
                for &t in tokens {
                    if let Some(s) = seen.get_mut(t as usize) {
                        *s = true;
                    }
                }
                for (id, x) in ids.iter().zip(logits.iter_mut()) {
                    if seen.get(*id as usize).copied().unwrap_or(false) {
                        penalize(x);
                    }
                }
            }
            Standard::NoRepeatNgram(n) => {
                let banned = processors::banned_ngram_tokens(tokens, n);
                for (id, x) in ids.iter().zip(logits.iter_mut()) {
                    if banned.contains(id) {
                        *x = f32::NEG_INFINITY;
                    }
                }
            }
            Standard::SequenceBias(ref biases) => by_id(ids, logits, vocab, |full| {
                processors::sequence_bias(full, tokens, biases)
            }),
            Standard::BadWords(ref words, ref eos) => by_id(ids, logits, vocab, |full| {
                processors::bad_words(full, tokens, words, eos)
            }),
            Standard::Penalties(presence, frequency) => {
                let generated = &tokens[n_prompt.min(tokens.len())..];
                by_id(ids, logits, vocab, |full| {
                    processors::presence_frequency(full, generated, presence, frequency)
                })
            }
            Standard::Suppress(ref suppressed) => suppress_ids(ids, logits, vocab, suppressed),
            Standard::BeginSuppress(ref suppressed) => {
                if tokens.len() == n_prompt {
                    suppress_ids(ids, logits, vocab, suppressed);
                }
            }
            Standard::MinLength(minimum, ref eos) => {
                if tokens.len() < minimum {
                    suppress_ids(ids, logits, vocab, eos);
                }
            }
            Standard::MinNewTokens(minimum, ref eos) => {
                if tokens.len().saturating_sub(n_prompt) < minimum {
                    suppress_ids(ids, logits, vocab, eos);
                }
            }
            Standard::EpsilonCutoff(e, m) => processors::epsilon_cutoff(logits, e, m),
            Standard::EtaCutoff(e, m) => processors::eta_cutoff(logits, e, m),
            Standard::Greedy => {
                return logits
                    .iter()
                    .enumerate()
                    .fold(None, |best: Option<(usize, f32)>, (i, &x)| match best {
                        Some((_, b)) if b >= x => best,
                        _ => Some((i, x)),
                    })
                    .map(|(i, _)| i);
            }
            Standard::Dist => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let weights: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
                let mut target = draw() * weights.iter().sum::<f64>();
                let mut last = None;
                for (i, w) in weights.iter().enumerate() {
                    if *w > 0.0 {
                        last = Some(i);
                        if target < *w {
                            return Some(i);
                        }
                        target -= w;
                    }
                }
                return last;
            }
        }
        None
    }
}

/// Whether every id of `tokens` inside the vocabulary is the candidate at its own index,
/// so that it can be found by index instead of by a pass over the candidates (the whole
/// vocabulary reaches the chain's first sampler in id order; compaction then shifts ids
/// down, and an id past the compacted list is not known to be absent).
fn at_their_index(ids: &[u32], vocab: usize, tokens: &[u32]) -> bool {
    tokens
        .iter()
        .all(|&t| t as usize >= vocab || ids.get(t as usize) == Some(&t))
}

/// Sets the logits of the candidates whose id is in `suppressed` (sorted) to `-inf`.
fn suppress_ids(ids: &[u32], logits: &mut [f32], vocab: usize, suppressed: &[u32]) {
    if at_their_index(ids, vocab, suppressed) {
        for &t in suppressed {
            if let Some(x) = logits.get_mut(t as usize) {
                *x = f32::NEG_INFINITY;
            }
        }
        return;
    }
    for (id, x) in ids.iter().zip(logits.iter_mut()) {
        if suppressed.binary_search(id).is_ok() {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// Runs a full-vocabulary processor on candidates: scatter, process, gather (only the
/// changed entries are written back).
fn by_id(ids: &[u32], logits: &mut [f32], vocab: usize, f: impl FnOnce(&mut [f32])) {
    let mut full = vec![0f32; vocab];
    for (&id, &l) in ids.iter().zip(logits.iter()) {
        if let Some(x) = full.get_mut(id as usize) {
            *x = l;
        }
    }
    f(&mut full);
    for (&id, l) in ids.iter().zip(logits.iter_mut()) {
        if let Some(x) = full.get(id as usize) {
            *l = *x;
        }
    }
}

struct State {
    kind: Standard,
}

macro_rules! standard_sampler {
    ($vtable:ident, $create:ident, $name:literal) => {
        unsafe extern "C" fn $create(
            params: *const c_char,
            _host: *const rill_host,
            out: *mut *mut c_void,
            error: *mut c_char,
            len: usize,
        ) -> c_int {
            // SAFETY: the host passes a valid error buffer, params and out-pointer.
            unsafe { create($name, params, out, error, len) }
        }
        sampler_vtable!(
            $vtable,
            $name,
            $create,
            apply,
            clone_state::<State>,
            destroy_state::<State>
        );
    };
}

/// A sampler's static vtable (no `accept`, no `reset`: state is recomputed from the
/// context each step).
macro_rules! sampler_vtable {
    ($vtable:ident, $name:literal, $create:ident, $apply:ident, $clone:expr, $destroy:expr) => {
        static $vtable: rill_sampler_vtable = rill_sampler_vtable {
            abi_version: RILL_PLUGIN_ABI_VERSION,
            struct_size: std::mem::size_of::<rill_sampler_vtable>() as u32,
            name: concat!($name, "\0").as_ptr() as *const c_char,
            create: Some($create),
            apply: Some($apply),
            accept: None,
            reset: None,
            clone: Some($clone),
            destroy: Some($destroy),
        };
    };
}

standard_sampler!(TEMPERATURE, create_temperature, "temperature");
standard_sampler!(TOP_K, create_top_k, "top_k");
standard_sampler!(TOP_P, create_top_p, "top_p");
standard_sampler!(MIN_P, create_min_p, "min_p");
standard_sampler!(TYPICAL_P, create_typical_p, "typical_p");
standard_sampler!(
    REPETITION_PENALTY,
    create_repetition_penalty,
    "repetition_penalty"
);
standard_sampler!(NO_REPEAT_NGRAM, create_no_repeat_ngram, "no_repeat_ngram");
standard_sampler!(SEQUENCE_BIAS, create_sequence_bias, "sequence_bias");
standard_sampler!(BAD_WORDS, create_bad_words, "bad_words");
standard_sampler!(PENALTIES, create_penalties, "penalties");
standard_sampler!(SUPPRESS_TOKENS, create_suppress_tokens, "suppress_tokens");
standard_sampler!(
    BEGIN_SUPPRESS_TOKENS,
    create_begin_suppress_tokens,
    "begin_suppress_tokens"
);
standard_sampler!(MIN_LENGTH, create_min_length, "min_length");
standard_sampler!(MIN_NEW_TOKENS, create_min_new_tokens, "min_new_tokens");
standard_sampler!(EPSILON_CUTOFF, create_epsilon_cutoff, "epsilon_cutoff");
standard_sampler!(ETA_CUTOFF, create_eta_cutoff, "eta_cutoff");
standard_sampler!(GREEDY, create_greedy, "greedy");
standard_sampler!(DIST, create_dist, "dist");

unsafe fn create(
    kind: &str,
    params: *const c_char,
    out: *mut *mut c_void,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: forwarded from the extern functions above.
    unsafe {
        guard(error, len, || {
            let text = params_text(params)?;
            let state = Box::new(State {
                kind: Standard::parse(kind, text)?,
            });
            *out = Box::into_raw(state) as *mut c_void;
            Ok(())
        })
    }
}

unsafe extern "C" fn apply(
    state: *mut c_void,
    c: *mut rill_candidates,
    ctx: *const rill_sampler_context,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: the host passes the state from create and valid candidates and context.
    unsafe {
        guard(error, len, || {
            let state = &*(state as *const State);
            let (c, ctx) = (&mut *c, &*ctx);
            let (ids, logits) = c.live();
            let tokens = ctx.tokens();
            let draw = || ctx.random.map_or(0.0, |r| r(ctx.random_data));
            if let Some(i) =
                state
                    .kind
                    .apply(ids, logits, tokens, ctx.n_prompt, ctx.vocab_size, draw)
            {
                c.selected = i as i64;
            }
            Ok(())
        })
    }
}

/// A sampler's state as `clone` copies it: the standard samplers' settings, a
/// constraint with nothing generated yet.
trait Duplicate {
    fn duplicate(&self) -> Self;
}

impl Duplicate for State {
    fn duplicate(&self) -> Self {
        State {
            kind: self.kind.clone(),
        }
    }
}

impl Duplicate for ConstraintBox {
    fn duplicate(&self) -> Self {
        self.fresh_box()
    }
}

/// `clone` of a sampler whose state is a boxed `T`.
unsafe extern "C" fn clone_state<T: Duplicate>(
    state: *const c_void,
    out: *mut *mut c_void,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: a state from create; a valid out-pointer.
    unsafe {
        guard(error, len, || {
            let copy = (*(state as *const T)).duplicate();
            *out = Box::into_raw(Box::new(copy)) as *mut c_void;
            Ok(())
        })
    }
}

/// `destroy` of a sampler whose state is a boxed `T`.
unsafe extern "C" fn destroy_state<T>(state: *mut c_void) {
    if !state.is_null() {
        // SAFETY: a state from create or clone, destroyed once.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(state as *mut T) }));
    }
}

/// A constraint sampler's state: one boxed [`TextConstraint`] (a thin pointer for C).
type ConstraintBox = Box<dyn TextConstraint>;

/// `create` of a constraint sampler: `make` builds it from the JSON params.
unsafe fn create_constraint(
    params: *const c_char,
    out: *mut *mut c_void,
    error: *mut c_char,
    len: usize,
    make: fn(&Value) -> Result<ConstraintBox, String>,
) -> c_int {
    // SAFETY: forwarded from the extern functions below.
    unsafe {
        guard(error, len, || {
            let text = params_text(params)?;
            let v: Value =
                serde_json::from_str(text).map_err(|e| format!("params are not JSON: {e}"))?;
            if !v.is_object() {
                return Err(format!("params must be a JSON object, got {v}"));
            }
            *out = Box::into_raw(Box::new(make(&v)?)) as *mut c_void;
            Ok(())
        })
    }
}

/// `regex {"pattern"}`: see [`crate::pattern`].
unsafe extern "C" fn create_regex(
    params: *const c_char,
    _host: *const rill_host,
    out: *mut *mut c_void,
    error: *mut c_char,
    len: usize,
) -> c_int {
    let make = |v: &Value| -> Result<ConstraintBox, String> {
        let source = v
            .get("pattern")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing string `pattern` in {v}"))?;
        Ok(Box::new(Pattern::constraint(source)?))
    };
    // SAFETY: the host passes a valid error buffer, params and out-pointer.
    unsafe { create_constraint(params, out, error, len, make) }
}

/// `json {"top", "max_depth", "max_whitespace", "max_string_bytes"}`: see
/// [`crate::json`].
unsafe extern "C" fn create_json(
    params: *const c_char,
    _host: *const rill_host,
    out: *mut *mut c_void,
    error: *mut c_char,
    len: usize,
) -> c_int {
    let make = |v: &Value| -> Result<ConstraintBox, String> { Ok(Box::new(Json::constraint(v)?)) };
    // SAFETY: the host passes a valid error buffer, params and out-pointer.
    unsafe { create_constraint(params, out, error, len, make) }
}

unsafe extern "C" fn apply_constraint(
    state: *mut c_void,
    c: *mut rill_candidates,
    ctx: *const rill_sampler_context,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: the host passes the state from create and valid candidates and context.
    unsafe {
        guard(error, len, || {
            let constraint = &mut *(state as *mut ConstraintBox);
            let (c, ctx) = (&mut *c, &*ctx);
            if ctx.token_bytes(0).is_none() {
                return Err(
                    "needs the host to give token text (rill_sampler_context.token_bytes)".into(),
                );
            }
            let (ids, logits) = c.live();
            let tokens = ctx.tokens();
            let generated = &tokens[ctx.n_prompt.min(tokens.len())..];
            let bytes_of = |id: u32| ctx.token_bytes(id);
            constraint.restrict(
                ids,
                logits,
                generated,
                ctx.eos_ids(),
                ctx.vocab_size,
                &bytes_of,
            )?;
            Ok(())
        })
    }
}

sampler_vtable!(
    REGEX,
    "regex",
    create_regex,
    apply_constraint,
    clone_state::<ConstraintBox>,
    destroy_state::<ConstraintBox>
);
sampler_vtable!(
    JSON,
    "json",
    create_json,
    apply_constraint,
    clone_state::<ConstraintBox>,
    destroy_state::<ConstraintBox>
);

struct Samplers([*const rill_sampler_vtable; 20]);
// SAFETY: pointers to immutable statics.
unsafe impl Sync for Samplers {}

static SAMPLERS: Samplers = Samplers([
    &TEMPERATURE,
    &TOP_K,
    &TOP_P,
    &MIN_P,
    &TYPICAL_P,
    &REPETITION_PENALTY,
    &NO_REPEAT_NGRAM,
    &SEQUENCE_BIAS,
    &BAD_WORDS,
    &PENALTIES,
    &SUPPRESS_TOKENS,
    &BEGIN_SUPPRESS_TOKENS,
    &MIN_LENGTH,
    &MIN_NEW_TOKENS,
    &EPSILON_CUTOFF,
    &ETA_CUTOFF,
    &GREEDY,
    &DIST,
    &REGEX,
    &JSON,
]);

static TABLE: rill_plugin_table = rill_plugin_table {
    abi_version: RILL_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<rill_plugin_table>() as u32,
    plugin_name: c"rill-samplers".as_ptr(),
    n_samplers: SAMPLERS.0.len(),
    samplers: &SAMPLERS.0 as *const _ as *const *const rill_sampler_vtable,
    n_strategies: 0,
    strategies: std::ptr::null(),
};

plugin_entry!(
    /// The entry of the standard samplers (registered statically by the runtime).
    rill_samplers_entry,
    &TABLE
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_on_candidates_matches_the_full_vocabulary_processor() {
        let vocab = 1000;
        let logits: Vec<f32> = (0..vocab).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let context: Vec<u32> = vec![5, 17, 5, 999, 0, 412, 17];
        let mut expected = logits.clone();
        processors::repetition_penalty(&mut expected, &context, 1.3);
        let penalty = Standard::RepetitionPenalty(1.3);
        // The whole vocabulary in id order (the index path) ...
        let ids: Vec<u32> = (0..vocab as u32).collect();
        let mut got = logits.clone();
        assert_eq!(
            penalty.apply(&ids, &mut got, &context, 3, vocab, || 0.5),
            None
        );
        assert_eq!(got, expected);
        // ... and a shuffled, shortened list (the pass over every candidate).
        let ids: Vec<u32> = (0..vocab as u32).rev().step_by(3).collect();
        let mut got: Vec<f32> = ids.iter().map(|&i| logits[i as usize]).collect();
        penalty.apply(&ids, &mut got, &context, 3, vocab, || 0.5);
        let want: Vec<f32> = ids.iter().map(|&i| expected[i as usize]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn suppression_on_candidates_matches_the_full_vocabulary_processors() {
        let vocab = 300;
        let logits: Vec<f32> = (0..vocab).map(|i| (i as f32 * 0.3).cos()).collect();
        let parse = |kind: &str, params: &str| Standard::parse(kind, params).unwrap();
        let suppress = parse(
            "suppress_tokens",
            r#"{"tokens": [299, 250, 7, 7, 9999, 0]}"#,
        );
        let mut expected = logits.clone();
        processors::suppress_tokens(&mut expected, &[299, 250, 7, 9999, 0]);
        let in_order: Vec<u32> = (0..vocab as u32).collect();
        let shuffled: Vec<u32> = (0..vocab as u32).rev().step_by(2).collect();
        // Compacted after a lower id was removed: ids from 251 on sit one place down.
        let compacted: Vec<u32> = (0..vocab as u32).filter(|&i| i != 100).collect();
        for ids in [&in_order, &shuffled, &compacted] {
            let mut got: Vec<f32> = ids.iter().map(|&i| logits[i as usize]).collect();
            suppress.apply(ids, &mut got, &[1, 2], 2, vocab, || 0.5);
            let want: Vec<f32> = ids.iter().map(|&i| expected[i as usize]).collect();
            assert_eq!(got, want);
        }
        // Length conditions: 3 tokens so far, 2 of them the prompt (1 new).
        let eos_at = |kind: &str, params: &str, n_prompt: usize| {
            let mut got = logits.clone();
            parse(kind, params).apply(&in_order, &mut got, &[4, 5, 6], n_prompt, vocab, || 0.5);
            got[1] == f32::NEG_INFINITY
        };
        assert!(eos_at(
            "min_new_tokens",
            r#"{"min_new_tokens": 2, "eos_token_id": [1]}"#,
            2
        ));
        assert!(!eos_at(
            "min_new_tokens",
            r#"{"min_new_tokens": 1, "eos_token_id": [1]}"#,
            2
        ));
        assert!(eos_at(
            "min_length",
            r#"{"min_length": 4, "eos_token_id": [1]}"#,
            2
        ));
        assert!(!eos_at(
            "min_length",
            r#"{"min_length": 3, "eos_token_id": [1]}"#,
            2
        ));
        assert!(eos_at("begin_suppress_tokens", r#"{"tokens": [1]}"#, 3));
        assert!(!eos_at("begin_suppress_tokens", r#"{"tokens": [1]}"#, 2));
        assert!(Standard::parse("epsilon_cutoff", r#"{"epsilon": 1.0}"#).is_err());
        assert!(Standard::parse("suppress_tokens", r#"{"tokens": [-1]}"#).is_err());
    }
}
