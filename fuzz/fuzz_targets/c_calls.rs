//! Sequences of C calls: the fuzzer's bytes are a program of calls through the public C
//! ABI (sessions created and freed, settings, prompts, appends, rollbacks, token reads,
//! save / corrupt / load, tokenize, detokenize, chat, NULL arguments, short buffers) on
//! the default model. Every call returns a status; nothing crashes, and after any error
//! `rill_last_error` is a message. At the end every live session still generates.
#![no_main]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rill::ffi::conversation::*;
use rill::ffi::error::{rill_last_error, rill_status};
use rill::ffi::model::{rill_detokenize, rill_model, rill_model_open, rill_tokenize};
use rill::ffi::plugin::rill_session_add_sampler;
use rill::ffi::session::*;

struct Model(*const rill_model);
// SAFETY: rill_model is thread-safe (documented); the pointer is never freed.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

fn model() -> *const rill_model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let path = CString::new(rill_fuzz::model_dir().to_str().unwrap()).unwrap();
        let mut m = null();
        let status = rill_model_open(path.as_ptr(), null(), &mut m);
        assert_eq!(status, rill_status::RILL_OK);
        Model(m)
    })
    .0
}

extern "C" fn stop_after(user: *mut c_void, _piece: *const c_char, _len: usize) -> c_int {
    // SAFETY: user points at the u8 budget below, alive during the call.
    let budget = unsafe { &mut *(user as *mut u8) };
    if *budget == 0 {
        return 1;
    }
    *budget -= 1;
    0
}

/// A C string from fuzzer bytes, cut at the first NUL (invalid UTF-8 kept).
fn cstr(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap()
}

fn check(status: rill_status) {
    if status != rill_status::RILL_OK {
        // SAFETY: rill_last_error returns a NUL-terminated string owned by rill.
        let msg = unsafe { CStr::from_ptr(rill_last_error()) };
        assert!(!msg.to_bytes().is_empty(), "{status:?} without a message");
    }
}

fuzz_target!(|data: &[u8]| {
    let model = model();
    let mut b = rill_fuzz::Bytes(data);
    let mut sessions: Vec<*mut rill_session> = Vec::new();
    // Sessions given settings or samplers by the fuzzer may legitimately refuse to
    // generate (a sampler that bans every token); the others must generate at the end.
    let mut tainted: Vec<*mut rill_session> = Vec::new();
    let mut blob: Vec<u8> = Vec::new();
    let mut steps = 0;
    while !b.is_empty() && steps < 24 {
        steps += 1;
        let op = b.byte();
        let pick = b.byte() as usize;
        let s = if sessions.is_empty() || op & 0x80 != 0 {
            null_mut() // every call also meets a NULL session
        } else {
            sessions[pick % sessions.len()]
        };
        let mut n = 0usize;
        let mut budget = b.byte() % 4;
        let user = &mut budget as *mut u8 as *mut c_void;
        match op & 0x7f {
            0 if sessions.len() < 3 => {
                let mut opts = rill_session_options_default();
                opts.context_len = 16 + (pick as u32 % 48);
                opts.prefill_chunk = 1 + (pick as u32 % 9);
                opts.context_policy = (pick as u32 >> 4) % 3;
                opts.pinned_tokens = pick as u32 % 5;
                let mut out = null_mut();
                let status = rill_session_new(model, &opts, &mut out);
                check(status);
                if status == rill_status::RILL_OK {
                    let cfg = c"{\"max_new_tokens\": 3, \"do_sample\": false}";
                    check(rill_session_set_generation_config(out, cfg.as_ptr()));
                    sessions.push(out);
                }
            }
            1 if !s.is_null() => {
                rill_session_free(s);
                sessions.retain(|&x| x != s);
                tainted.retain(|&x| x != s);
            }
            2 => {
                let status = rill_session_set_generation_config(s, cstr(b.slice()).as_ptr());
                check(status);
                if status == rill_status::RILL_OK {
                    tainted.push(s);
                }
            }
            3 => check(rill_session_generate(
                s,
                cstr(b.slice()).as_ptr(),
                Some(stop_after),
                user,
                &mut n,
            )),
            4 => check(rill_session_append(
                s,
                cstr(b.slice()).as_ptr(),
                None,
                null_mut(),
                &mut n,
            )),
            5 => check(rill_session_truncate(s, b.byte() as usize)),
            6 => {
                let mut ids = vec![0u32; b.byte() as usize];
                check(rill_session_tokens(s, ids.as_mut_ptr(), ids.len(), &mut n));
            }
            7 => {
                let mut needed = 0;
                let status = rill_session_save(s, null_mut(), 0, &mut needed);
                if status == rill_status::RILL_ERR_BUFFER_TOO_SMALL {
                    blob = vec![0; needed];
                    check(rill_session_save(
                        s,
                        blob.as_mut_ptr(),
                        blob.len(),
                        &mut needed,
                    ));
                } else {
                    check(status);
                }
            }
            8 => {
                // Load the last saved blob, corrupted at fuzzer-chosen places.
                let mut copy = blob.clone();
                for _ in 0..b.byte() % 3 {
                    let at = u16::from_le_bytes([b.byte(), b.byte()]) as usize;
                    if let Some(x) = copy.get_mut(at) {
                        *x ^= b.byte() | 1;
                    }
                }
                copy.truncate(copy.len().saturating_sub(b.byte() as usize % 2));
                check(rill_session_load(s, copy.as_ptr(), copy.len()));
            }
            9 => {
                let mut ids = vec![0u32; b.byte() as usize % 64];
                check(rill_tokenize(
                    model,
                    cstr(b.slice()).as_ptr(),
                    ids.as_mut_ptr(),
                    ids.len(),
                    &mut n,
                ));
            }
            10 => {
                let ids: Vec<u32> = b
                    .slice()
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
                    .collect();
                let mut buf = vec![0 as c_char; b.byte() as usize];
                let mut needed = 0;
                check(rill_detokenize(
                    model,
                    ids.as_ptr(),
                    ids.len(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut needed,
                ));
            }
            11 => check(rill_session_cancel(s)),
            12 => check(rill_session_chat(
                s,
                cstr(b.slice()).as_ptr(),
                None,
                null_mut(),
                &mut n,
            )),
            13 => {
                let mut info: rill_generation_info = unsafe { std::mem::zeroed() };
                info.struct_size = std::mem::size_of::<rill_generation_info>();
                check(rill_session_last_generation(s, &mut info));
            }
            14 => {
                let (name, params) = (cstr(b.slice()), cstr(b.slice()));
                let status = rill_session_add_sampler(s, name.as_ptr(), params.as_ptr());
                check(status);
                if status == rill_status::RILL_OK {
                    tainted.push(s);
                }
            }
            15 => check(rill_session_generate(
                s,
                null(),
                None,
                null_mut(),
                null_mut(),
            )),
            _ => {}
        }
    }
    // Every live session still works after whatever happened to it.
    for s in sessions {
        let mut n = 0;
        check(rill_session_truncate(s, 0));
        let cfg = c"{\"max_new_tokens\": 2, \"do_sample\": false, \"stop_strings\": []}";
        if rill_session_set_generation_config(s, cfg.as_ptr()) == rill_status::RILL_OK {
            let status = rill_session_generate(s, c"In the".as_ptr(), None, null_mut(), &mut n);
            check(status);
            if !tainted.contains(&s) {
                assert_eq!(status, rill_status::RILL_OK, "a session stopped working");
            }
        }
        rill_session_free(s);
    }
});
