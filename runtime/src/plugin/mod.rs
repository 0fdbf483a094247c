//! The plugin host: plugins loaded by path (`libloading`) or registered from a linked
//! entry function, checked against `include/rill_plugin.h`'s ABI version, and a
//! process-wide registry of the samplers they provide, by name.
//!
//! Loaded libraries are never unloaded: a sampler state can then never outlive its code.
//! The standard samplers (`rill-samplers`) are registered statically, through the same
//! entry function and table a loaded plugin has.

mod sampler;
mod strategy;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rill_plugin_abi::*;

pub use sampler::{Candidates, PluginSampler, Vocabulary};
pub use strategy::PluginStrategy;

use crate::error::{Result, RillError};

/// A plugin whose table passed the checks.
pub struct Plugin {
    /// The plugin's own name.
    pub name: String,
    /// Where it was loaded from (None for static registration).
    pub path: Option<PathBuf>,
    table: &'static rill_plugin_table,
    _library: Option<libloading::Library>,
}

// SAFETY: the table is immutable static data of a library that is never unloaded.
unsafe impl Send for Plugin {}
// SAFETY: as above.
unsafe impl Sync for Plugin {}

impl Plugin {
    /// Names of the samplers and search strategies it provides.
    pub fn sampler_names(&self) -> Vec<String> {
        let strategies = self.strategies().into_iter().map(strategy_name);
        self.vtables()
            .iter()
            .map(|v| name_of(v))
            .chain(strategies)
            .collect()
    }

    fn strategies(&self) -> Vec<&'static rill_search_vtable> {
        if (self.table.struct_size as usize) < std::mem::size_of::<rill_plugin_table>()
            || self.table.n_strategies == 0
        {
            return Vec::new();
        }
        // SAFETY: checked non-NULL with n_strategies entries at registration.
        let list =
            unsafe { std::slice::from_raw_parts(self.table.strategies, self.table.n_strategies) };
        // SAFETY: each entry was checked non-NULL at registration.
        list.iter().map(|&v| unsafe { &*v }).collect()
    }

    fn vtables(&self) -> Vec<&'static rill_sampler_vtable> {
        if self.table.n_samplers == 0 {
            return Vec::new();
        }
        // SAFETY: checked non-NULL with n_samplers entries when the plugin was registered.
        let list =
            unsafe { std::slice::from_raw_parts(self.table.samplers, self.table.n_samplers) };
        // SAFETY: each entry was checked non-NULL at registration.
        list.iter().map(|&v| unsafe { &*v }).collect()
    }
}

/// The NUL-terminated message a plugin wrote into an error buffer.
fn message(buf: &[c_char]) -> String {
    // SAFETY: zero-initialised buffer; the plugin writes at most len - 1 bytes.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    if text.is_empty() {
        "failed without a message".into()
    } else {
        text
    }
}

fn strategy_name(v: &rill_search_vtable) -> String {
    // SAFETY: checked non-NULL and NUL-terminated UTF-8 at registration.
    unsafe { CStr::from_ptr(v.name) }
        .to_string_lossy()
        .into_owned()
}

fn name_of(v: &rill_sampler_vtable) -> String {
    // SAFETY: checked non-NULL and NUL-terminated UTF-8 at registration.
    unsafe { CStr::from_ptr(v.name) }
        .to_string_lossy()
        .into_owned()
}

unsafe extern "C" fn host_log(_data: *mut c_void, level: c_int, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: plugins pass NUL-terminated strings, per the header.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    // Debug messages only when RILL_LOG=debug; the rest to stderr.
    if level == 0 && std::env::var("RILL_LOG").map_or(true, |v| v != "debug") {
        return;
    }
    let level = ["debug", "info", "warn", "error"]
        .get(level as usize)
        .copied()
        .unwrap_or("log");
    eprintln!("[rill plugin {level}] {text}");
}

struct HostTable(rill_host);
// SAFETY: immutable after creation; host_data is NULL.
unsafe impl Sync for HostTable {}
unsafe impl Send for HostTable {}

static HOST: HostTable = HostTable(rill_host {
    abi_version: RILL_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<rill_host>() as u32,
    host_data: std::ptr::null_mut(),
    log: Some(host_log),
});

fn registry() -> &'static Mutex<Vec<Arc<Plugin>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<Plugin>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // The standard samplers and search strategies, through the same ABI as any plugin.
        let standard = register_entry(rill_samplers::plugin::rill_samplers_entry, None, None, &[]);
        let standard = Arc::new(standard.expect("the standard samplers register"));
        let beam = register_entry(
            rill_beam::rill_beam_entry,
            None,
            None,
            &standard.sampler_names(),
        );
        Mutex::new(vec![
            standard,
            Arc::new(beam.expect("the beam strategies register")),
        ])
    })
}

