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
    /// Copies of its sampler tables, as long as this host's struct.
    samplers: Vec<rill_sampler_vtable>,
    /// Copies of its search-strategy tables; a field its (older, shorter) table lacks is
    /// zero.
    strategies: Vec<rill_search_vtable>,
    _library: Option<libloading::Library>,
}

// SAFETY: the copied tables hold pointers to static names and functions of a library
// that is never unloaded, and are never written.
unsafe impl Send for Plugin {}
// SAFETY: as above.
unsafe impl Sync for Plugin {}

impl Plugin {
    /// Names of the samplers and search strategies it provides.
    pub fn sampler_names(&self) -> Vec<String> {
        let strategies = self.strategies.iter().map(strategy_name);
        self.samplers
            .iter()
            .map(name_of)
            .chain(strategies)
            .collect()
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

/// A table of the plugin ABI that the host copies out of a plugin. All-zero bytes are a
/// valid value of each (NULL pointers, absent functions, zero counts), which is what a
/// plugin's shorter table from before a field was appended leaves in that field.
trait AbiTable: Copy {}
impl AbiTable for rill_plugin_table {}
impl AbiTable for rill_sampler_vtable {}
impl AbiTable for rill_search_vtable {}

/// The `abi_version` and `struct_size` every table begins with.
///
/// # Safety
/// `ptr` points to a readable table (at least its first 8 bytes).
unsafe fn table_header<T: AbiTable>(ptr: *const T) -> (u32, usize) {
    let words = ptr.cast::<u32>();
    // SAFETY: the caller's pointer to at least two u32s.
    unsafe {
        (
            words.read_unaligned(),
            words.add(1).read_unaligned() as usize,
        )
    }
}

/// A copy of the table at `ptr`, of which the plugin provides the first `struct_size`
/// bytes: what lies past them reads as zero and is never touched in the plugin's memory,
/// so a table from before a field was appended is read as its plugin wrote it.
///
/// # Safety
/// `ptr` points to a readable table of at least `struct_size` bytes.
unsafe fn copy_table<T: AbiTable>(ptr: *const T, struct_size: usize) -> T {
    let mut out = std::mem::MaybeUninit::<T>::zeroed();
    let n = struct_size.min(std::mem::size_of::<T>());
    // SAFETY: n bytes are readable at ptr (the caller) and writable in out.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), n);
        // All-zero bytes are a valid T (AbiTable), and the copied prefix is the plugin's
        // own fields of the same layout.
        out.assume_init()
    }
}

/// Copies the `n` tables that `list` points to, each checked non-NULL, of this ABI
/// version and at least `min_size` bytes. `kind` names them in errors ("sampler").
fn copy_tables<T: AbiTable>(
    list: *const *const T,
    n: usize,
    min_size: usize,
    kind: &str,
    what: &str,
) -> Result<Vec<T>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if list.is_null() {
        return Err(load_error(
            what,
            format!("it declares {n} {kind} tables but their list is NULL"),
        ));
    }
    (0..n)
        .map(|i| {
            // SAFETY: the plugin's list of n entries, checked non-NULL.
            let ptr = unsafe { *list.add(i) };
            if ptr.is_null() {
                return Err(load_error(what, format!("{kind} {i} is NULL")));
            }
            // SAFETY: a non-NULL table of the plugin's, valid forever.
            let (abi, size) = unsafe { table_header(ptr) };
            if abi != RILL_PLUGIN_ABI_VERSION || size < min_size {
                return Err(load_error(
                    what,
                    format!(
                        "{kind} {i} was built for plugin ABI version {abi} (struct_size {size})"
                    ),
                ));
            }
            // SAFETY: struct_size bytes of the plugin's table are readable, per the ABI.
            Ok(unsafe { copy_table(ptr, size) })
        })
        .collect()
}

