//! One search-strategy instance (a plugin's state for one search) and the checks on what
//! it hands back.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use rill_plugin_abi::*;

use super::{find_strategy, message, Plugin, HOST};
use crate::error::{Result, RillError};

/// A search strategy created from a plugin, destroyed on drop.
pub struct PluginStrategy {
    plugin: Arc<Plugin>,
    /// The host's copy of the plugin's table.
    vtable: rill_search_vtable,
    name: String,
    state: *mut c_void,
    rows: usize,
}

// SAFETY: a state is used by one thread at a time.
unsafe impl Send for PluginStrategy {}

impl PluginStrategy {
    /// Creates the strategy `name` with JSON `params`.
    pub fn create(name: &str, params: &str) -> Result<Self> {
        let (plugin, vtable) = find_strategy(name)?;
        let params_c = CString::new(params)
            .map_err(|_| RillError::InvalidArgument("strategy params contain NUL".into()))?;
        let (mut state, mut rows) = (std::ptr::null_mut(), 0usize);
        let mut error = [0 as c_char; 512];
        let create = vtable.create.expect("checked at registration");
        // SAFETY: per the ABI, with valid buffers.
        let status = unsafe {
            create(
                params_c.as_ptr(),
                &HOST.0,
                &mut state,
                &mut rows,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        let s = PluginStrategy {
            plugin,
            vtable,
            name: name.to_string(),
            state,
            rows,
        };
        if status != RILL_PLUGIN_OK {
            return Err(s.error(format!(
                "cannot create with params {params}: {}",
                message(&error)
            )));
        }
        if rows == 0 || rows > 4096 {
            return Err(s.error(format!("asked for {rows} rows")));
        }
        Ok(s)
    }

    fn error(&self, message: String) -> RillError {
        RillError::Plugin(format!(
            "search strategy `{}` of plugin `{}`: {message}",
            self.name, self.plugin.name
        ))
    }

    /// Rows the model runs for it.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether it ends hypotheses where the host's stop check says so
    /// (`RILL_SEARCH_APPLIES_STOPS`).
    pub fn applies_stops(&self) -> bool {
        self.vtable.flags & RILL_SEARCH_APPLIES_STOPS != 0
    }

    /// One step over `logits` (`rows * vocab`) and the rows' tokens (`rows * length`):
    /// the (parent, token) choices, or None when the search ended. Checks every choice.
    /// `stops`, when given, says whether row `r` followed by token `t` completes a stop
    /// string (see [`PluginStrategy::applies_stops`]).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        logits: &[f32],
        vocab: usize,
        tokens: &[u32],
        length: usize,
        prompt_len: usize,
        max_length: usize,
        stops: Option<&mut dyn FnMut(usize, u32) -> bool>,
    ) -> Result<Option<Vec<rill_search_choice>>> {
        let mut stops = stops;
        let (stops_fn, stop_data) = match stops.as_mut() {
            Some(f) => (
                Some(stops_trampoline as StopsFn),
                f as *mut &mut dyn FnMut(usize, u32) -> bool as *mut c_void,
            ),
            None => (None, std::ptr::null_mut()),
        };
        let step = rill_search_step {
            abi_version: RILL_PLUGIN_ABI_VERSION,
            struct_size: std::mem::size_of::<rill_search_step>() as u32,
            n_rows: self.rows,
            vocab_size: vocab,
            logits: logits.as_ptr(),
            tokens: tokens.as_ptr(),
            length,
            prompt_len,
            max_length,
            stops: stops_fn,
            stop_data,
        };
        let mut choices = vec![rill_search_choice::default(); self.rows];
        let mut done = 0u8;
        let mut error = [0 as c_char; 512];
        let f = self.vtable.step.expect("checked at registration");
        // SAFETY: per the ABI; `choices` has n_rows entries.
        let status = unsafe {
            f(
                self.state,
                &step,
                choices.as_mut_ptr(),
                &mut done,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        if status != RILL_PLUGIN_OK {
            return Err(self.error(message(&error)));
        }
        if done != 0 {
            return Ok(None);
        }
        if let Some(c) = choices
            .iter()
            .find(|c| c.parent as usize >= self.rows || c.token as usize >= vocab)
        {
            return Err(self.error(format!(
                "chose parent {} token {} (rows {}, vocabulary {vocab})",
                c.parent, c.token, self.rows
            )));
        }
        Ok(Some(choices))
    }

    /// The hypotheses (tokens, score), best first, after the search ended. Checked.
    pub fn results(&self, vocab: usize) -> Result<Vec<(Vec<u32>, f32)>> {
        let n = self.vtable.n_results.expect("checked at registration");
        let get = self.vtable.result.expect("checked at registration");
        // SAFETY: per the ABI.
        let count = unsafe { n(self.state) };
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (mut ptr, mut len, mut score) = (std::ptr::null(), 0usize, 0f32);
            // SAFETY: per the ABI, valid out-pointers.
            let status = unsafe { get(self.state, i, &mut ptr, &mut len, &mut score) };
            if status != RILL_PLUGIN_OK || (ptr.is_null() && len > 0) {
                return Err(self.error(format!("result {i} of {count} unavailable")));
            }
            // SAFETY: the plugin's own tokens, valid until destroy.
            let tokens = if len == 0 {
                Vec::new()
            } else {
                unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
            };
            if tokens.iter().any(|&t| t as usize >= vocab) || score.is_nan() {
                return Err(self.error(format!(
                    "result {i} has a token outside the vocabulary or a NaN score"
                )));
            }
            out.push((tokens, score));
        }
        Ok(out)
    }
}

type StopsFn = unsafe extern "C" fn(*mut c_void, usize, u32) -> u8;

/// `rill_search_step.stops`: calls the host's check behind `data`.
unsafe extern "C" fn stops_trampoline(data: *mut c_void, row: usize, token: u32) -> u8 {
    // SAFETY: `data` is the `&mut dyn FnMut` that `step` put there, alive during the call.
    let f = unsafe { &mut *(data as *mut &mut dyn FnMut(usize, u32) -> bool) };
    // Nothing may unwind into the plugin.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(row, token))).map_or(0, u8::from)
}

impl Drop for PluginStrategy {
    fn drop(&mut self) {
        if !self.state.is_null() {
            let destroy = self.vtable.destroy.expect("checked at registration");
            // SAFETY: a state from create, destroyed once.
            unsafe { destroy(self.state) }
        }
    }
}
