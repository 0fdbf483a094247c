//! One sampler instance (a plugin's state for one session) and the checks on everything it
//! hands back.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use rill_plugin_abi::*;

use super::{find_sampler, message, Plugin, HOST};
use crate::error::{Result, RillError};

/// The candidate list of one step, owned by the host.
pub struct Candidates {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Their logits.
    pub logits: Vec<f32>,
    /// Live candidates.
    pub size: usize,
    /// Chosen index, or -1.
    pub selected: i64,
    /// Sorted by logit, descending.
    pub sorted: bool,
    /// How many live candidates are -inf (counted by the last check).
    pub removed: usize,
}

impl Candidates {
    /// Every token of the vocabulary with its logit.
    pub fn full(logits: &[f32]) -> Self {
        Candidates {
            ids: (0..logits.len() as u32).collect(),
            logits: logits.to_vec(),
            size: logits.len(),
            selected: -1,
            sorted: false,
            removed: 0,
        }
    }

    /// Refills with every token of the vocabulary, reusing the buffers.
    pub fn refill(&mut self, logits: &[f32]) {
        let n = logits.len();
        if self.ids.len() != n {
            self.ids = (0..n as u32).collect();
        } else {
            for (i, id) in self.ids.iter_mut().enumerate() {
                *id = i as u32;
            }
        }
        self.logits.clear();
        self.logits.extend_from_slice(logits);
        (self.size, self.selected, self.sorted, self.removed) = (n, -1, false, 0);
    }

    /// Drops removed (-inf) candidates, keeping the order of the rest (and at least one),
    /// so later samplers see only what can still be chosen. Probabilities are unchanged:
    /// a -inf logit has probability zero. Only before a selection is made.
    pub fn compact(&mut self) {
        if self.selected >= 0 || self.removed == 0 || self.removed == self.size {
            return;
        }
        const BLOCK: usize = 16;
        let mut w = 0;
        for start in (0..self.size).step_by(BLOCK) {
            let end = (start + BLOCK).min(self.size);
            // After top-k almost every block is all -inf: one vectorised test skips it.
            let removed = self.logits[start..end]
                .iter()
                .fold(true, |all, &l| all & (l == f32::NEG_INFINITY));
            if removed {
                continue;
            }
            for r in start..end {
                if self.logits[r] != f32::NEG_INFINITY {
                    self.ids[w] = self.ids[r];
                    self.logits[w] = self.logits[r];
                    w += 1;
                }
            }
        }
        self.size = w;
        self.removed = 0;
    }
}

/// What the host checks in the candidates a sampler hands back, in one pass.
#[derive(Debug, PartialEq)]
struct CandidateCheck {
    /// The largest id.
    max_id: u32,
    /// Whether a logit is NaN or +inf.
    bad: bool,
    /// How many logits are -inf.
    removed: usize,
}

impl CandidateCheck {
    /// One branch-free pass over 32-bit lanes (the compiler vectorises it; it runs after
    /// every sampler over up to the whole vocabulary). The culprit of a failure is looked
    /// for afterwards.
    fn of(ids: &[u32], logits: &[f32]) -> Self {
        const NEG_INF: u32 = 0xff80_0000;
        const POS_INF: u32 = 0x7f80_0000;
        let (mut max_id, mut bad, mut removed) = (0u32, 0u32, 0usize);
        for (ids, logits) in ids.chunks(1 << 16).zip(logits.chunks(1 << 16)) {
            let mut chunk_removed = 0u32;
            for (&id, &l) in ids.iter().zip(logits) {
                let bits = l.to_bits();
                max_id = max_id.max(id);
                // NaN: exponent all ones, mantissa not zero (either sign); or +inf.
                bad |= u32::from((bits & 0x7fff_ffff) > POS_INF) | u32::from(bits == POS_INF);
                chunk_removed += u32::from(bits == NEG_INF);
            }
            removed += chunk_removed as usize;
        }
        CandidateCheck {
            max_id,
            bad: bad != 0,
            removed,
        }
    }
}

