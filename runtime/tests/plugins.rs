//! Sampler plugins: a plain-C plugin loads, is configured from JSON and changes the
//! output; every fault the ABI lets rill observe is a clear error naming the plugin, the
//! host stays alive and the session generates again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rill::config::SamplerSpec;
use rill::{GenerationConfig, RillError, Session, SessionOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles a C plugin into a shared library under target/ (once per name).
fn build_plugin(source: &str, name: &str, defines: &[&str]) -> PathBuf {
    let out = root()
        .join("target/test-plugins")
        .join(format!("lib{name}.so"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11",
        ])
        .arg(format!("-I{}", root().join("include").display()))
        .args(defines)
        .arg(root().join(source))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "compiling {source}");
    out
}

fn ban_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_plugin("plugins/examples/ban_tokens.c", "ban_tokens", &[]))
}

fn faulty_plugin() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let path = build_plugin("tests/plugins/faulty.c", "faulty", &[]);
        rill::plugin::load_once(&path).unwrap();
        path
    })
}

/// `pub unsafe extern "C" fn $entry`: a plugin entry that hands the host the table
/// `$table` (any `#[repr(C)]` layout of one, older ones included).
macro_rules! entry_returning {
    ($entry:ident, $table:expr) => {
        pub unsafe extern "C" fn $entry(
            _: u32,
            _: *const rill_plugin_abi::rill_host,
            out: *mut *const rill_plugin_abi::rill_plugin_table,
            _: *mut std::ffi::c_char,
            _: usize,
        ) -> std::ffi::c_int {
            // SAFETY: a valid out-pointer from the host.
            unsafe { *out = $table as *const _ as *const rill_plugin_abi::rill_plugin_table };
            rill_plugin_abi::RILL_PLUGIN_OK
        }
    };
}

fn greedy(samplers: Option<Vec<SamplerSpec>>) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: Some(12),
        do_sample: Some(false),
        repetition_penalty: Some(1.0),
        samplers,
        ..Default::default()
    }
}

