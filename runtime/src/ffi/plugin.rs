//! `rill_plugin`: loading sampler plugins and adding samplers to a session.
//!
//! Sample usage:
//! ```c
//! const rill_plugin *plugin = NULL;
//! if (rill_plugin_load("./libban_tokens.so", &plugin) != RILL_OK) puts(rill_last_error());
//! rill_session_add_sampler(session, "ban_tokens", "{\"tokens\": [17]}");
//! rill_plugin_free(plugin);
//! ```

use std::ffi::c_char;
use std::sync::Arc;

use super::{c_str, ffi_call, ffi_void, out_ptr, rill_status};
use crate::config::SamplerSpec;
use crate::plugin::Plugin;

/// A loaded sampler plugin. Opaque.
pub struct rill_plugin {
    _private: [u8; 0],
}

/// A new plugin handle, recorded as live.
fn into_handle(plugin: Arc<Plugin>) -> *const rill_plugin {
    let ptr = Arc::into_raw(plugin);
    super::handles::register(ptr, super::handles::Kind::Plugin);
    ptr as *const rill_plugin
}

/// Loads the sampler plugin at `path` (a shared library exporting `rill_plugin_entry`,
/// see rill_plugin.h) and registers its samplers for every session of the process.
///
/// On success writes a handle to `*plugin_out`; free it with [`rill_plugin_free`]. The
/// library itself stays loaded until the process exits. Thread-safe. Returns
/// `RILL_ERR_PLUGIN_LOAD` for a missing file or symbol, an ABI version mismatch, a
/// malformed table or a sampler name another plugin already provides.
#[no_mangle]
pub extern "C" fn rill_plugin_load(
    path: *const c_char,
    plugin_out: *mut *const rill_plugin,
) -> rill_status {
    ffi_call(|| {
        let out = out_ptr(plugin_out, "plugin_out")?;
        let path = c_str(path, "path")?;
        let plugin = crate::plugin::load_once(std::path::Path::new(path))?;
        // SAFETY: checked non-NULL; written only on success.
        unsafe { *out = into_handle(plugin) };
        Ok(())
    })
}

/// Registers a plugin linked into the application, from its entry function (declared in
/// rill.h by hand, from cbindgen.toml's trailer, since its type comes from rill_plugin.h).
#[no_mangle]
pub extern "C" fn rill_plugin_register(
    entry: Option<rill_plugin_abi::EntryFn>,
    plugin_out: *mut *const rill_plugin,
) -> rill_status {
    ffi_call(|| {
        let out = out_ptr(plugin_out, "plugin_out")?;
        let entry =
            entry.ok_or_else(|| crate::RillError::InvalidArgument("`entry` is NULL".into()))?;
        let plugin = crate::plugin::register_static(entry)?;
        // SAFETY: checked non-NULL; written only on success.
        unsafe { *out = into_handle(plugin) };
        Ok(())
    })
}

/// Releases a plugin handle. NULL is a no-op; a handle already freed is ignored,
/// `rill_last_error` saying so. Sessions keep using its samplers.
#[no_mangle]
pub extern "C" fn rill_plugin_free(plugin: *const rill_plugin) {
    ffi_void(|| {
        if !plugin.is_null()
            && super::handles::unregister(plugin, super::handles::Kind::Plugin, || false)
        {
            // SAFETY: a live handle from into_handle, removed from the registry just now,
            // so released once.
            drop(unsafe { Arc::from_raw(plugin as *const Plugin) });
        }
    })
}

/// Adds the sampler `name` with JSON parameters `params_json` (NULL for `{}`) to the
/// session's chain, after the standard samplers and before the final pick. Checked now
/// (the sampler is created once); on error the chain is unchanged. Returns
/// `RILL_ERR_UNKNOWN_SAMPLER`, `RILL_ERR_PLUGIN` (the sampler refused its parameters) or
/// `RILL_ERR_GENERATION_CONFIG` (params are not JSON). Not thread-safe for one session.
#[no_mangle]
pub extern "C" fn rill_session_add_sampler(
    session: *mut super::session::rill_session,
    name: *const c_char,
    params_json: *const c_char,
) -> rill_status {
    ffi_call(|| {
        let mut call = super::session::enter(session)?;
        let session = call.session();
        let name = c_str(name, "name")?;
        let params = if params_json.is_null() {
            "{}"
        } else {
            c_str(params_json, "params_json")?
        };
        let params: serde_json::Value = serde_json::from_str(params).map_err(|e| {
            crate::RillError::GenerationConfig(format!(
                "params of sampler `{name}` are not JSON: {e}"
            ))
        })?;
        session.add_sampler(SamplerSpec {
            name: name.to_string(),
            params: Some(params),
            plugin: None,
            before_warpers: false,
        })
    })
}
