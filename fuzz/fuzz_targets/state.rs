//! The saved-state loader: any blob is restored or refused with `RillError::State`, and a
//! refused blob leaves the session as it was (it generates the same greedy tokens).
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use rill::{GenerationConfig, Session, SessionOptions};

struct Fixture {
    session: Session,
    /// Greedy tokens after "In the beginning" from a fresh session.
    expected: Vec<u32>,
}

fn greedy(s: &mut Session) -> Vec<u32> {
    s.truncate(0).unwrap();
    s.generate("In the beginning", |_| true).unwrap().tokens
}

fn fixture() -> &'static Mutex<Fixture> {
    static F: OnceLock<Mutex<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let mut session = Session::new(
            rill_fuzz::model(),
            SessionOptions {
                context_len: 64,
                ..Default::default()
            },
        )
        .unwrap();
        session
            .set_generation_config(GenerationConfig {
                do_sample: Some(false),
                max_new_tokens: Some(3),
                ..Default::default()
            })
            .unwrap();
        let expected = greedy(&mut session);
        Mutex::new(Fixture { session, expected })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut f = fixture().lock().unwrap();
    let before = f.session.history();
    match f.session.load_state(data) {
        Ok(()) => {
            // A restored session goes on generating (or stops cleanly at a full context).
            let _ = f.session.generate("", |_| true);
            let _ = f.session.append(" and", |_| true);
        }
        Err(e) => {
            assert!(matches!(e, rill::RillError::State(_)), "{e}");
            assert_eq!(
                f.session.history(),
                before,
                "a refused blob changed the session"
            );
        }
    }
    let expected = f.expected.clone();
    f.session
        .set_generation_config(GenerationConfig {
            do_sample: Some(false),
            max_new_tokens: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(greedy(&mut f.session), expected);
});