fn session() -> Session {
    Session::new(
        common::default_model(),
        SessionOptions {
            context_len: 64,
            prefill_chunk: 16,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The session still generates after a failure.
fn still_works(s: &mut Session) {
    s.set_generation_config(greedy(None)).unwrap();
    assert!(!s
        .generate("In the beginning", |_| true)
        .unwrap()
        .tokens
        .is_empty());
}

#[test]
fn c_plugin_bans_tokens_from_json_params() {
    let mut s = session();
    s.set_generation_config(greedy(None)).unwrap();
    let plain = s.generate("In the beginning", |_| true).unwrap();
    let banned = plain.tokens[0];
    let spec = SamplerSpec {
        name: "ban_tokens".into(),
        params: Some(serde_json::json!({ "tokens": [banned] })),
        plugin: Some(ban_plugin().display().to_string()),
        before_warpers: false,
    };
    s.set_generation_config(greedy(Some(vec![spec]))).unwrap();
    let out = s.generate("In the beginning", |_| true).unwrap();
    assert_ne!(out.tokens, plain.tokens, "the plugin changes the output");
    assert!(
        !out.tokens.contains(&banned),
        "banned token {banned} never generated"
    );
    let bad = SamplerSpec {
        name: "ban_tokens".into(),
        params: Some(serde_json::json!({})),
        plugin: None,
        before_warpers: false,
    };
    let err = s
        .set_generation_config(greedy(Some(vec![bad])))
        .unwrap_err();
    assert!(
        err.to_string().contains("ban-tokens-example") && err.to_string().contains("\"tokens\""),
        "{err}"
    );
}

#[test]
fn each_fault_is_a_clear_error_and_the_session_recovers() {
    faulty_plugin();
    let mut s = session();
    for (sampler, expected) in [
        ("fault_nan", "returned logit NaN"),
        ("fault_out_of_range", "outside the vocabulary"),
        ("fault_grows", "grew the candidate list"),
        ("fault_bad_select", "selected candidate"),
        ("fault_fails", "deliberate failure for the test"),
    ] {
        let spec = SamplerSpec {
            name: sampler.into(),
            params: None,
            plugin: None,
            before_warpers: false,
        };
        s.set_generation_config(greedy(Some(vec![spec]))).unwrap();
        let err = s.generate("In the beginning", |_| true).unwrap_err();
        assert!(matches!(err, RillError::Plugin(_)), "{err}");
        let m = err.to_string();
        assert!(
            m.contains(expected) && m.contains(sampler) && m.contains("plugin `faulty`"),
            "{m}"
        );
        still_works(&mut s);
    }
}

#[test]
fn plugin_built_for_another_abi_version_is_refused() {
    let path = build_plugin(
        "tests/plugins/faulty.c",
        "faulty_abi99",
        &["-DTABLE_ABI=99"],
    );
    let err = rill::plugin::load(&path).err().unwrap();
    assert!(matches!(err, RillError::PluginLoad(_)), "{err}");
    assert!(
        err.to_string().contains("version 99") && err.to_string().contains("rebuild"),
        "{err}"
    );
    still_works(&mut session());
}

#[test]
fn library_without_the_entry_symbol_is_refused() {
    let path = build_plugin("tests/plugins/faulty.c", "not_a_plugin", &["-DNO_ENTRY"]);
    let err = rill::plugin::load(&path).err().unwrap();
    assert!(
        err.to_string()
            .contains("does not export `rill_plugin_entry`"),
        "{err}"
    );
    let missing = rill::plugin::load(Path::new("/nonexistent/libx.so"))
        .err()
        .unwrap();
    assert!(missing.to_string().contains("no such file"), "{missing}");
}

#[test]
fn unknown_sampler_and_invalid_params_are_refused() {
    let mut s = session();
    let unknown = SamplerSpec {
        name: "no_such_sampler".into(),
        params: None,
        plugin: None,
        before_warpers: false,
    };
    let err = s
        .set_generation_config(greedy(Some(vec![unknown])))
        .unwrap_err();
    assert!(
        matches!(err, RillError::UnknownSampler(_)) && err.to_string().contains("top_k"),
        "{err}"
    );
    let bad = SamplerSpec {
        name: "top_p".into(),
        params: Some(serde_json::json!({ "top_p": 5 })),
        plugin: None,
        before_warpers: false,
    };
    let err = s
        .set_generation_config(greedy(Some(vec![bad])))
        .unwrap_err();
    assert!(
        err.to_string().contains("top_p must be in (0, 1]")
            && err.to_string().contains("rill-samplers"),
        "{err}"
    );
    still_works(&mut s);
}

mod panicking {
    use std::ffi::{c_char, c_int, c_void};

    use rill_plugin_abi::*;

    /// A stateless sampler's `create` (a dangling, never-read state); shared by the test
    /// plugins below.
    pub(super) unsafe extern "C" fn create(
        _: *const c_char,
        _: *const rill_host,
        out: *mut *mut c_void,
        _: *mut c_char,
        _: usize,
    ) -> c_int {
        // SAFETY: a valid out-pointer from the host.
        unsafe { *out = std::ptr::NonNull::<u8>::dangling().as_ptr() as *mut c_void };
        RILL_PLUGIN_OK
    }
    unsafe extern "C" fn apply(
        _: *mut c_void,
        _: *mut rill_candidates,
        _: *const rill_sampler_context,
        e: *mut c_char,
        n: usize,
    ) -> c_int {
        // SAFETY: the host's error buffer.
        unsafe { guard(e, n, || panic!("a bug in a Rust plugin")) }
    }
    pub(super) unsafe extern "C" fn destroy(_: *mut c_void) {}
    static PANICS: rill_sampler_vtable = rill_sampler_vtable {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: std::mem::size_of::<rill_sampler_vtable>() as u32,
        name: c"rust_panics".as_ptr(),
        create: Some(create),
        apply: Some(apply),
        accept: None,
        reset: None,
        clone: None,
        destroy: Some(destroy),
    };
    struct List([*const rill_sampler_vtable; 1]);
    // SAFETY: a pointer to an immutable static.
    unsafe impl Sync for List {}
    static LIST: List = List([&PANICS]);
    static TABLE: rill_plugin_table = rill_plugin_table {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: std::mem::size_of::<rill_plugin_table>() as u32,
        plugin_name: c"rust-panics".as_ptr(),
        n_samplers: 1,
        samplers: &LIST.0 as *const _ as *const *const rill_sampler_vtable,
        n_strategies: 0,
        strategies: std::ptr::null(),
    };
    entry_returning!(entry, &TABLE);
}

#[test]
fn a_panicking_rust_plugin_is_an_error_not_a_crash() {
    rill::plugin::register_static(panicking::entry).unwrap();
    let mut s = session();
    let spec = SamplerSpec {
        name: "rust_panics".into(),
        params: None,
        plugin: None,
        before_warpers: false,
    };
    s.set_generation_config(greedy(Some(vec![spec]))).unwrap();
    let err = s.generate("In the beginning", |_| true).unwrap_err();
    assert!(
        err.to_string().contains("panicked: a bug in a Rust plugin")
            && err.to_string().contains("rust-panics"),
        "{err}"
    );
    still_works(&mut s);
}

mod samplers_only_table {
    use std::ffi::{c_char, c_int, c_void};

    use rill_plugin_abi::*;

    use super::panicking::{create, destroy};

    /// Picks token 7 whenever it is a candidate.
    unsafe extern "C" fn apply(
        _: *mut c_void,
        c: *mut rill_candidates,
        _: *const rill_sampler_context,
        _: *mut c_char,
        _: usize,
    ) -> c_int {
        // SAFETY: the host's candidates, `size` of them.
        unsafe {
            let c = &mut *c;
            let ids = std::slice::from_raw_parts(c.ids, c.size);
            if let Some(i) = ids.iter().position(|&id| id == 7) {
                c.selected = i as i64;
            }
        }
        RILL_PLUGIN_OK
    }
    static SEVEN: rill_sampler_vtable = rill_sampler_vtable {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: std::mem::size_of::<rill_sampler_vtable>() as u32,
        name: c"pick_seven".as_ptr(),
        create: Some(create),
        apply: Some(apply),
        accept: None,
        reset: None,
        clone: None,
        destroy: Some(destroy),
    };
    struct List([*const rill_sampler_vtable; 1]);
    // SAFETY: a pointer to an immutable static.
    unsafe impl Sync for List {}
    static LIST: List = List([&SEVEN]);
    /// `rill_plugin_table` as it was before search strategies were appended.
    #[repr(C)]
    struct TableBeforeStrategies {
        abi_version: u32,
        struct_size: u32,
        plugin_name: *const c_char,
        n_samplers: usize,
        samplers: *const *const rill_sampler_vtable,
    }
    // SAFETY: immutable static data.
    unsafe impl Sync for TableBeforeStrategies {}
    const _: () =
        assert!(std::mem::size_of::<TableBeforeStrategies>() == PLUGIN_TABLE_SAMPLERS_ONLY);
    static TABLE: TableBeforeStrategies = TableBeforeStrategies {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: PLUGIN_TABLE_SAMPLERS_ONLY as u32,
        plugin_name: c"samplers-only".as_ptr(),
        n_samplers: 1,
        samplers: &LIST.0 as *const _ as *const *const rill_sampler_vtable,
    };
    entry_returning!(entry, &TABLE);

    /// A table listing one sampler twice under one name.
    static SEVEN_AGAIN: rill_sampler_vtable = rill_sampler_vtable {
        name: c"pick_seven_again".as_ptr(),
        ..SEVEN
    };
    struct Twice([*const rill_sampler_vtable; 2]);
    // SAFETY: pointers to an immutable static.
    unsafe impl Sync for Twice {}
    static TWICE: Twice = Twice([&SEVEN_AGAIN, &SEVEN_AGAIN]);
    static TWICE_TABLE: rill_plugin_table = rill_plugin_table {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: std::mem::size_of::<rill_plugin_table>() as u32,
        plugin_name: c"one-name-twice".as_ptr(),
        n_samplers: 2,
        samplers: &TWICE.0 as *const _ as *const *const rill_sampler_vtable,
        n_strategies: 0,
        strategies: std::ptr::null(),
    };
    entry_returning!(entry_twice, &TWICE_TABLE);
}

#[test]
fn a_plugin_table_from_before_search_strategies_loads_and_runs() {
    let plugin = rill::plugin::register_static(samplers_only_table::entry).unwrap();
    assert_eq!(plugin.sampler_names(), ["pick_seven"]);
    let mut s = session();
    let spec = SamplerSpec {
        name: "pick_seven".into(),
        params: None,
        plugin: None,
        before_warpers: false,
    };
    s.set_generation_config(greedy(Some(vec![spec]))).unwrap();
    let out = s.generate("In the beginning", |_| true).unwrap();
    assert_eq!(out.tokens, vec![7; 12], "the plugin picks every token");
}

#[test]
fn a_plugin_naming_two_samplers_alike_is_refused() {
    let e = rill::plugin::register_static(samplers_only_table::entry_twice)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("`pick_seven_again` is provided twice by this plugin"),
        "{e}"
    );
    let unknown = rill::plugin::PluginSampler::create("pick_seven_again", "{}")
        .err()
        .unwrap();
    assert!(
        unknown.to_string().contains("no sampler named"),
        "{unknown}"
    );
}

/// A plugin table providing the one search strategy `$vtable`, as `entry` (for
/// `rill::plugin::register_static`), in the calling module.
macro_rules! one_strategy_plugin {
    ($vtable:ident, $name:literal) => {
        struct List([*const rill_search_vtable; 1]);
        // SAFETY: a pointer to an immutable static.
        unsafe impl Sync for List {}
        static LIST: List = List([&$vtable as *const _ as *const rill_search_vtable]);
        static TABLE: rill_plugin_table = rill_plugin_table {
            abi_version: RILL_PLUGIN_ABI_VERSION,
            struct_size: std::mem::size_of::<rill_plugin_table>() as u32,
            plugin_name: $name.as_ptr(),
            n_samplers: 0,
            samplers: std::ptr::null(),
            n_strategies: 1,
            strategies: &LIST.0 as *const _ as *const *const rill_search_vtable,
        };
        entry_returning!(entry, &TABLE);
    };
}

mod bad_strategy {
    use std::ffi::{c_char, c_int, c_void};

    use rill_plugin_abi::*;

    unsafe extern "C" fn create(
        _: *const c_char,
        _: *const rill_host,
        out: *mut *mut c_void,
        rows: *mut usize,
        _: *mut c_char,
        _: usize,
    ) -> c_int {
        // SAFETY: valid out-pointers from the host.
        unsafe {
            *out = std::ptr::NonNull::<u8>::dangling().as_ptr() as *mut c_void;
            *rows = 2;
        }
        RILL_PLUGIN_OK
    }
    unsafe extern "C" fn step(
        _: *mut c_void,
        _: *const rill_search_step,
        choices: *mut rill_search_choice,
        done: *mut u8,
        _: *mut c_char,
        _: usize,
    ) -> c_int {
        // SAFETY: two choices, as create asked for.
        unsafe {
            *choices = rill_search_choice {
                parent: 7,
                token: 0,
            };
            *choices.add(1) = rill_search_choice {
                parent: 0,
                token: 0,
            };
            *done = 0;
        }
        RILL_PLUGIN_OK
    }
    unsafe extern "C" fn n_results(_: *const c_void) -> usize {
        0
    }
    unsafe extern "C" fn result(
        _: *const c_void,
        _: usize,
        _: *mut *const u32,
        _: *mut usize,
        _: *mut f32,
    ) -> c_int {
        RILL_PLUGIN_ERROR
    }
    unsafe extern "C" fn destroy(_: *mut c_void) {}
    /// `rill_search_vtable` as it was before `flags` was appended: a plugin built against
    /// that header hands over a table this long, and the host reads no further.
    #[repr(C)]
    struct VtableBeforeFlags {
        abi_version: u32,
        struct_size: u32,
        name: *const c_char,
        create: Option<SearchCreateFn>,
        step: Option<SearchStepFn>,
        n_results: Option<unsafe extern "C" fn(*const c_void) -> usize>,
        result: Option<SearchResultFn>,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    }
    // SAFETY: immutable static data.
    unsafe impl Sync for VtableBeforeFlags {}
    const _: () = assert!(std::mem::size_of::<VtableBeforeFlags>() == SEARCH_VTABLE_BEFORE_FLAGS);
    static BAD: VtableBeforeFlags = VtableBeforeFlags {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: SEARCH_VTABLE_BEFORE_FLAGS as u32,
        name: c"bad_parents".as_ptr(),
        create: Some(create),
        step: Some(step),
        n_results: Some(n_results),
        result: Some(result),
        destroy: Some(destroy),
    };
    one_strategy_plugin!(BAD, c"bad-strategies");
}

#[test]
fn a_strategy_choosing_a_parent_out_of_range_is_an_error() {
    rill::plugin::register_static(bad_strategy::entry).unwrap();
    let mut s = rill::plugin::PluginStrategy::create("bad_parents", "{}").unwrap();
    assert_eq!(s.rows(), 2);
    let logits = vec![0.0f32; 2 * 8];
    let err = s.step(&logits, 8, &[0, 0], 1, 1, 4, None).unwrap_err();
    let m = err.to_string();
    assert!(
        m.contains("chose parent 7") && m.contains("bad_parents") && m.contains("bad-strategies"),
        "{m}"
    );
    // Its table, from before `flags`, declares no RILL_SEARCH_APPLIES_STOPS: stop strings
    // are refused, not ignored.
    let model = common::default_model();
    let stops = ["the".to_string()];
    let refused =
        rill::beam::run_strategy_timed(&model, &[5, 6, 7], "bad_parents", "{}", 4, &stops)
            .unwrap_err()
            .to_string();
    assert!(refused.contains("does not apply stop strings"), "{refused}");
    let unknown = rill::plugin::PluginStrategy::create("no_such_strategy", "{}")
        .err()
        .unwrap();
    assert!(
        unknown.to_string().contains("no search strategy named"),
        "{unknown}"
    );
    let bad_params =
        rill::plugin::PluginStrategy::create("beam", "{\"num_beams\": 3, \"num_beam_groups\": 2}")
            .err()
            .unwrap();
    assert!(
        bad_params.to_string().contains("num_beam_groups dividing"),
        "{bad_params}"
    );
}

mod incomplete_strategy {
    use rill_plugin_abi::*;
    static NO_STEP: rill_search_vtable = rill_search_vtable {
        abi_version: RILL_PLUGIN_ABI_VERSION,
        struct_size: SEARCH_VTABLE_BEFORE_FLAGS as u32,
        name: c"no_step".as_ptr(),
        create: None,
        step: None,
        n_results: None,
        result: None,
        destroy: None,
        flags: 0,
    };
    one_strategy_plugin!(NO_STEP, c"incomplete-strategies");
}

#[test]
fn a_strategy_missing_a_required_slot_is_refused_when_the_plugin_loads() {
    let e = rill::plugin::register_static(incomplete_strategy::entry)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("search strategy 0 lacks a required slot"), "{e}");
    // Not registered: the name is unknown rather than a crash when used.
    let unknown = rill::plugin::PluginStrategy::create("no_step", "{}")
        .err()
        .unwrap();
    assert!(
        unknown.to_string().contains("no search strategy named"),
        "{unknown}"
    );
}
