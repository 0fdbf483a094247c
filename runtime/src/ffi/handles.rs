//! Live handles. Every pointer rill hands out (model, session, plugin) is recorded until it
//! is freed, so a pointer that was freed already, freed twice or never came from rill is
//! refused with `RILL_ERR_INVALID_ARGUMENT` instead of being read; and a session is marked
//! busy for the length of each call, so a second thread calling into the same session
//! meanwhile (or freeing it) is refused instead of racing it.
//!
//! The check and the busy mark happen under one lock, and freeing takes the same lock, so
//! a handle cannot be freed between being checked and being used. (Memory once freed may
//! be reused by a later handle of the same kind at the same address; such a stale pointer
//! then reaches the new object. That is as far as detection can go without changing the
//! handles into indices.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::RillError;

/// What a handle points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Model,
    Session,
    Plugin,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Model => "rill_model",
            Kind::Session => "rill_session",
            Kind::Plugin => "rill_plugin",
        }
    }

    fn maker(self) -> &'static str {
        match self {
            Kind::Model => "rill_model_open",
            Kind::Session => "rill_session_new",
            Kind::Plugin => "rill_plugin_load or rill_plugin_register",
        }
    }
}

fn live() -> &'static Mutex<HashMap<usize, Kind>> {
    static LIVE: std::sync::OnceLock<Mutex<HashMap<usize, Kind>>> = std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<usize, Kind>> {
    live().lock().unwrap_or_else(|p| p.into_inner())
}

fn not_live(kind: Kind, what: &str) -> RillError {
    RillError::InvalidArgument(format!(
        "`{what}` is not a live {}: it was freed already, or did not come from {}",
        kind.type_name(),
        kind.maker()
    ))
}

/// Records a new handle.
pub(crate) fn register<T>(ptr: *const T, kind: Kind) {
    lock().insert(ptr as usize, kind);
}

/// Runs `f` with the registry locked after checking that `ptr` is a live handle of
/// `kind` (NULL and anything else are errors naming `what`).
pub(crate) fn with_live<T, R>(
    ptr: *const T,
    kind: Kind,
    what: &str,
    f: impl FnOnce() -> Result<R, RillError>,
) -> Result<R, RillError> {
    if ptr.is_null() {
        return Err(RillError::InvalidArgument(format!("`{what}` is NULL")));
    }
    let guard = lock();
    if guard.get(&(ptr as usize)) != Some(&kind) {
        return Err(not_live(kind, what));
    }
    let out = f();
    drop(guard);
    out
}

/// Removes a live handle of `kind` for freeing, unless `busy` says a call is using it.
/// Returns whether the caller may free it; when not, the reason is the thread's last
/// error (the free functions return nothing).
pub(crate) fn unregister<T>(ptr: *const T, kind: Kind, busy: impl FnOnce() -> bool) -> bool {
    let mut guard = lock();
    let refused = if guard.get(&(ptr as usize)) != Some(&kind) {
        Some(not_live(kind, "handle").to_string())
    } else if busy() {
        Some(format!(
            "the {} is in use by a call on another thread; free it after that call returns",
            kind.type_name()
        ))
    } else {
        None
    };
    match refused {
        Some(message) => {
            super::error::set_last_error(&format!("free ignored: {message}"));
            false
        }
        None => {
            guard.remove(&(ptr as usize));
            true
        }
    }
}

/// A session's in-use mark, held for the length of one call.
pub(crate) struct Busy<'a>(&'a AtomicBool);

impl<'a> Busy<'a> {
    /// Marks `flag` busy, or says that another thread is using the session.
    pub(crate) fn acquire(flag: &'a AtomicBool) -> Result<Self, RillError> {
        flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| Busy(flag))
            .map_err(|_| {
                RillError::InvalidArgument(
                    "the session is in use by a call on another thread; a session is used by one thread at a time (only rill_session_cancel may be called meanwhile)".into(),
                )
            })
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