/// What samplers may read about the vocabulary (`rill_sampler_context.token_bytes`,
/// `eos_ids`): each token's bytes and the generation's end-of-sequence ids.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    /// Each token's bytes.
    pub bytes: Arc<crate::vocabulary::TokenBytes>,
    /// End-of-sequence ids.
    pub eos: Vec<u32>,
}

/// `rill_sampler_context.token_bytes`: token `id`'s bytes from the table behind
/// `vocabulary`.
unsafe extern "C" fn token_bytes(vocabulary: *const c_void, id: u32, len: *mut usize) -> *const u8 {
    // SAFETY: the host passes its own table, alive during the call (and the model's life).
    let table = unsafe { &*(vocabulary as *const crate::vocabulary::TokenBytes) };
    let (ptr, n) = table
        .get(id)
        .map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()));
    if !len.is_null() {
        // SAFETY: a caller's out-pointer, checked non-NULL.
        unsafe { *len = n };
    }
    ptr
}

/// A sampler created from a plugin, destroyed on drop.
pub struct PluginSampler {
    plugin: Arc<Plugin>,
    /// The host's copy of the plugin's table.
    vtable: rill_sampler_vtable,
    name: String,
    state: *mut c_void,
}

// SAFETY: a state is used by one thread at a time (it lives in one session), as the ABI
// requires.
unsafe impl Send for PluginSampler {}