/// Checks `name`, a plugin's NUL-terminated name of a sampler or strategy: UTF-8, and
/// neither taken by another plugin (`taken`) nor by an earlier table of this one (`own`,
/// to which it is added).
fn check_name(
    name: *const c_char,
    kind: &str,
    i: usize,
    what: &str,
    taken: &[String],
    own: &mut Vec<String>,
) -> Result<()> {
    // SAFETY: non-NULL (checked by the caller), NUL-terminated per the ABI.
    let name = unsafe { CStr::from_ptr(name) }
        .to_str()
        .map_err(|_| load_error(what, format!("{kind} {i}'s name is not UTF-8")))?;
    if taken.iter().any(|t| t == name) {
        return Err(load_error(
            what,
            format!("{kind} name `{name}` is already provided by another plugin"),
        ));
    }
    if own.iter().any(|t| t == name) {
        return Err(load_error(
            what,
            format!("{kind} name `{name}` is provided twice by this plugin"),
        ));
    }
    own.push(name.to_string());
    Ok(())
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
    if table.is_null() {
        return Err(load_error(&what, "its entry returned no table".into()));
    }
    // SAFETY: a non-NULL table stays valid while the library is loaded (forever).
    let (abi, size) = unsafe { table_header(table) };
    if abi != RILL_PLUGIN_ABI_VERSION {
        return Err(load_error(&what, format!("built for plugin ABI version {abi}, this rill speaks version {RILL_PLUGIN_ABI_VERSION}; rebuild it against this rill_plugin.h")));
    }
    if size < PLUGIN_TABLE_SAMPLERS_ONLY {
        return Err(load_error(
            &what,
            format!("its table is malformed (struct_size {size})"),
        ));
    }
    // SAFETY: struct_size bytes of the table are readable, per the ABI. A table from before
    // strategies were appended reads as providing none.
    let table = unsafe { copy_table(table, size) };
    if table.plugin_name.is_null() {
        return Err(load_error(
            &what,
            "its table is malformed (plugin_name is NULL)".into(),
        ));
    }
    // SAFETY: non-NULL, NUL-terminated per the ABI.
    let name = unsafe { CStr::from_ptr(table.plugin_name) }
        .to_str()
        .map_err(|_| load_error(&what, "plugin_name is not UTF-8".into()))?
        .to_string();
    let mut own = Vec::new();
    let samplers = copy_tables(
        table.samplers,
        table.n_samplers,
        std::mem::size_of::<rill_sampler_vtable>(),
        "sampler",
        &what,
    )?;
    for (i, v) in samplers.iter().enumerate() {
        if v.name.is_null() || v.create.is_none() || v.apply.is_none() || v.destroy.is_none() {
            return Err(load_error(
                &what,
                format!("sampler {i} lacks a required slot (name, create, apply, destroy)"),
            ));
        }
        check_name(v.name, "sampler", i, &what, taken, &mut own)?;
    }
    let strategies = copy_tables(
        table.strategies,
        table.n_strategies,
        SEARCH_VTABLE_BEFORE_FLAGS,
        "search strategy",
        &what,
    )?;
    for (i, v) in strategies.iter().enumerate() {
        if v.name.is_null()
            || v.create.is_none()
            || v.step.is_none()
            || v.n_results.is_none()
            || v.result.is_none()
            || v.destroy.is_none()
        {
            return Err(load_error(
                &what,
                format!("search strategy {i} lacks a required slot (name, create, step, n_results, result, destroy)"),
            ));
        }
        check_name(v.name, "search strategy", i, &what, taken, &mut own)?;
    }
    Ok(Plugin {
        name,
        path: path.map(Path::to_path_buf),
        samplers,
        strategies,
        _library: library,
    })
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
pub(crate) fn find_strategy(name: &str) -> Result<(Arc<Plugin>, rill_search_vtable)> {
    let list = registry().lock().unwrap_or_else(|p| p.into_inner());
    for plugin in list.iter() {
        if let Some(v) = plugin.strategies.iter().find(|v| strategy_name(v) == name) {
            return Ok((plugin.clone(), *v));
        }
    }
    Err(RillError::UnknownSampler(format!(
        "no search strategy named `{name}`"
    )))
}

/// The sampler named `name` and the plugin that provides it.
pub(crate) fn find_sampler(name: &str) -> Result<(Arc<Plugin>, rill_sampler_vtable)> {
    let list = registry().lock().unwrap_or_else(|p| p.into_inner());
    for plugin in list.iter() {
        if let Some(v) = plugin.samplers.iter().find(|v| name_of(v) == name) {
            return Ok((plugin.clone(), *v));
        }
    }
    let known = taken_names(&list).join(", ");
    Err(RillError::UnknownSampler(format!(
        "no sampler named `{name}`; registered: {known}"
    )))
}