fn load_error(what: &str, message: String) -> RillError {
    RillError::PluginLoad(format!("{what}: {message}"))
}

/// Calls `entry` and checks the table it returns.
fn register_entry(
    entry: EntryFn,
    library: Option<libloading::Library>,
    path: Option<&Path>,
    taken: &[String],
) -> Result<Plugin> {
    let what = path.map_or_else(
        || "statically registered plugin".to_string(),
        |p| format!("plugin `{}`", p.display()),
    );
    let mut table: *const rill_plugin_table = std::ptr::null();
    let mut error = [0 as c_char; 512];
    // SAFETY: calling the plugin's entry per the ABI, with valid buffers.
    let status = unsafe {
        entry(
            RILL_PLUGIN_ABI_VERSION,
            &HOST.0,
            &mut table,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if status != RILL_PLUGIN_OK {
        // SAFETY: the buffer is NUL-terminated (zeroed, at most len - 1 written by contract).
        let message = unsafe { CStr::from_ptr(error.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        return Err(load_error(
            &what,
            format!("its entry refused to load: {message}"),
        ));
    }
    // SAFETY: a non-NULL table stays valid while the library is loaded (forever).
    let table: &'static rill_plugin_table = unsafe { table.as_ref() }
        .ok_or_else(|| load_error(&what, "its entry returned no table".into()))?;
    if table.abi_version != RILL_PLUGIN_ABI_VERSION {
        return Err(load_error(&what, format!("built for plugin ABI version {}, this rill speaks version {RILL_PLUGIN_ABI_VERSION}; rebuild it against this rill_plugin.h", table.abi_version)));
    }
    if (table.struct_size as usize) < std::mem::size_of::<rill_plugin_table>()
        || table.plugin_name.is_null()
    {
        return Err(load_error(
            &what,
            "its table is malformed (struct_size or plugin_name)".into(),
        ));
    }
    // SAFETY: non-NULL, NUL-terminated per the ABI.
    let name = unsafe { CStr::from_ptr(table.plugin_name) }
        .to_str()
        .map_err(|_| load_error(&what, "plugin_name is not UTF-8".into()))?
        .to_string();
    if table.n_samplers > 0 && table.samplers.is_null() {
        return Err(load_error(
            &what,
            "n_samplers > 0 but samplers is NULL".into(),
        ));
    }
    let plugin = Plugin {
        name,
        path: path.map(Path::to_path_buf),
        table,
        _library: library,
    };
    for i in 0..table.n_samplers {
        // SAFETY: n_samplers entries, checked non-NULL array.
        let v = unsafe { *table.samplers.add(i) };
        // SAFETY: NULL-checked before use.
        let Some(v) = (unsafe { v.as_ref() }) else {
            return Err(load_error(&what, format!("sampler {i} is NULL")));
        };
        if v.abi_version != RILL_PLUGIN_ABI_VERSION
            || (v.struct_size as usize) < std::mem::size_of::<rill_sampler_vtable>()
        {
            return Err(load_error(
                &what,
                format!(
                    "sampler {i} was built for plugin ABI version {} (struct_size {})",
                    v.abi_version, v.struct_size
                ),
            ));
        }
        if v.name.is_null() || v.create.is_none() || v.apply.is_none() || v.destroy.is_none() {
            return Err(load_error(
                &what,
                format!("sampler {i} lacks a required slot (name, create, apply, destroy)"),
            ));
        }
        // SAFETY: non-NULL, NUL-terminated per the ABI.
        let sampler = unsafe { CStr::from_ptr(v.name) }
            .to_str()
            .map_err(|_| load_error(&what, format!("sampler {i}'s name is not UTF-8")))?;
        if taken.iter().any(|t| t == sampler) {
            return Err(load_error(
                &what,
                format!("sampler name `{sampler}` is already provided by another plugin"),
            ));
        }
    }
    check_strategies(table, &what, taken)?;
    Ok(plugin)
}

/// Checks the search strategies of `table` as the samplers are checked: every slot a
/// strategy needs is there, its name is UTF-8 and not taken.
fn check_strategies(table: &rill_plugin_table, what: &str, taken: &[String]) -> Result<()> {
    if table.n_strategies > 0 && table.strategies.is_null() {
        return Err(load_error(
            what,
            "n_strategies > 0 but strategies is NULL".into(),
        ));
    }
    for i in 0..table.n_strategies {
        // SAFETY: n_strategies entries, checked non-NULL array.
        let v = unsafe { *table.strategies.add(i) };
        // SAFETY: NULL-checked before use.
        let Some(v) = (unsafe { v.as_ref() }) else {
            return Err(load_error(what, format!("search strategy {i} is NULL")));
        };
        if v.abi_version != RILL_PLUGIN_ABI_VERSION
            || (v.struct_size as usize) < SEARCH_VTABLE_BEFORE_FLAGS
        {
            return Err(load_error(
                what,
                format!(
                    "search strategy {i} was built for plugin ABI version {} (struct_size {})",
                    v.abi_version, v.struct_size
                ),
            ));
        }
        if v.name.is_null()
            || v.create.is_none()
            || v.step.is_none()
            || v.n_results.is_none()
            || v.result.is_none()
            || v.destroy.is_none()
        {
            return Err(load_error(
                what,
                format!("search strategy {i} lacks a required slot (name, create, step, n_results, result, destroy)"),
            ));
        }
        // SAFETY: non-NULL, NUL-terminated per the ABI.
        let name = unsafe { CStr::from_ptr(v.name) }
            .to_str()
            .map_err(|_| load_error(what, format!("search strategy {i}'s name is not UTF-8")))?;
        if taken.iter().any(|t| t == name) {
            return Err(load_error(
                what,
                format!("search strategy name `{name}` is already provided by another plugin"),
            ));
        }
    }
    Ok(())
}

/// Whether strategy `v` declares `flag` (`RILL_SEARCH_*`; a vtable from before `flags`
/// declares nothing).
pub(crate) fn strategy_has_flag(v: &rill_search_vtable, flag: u32) -> bool {
    let offset = std::mem::offset_of!(rill_search_vtable, flags);
    if (v.struct_size as usize) < offset + std::mem::size_of::<u32>() {
        return false;
    }
    // SAFETY: struct_size says the plugin's table reaches past `flags`; read through a
    // pointer, not the Rust struct (whose padding a C table may end before).
    let flags = unsafe {
        (v as *const rill_search_vtable as *const u8)
            .add(offset)
            .cast::<u32>()
            .read_unaligned()
    };
    flags & flag != 0
}

fn taken_names(list: &[Arc<Plugin>]) -> Vec<String> {
    list.iter().flat_map(|p| p.sampler_names()).collect()
}

/// Loads the plugin library at `path` and registers its samplers.
pub fn load(path: &Path) -> Result<Arc<Plugin>> {
    let what = format!("plugin `{}`", path.display());
    if !path.is_file() {
        return Err(load_error(&what, "no such file".into()));
    }
    // SAFETY: loading a library runs its initialisers; the application named this path.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| load_error(&what, e.to_string()))?;
    // SAFETY: the symbol's type is the ABI's entry type.
    let entry: EntryFn = unsafe {
        *library
            .get::<EntryFn>(RILL_PLUGIN_ENTRY_SYMBOL)
            .map_err(|_| {
                load_error(
                    &what,
                    "it does not export `rill_plugin_entry` (is it a rill plugin?)".into(),
                )
            })?
    };
    let mut list = registry().lock().unwrap_or_else(|p| p.into_inner());
    let plugin = Arc::new(register_entry(
        entry,
        Some(library),
        Some(path),
        &taken_names(&list),
    )?);
    list.push(plugin.clone());
    Ok(plugin)
}

/// Loads the plugin at `path` unless a plugin from that path is registered already.
pub fn load_once(path: &Path) -> Result<Arc<Plugin>> {
    {
        let list = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = list.iter().find(|p| p.path.as_deref() == Some(path)) {
            return Ok(p.clone());
        }
    }
    load(path)
}

/// Registers a plugin linked into the application, from its entry function.
pub fn register_static(entry: EntryFn) -> Result<Arc<Plugin>> {
    let mut list = registry().lock().unwrap_or_else(|p| p.into_inner());
    let plugin = Arc::new(register_entry(entry, None, None, &taken_names(&list))?);
    list.push(plugin.clone());
    Ok(plugin)
}

/// The search strategy named `name` and the plugin that provides it.
pub(crate) fn find_strategy(name: &str) -> Result<(Arc<Plugin>, &'static rill_search_vtable)> {
    let list = registry().lock().unwrap_or_else(|p| p.into_inner());
    for plugin in list.iter() {
        if let Some(v) = plugin
            .strategies()
            .into_iter()
            .find(|v| strategy_name(v) == name)
        {
            return Ok((plugin.clone(), v));
        }
    }
    Err(RillError::UnknownSampler(format!(
        "no search strategy named `{name}`"
    )))
}

/// The sampler named `name` and the plugin that provides it.
pub(crate) fn find_sampler(name: &str) -> Result<(Arc<Plugin>, &'static rill_sampler_vtable)> {
    let list = registry().lock().unwrap_or_else(|p| p.into_inner());
    for plugin in list.iter() {
        if let Some(v) = plugin.vtables().into_iter().find(|v| name_of(v) == name) {
            return Ok((plugin.clone(), v));
        }
    }
    let known = taken_names(&list).join(", ");
    Err(RillError::UnknownSampler(format!(
        "no sampler named `{name}`; registered: {known}"
    )))
}