impl PluginSampler {
    /// Creates the sampler `name` with JSON `params` (an object).
    pub fn create(name: &str, params: &str) -> Result<Self> {
        let (plugin, vtable) = find_sampler(name)?;
        let params_c = CString::new(params)
            .map_err(|_| RillError::InvalidArgument("sampler params contain NUL".into()))?;
        let mut state = std::ptr::null_mut();
        let mut error = [0 as c_char; 512];
        let create = vtable.create.expect("checked at registration");
        // SAFETY: calling the plugin per the ABI with valid buffers.
        let status = unsafe {
            create(
                params_c.as_ptr(),
                &HOST.0,
                &mut state,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        let s = PluginSampler {
            plugin,
            vtable,
            name: name.to_string(),
            state,
        };
        if status != RILL_PLUGIN_OK {
            return Err(s.error(format!(
                "cannot create with params {params}: {}",
                message(&error)
            )));
        }
        Ok(s)
    }

    fn error(&self, message: String) -> RillError {
        RillError::Plugin(format!(
            "sampler `{}` of plugin `{}`: {message}",
            self.name, self.plugin.name
        ))
    }

    /// The sampler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies the sampler to `c` and checks the result: size not grown, ids inside the
    /// vocabulary, logits finite or -inf, selection inside the live candidates.
    /// `vocabulary` (token bytes, end ids) reaches the sampler when given.
    pub fn apply(
        &mut self,
        c: &mut Candidates,
        tokens: &[u32],
        n_prompt: usize,
        vocab: usize,
        random: &mut dyn FnMut() -> f64,
        vocabulary: Option<&Vocabulary>,
    ) -> Result<()> {
        unsafe extern "C" fn draw(data: *mut c_void) -> f64 {
            // SAFETY: data is the &mut dyn FnMut passed below, alive during the call.
            let f = unsafe { &mut *(data as *mut &mut dyn FnMut() -> f64) };
            f()
        }
        let mut random_ref: &mut dyn FnMut() -> f64 = random;
        let ctx = rill_sampler_context {
            abi_version: RILL_PLUGIN_ABI_VERSION,
            struct_size: std::mem::size_of::<rill_sampler_context>() as u32,
            tokens: tokens.as_ptr(),
            n_tokens: tokens.len(),
            n_prompt,
            vocab_size: vocab,
            random: Some(draw),
            random_data: &mut random_ref as *mut &mut dyn FnMut() -> f64 as *mut c_void,
            token_bytes: vocabulary.map(|_| token_bytes as TokenBytesFn),
            vocabulary: vocabulary
                .map_or(std::ptr::null(), |v| Arc::as_ptr(&v.bytes) as *const c_void),
            eos_ids: vocabulary.map_or(std::ptr::null(), |v| v.eos.as_ptr()),
            n_eos: vocabulary.map_or(0, |v| v.eos.len()),
        };
        let before = c.size;
        let mut raw = rill_candidates {
            ids: c.ids.as_mut_ptr(),
            logits: c.logits.as_mut_ptr(),
            size: c.size,
            selected: c.selected,
            sorted: c.sorted as u8,
        };
        let mut error = [0 as c_char; 512];
        let apply = self.vtable.apply.expect("checked at registration");
        // SAFETY: calling the plugin per the ABI; buffers are valid for `size` entries.
        let status = unsafe { apply(self.state, &mut raw, &ctx, error.as_mut_ptr(), error.len()) };
        if status != RILL_PLUGIN_OK {
            return Err(self.error(message(&error)));
        }
        if raw.size > before || raw.ids != c.ids.as_mut_ptr() || raw.logits != c.logits.as_mut_ptr()
        {
            return Err(self.error(format!(
                "grew the candidate list ({before} -> {}) or replaced its arrays",
                raw.size
            )));
        }
        if raw.selected < -1 || raw.selected >= raw.size as i64 {
            return Err(self.error(format!(
                "selected candidate {} of {}",
                raw.selected, raw.size
            )));
        }
        let (ids, logits) = (&c.ids[..raw.size], &c.logits[..raw.size]);
        let CandidateCheck {
            max_id,
            bad,
            removed,
        } = CandidateCheck::of(ids, logits);
        if max_id as usize >= vocab && !ids.is_empty() {
            let bad = ids
                .iter()
                .find(|&&id| id as usize >= vocab)
                .expect("max is out of range");
            return Err(self.error(format!(
                "returned token id {bad} outside the vocabulary (size {vocab})"
            )));
        }
        if bad {
            let i = logits
                .iter()
                .position(|l| l.is_nan() || *l == f32::INFINITY)
                .expect("found above");
            return Err(self.error(format!("returned logit {} for token {}", logits[i], ids[i])));
        }
        c.removed = removed;
        c.size = raw.size;
        c.selected = raw.selected;
        c.sorted = raw.sorted != 0;
        Ok(())
    }

    /// Tells the sampler which token was chosen.
    pub fn accept(&mut self, token: u32) {
        if let Some(accept) = self.vtable.accept {
            // SAFETY: per the ABI.
            unsafe { accept(self.state, token) }
        }
    }
}

impl Drop for PluginSampler {
    fn drop(&mut self) {
        if !self.state.is_null() {
            let destroy = self.vtable.destroy.expect("checked at registration");
            // SAFETY: a state from create, destroyed once.
            unsafe { destroy(self.state) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CandidateCheck;

    #[test]
    fn the_check_finds_nan_positive_infinity_and_counts_removed() {
        let ids: Vec<u32> = (0..200_000).collect();
        let mut logits: Vec<f32> = ids.iter().map(|&i| (i as f32 * 0.37).sin()).collect();
        let clean = CandidateCheck::of(&ids, &logits);
        assert_eq!(
            clean,
            CandidateCheck {
                max_id: 199_999,
                bad: false,
                removed: 0
            }
        );
        for i in [3, 70_000, 199_999] {
            logits[i] = f32::NEG_INFINITY;
        }
        assert_eq!(CandidateCheck::of(&ids, &logits).removed, 3);
        assert!(!CandidateCheck::of(&ids, &logits).bad, "-inf is a removal");
        for bad in [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::from_bits(0x7f80_0001),
        ] {
            let mut l = logits.clone();
            l[131_072] = bad;
            assert!(CandidateCheck::of(&ids, &l).bad, "{bad} is refused");
        }
        let mut l = logits.clone();
        l[5] = f32::MAX;
        assert!(
            !CandidateCheck::of(&ids, &l).bad,
            "the largest finite value is fine"
        );
    }
}
