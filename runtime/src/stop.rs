//! Stop conditions that look at text or come from outside the decode loop: stop strings
//! matched across token boundaries, and a cancellation flag another thread may set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag that stops a session's generation in progress; cheap to clone and `Send +
/// Sync`, so a UI thread can hold one while another thread generates.
///
/// The session clears the flag when a generation starts: a cancel that arrives while no
/// generation runs has no effect.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Asks the generation in progress to stop after its current forward pass.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a cancel was asked since the last reset.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What [`StopStrings::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched {
    /// No stop string completed; the text that is certainly not part of one (may be empty).
    No(String),
    /// A stop string completed: the text before it. Nothing after it is released.
    Stop(String),
}

/// Finds stop strings in streamed text. Text that could still turn out to be the start of
/// a stop string is held back, so the stop string itself is never emitted, even when it
/// spans several tokens.
#[derive(Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

impl StopStrings {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        StopStrings {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Whether there is anything to match.
    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Adds a piece of text (whole characters).
    pub fn push(&mut self, piece: &str) -> Matched {
        self.held.push_str(piece);
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            let before = self.held[..at].to_string();
            self.held.clear();
            return Matched::Stop(before);
        }
        // Keep the longest tail of `held` that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let release = self.held.len() - keep;
        let out = self.held[..release].to_string();
        self.held.drain(..release);
        Matched::No(out)
    }

    /// Releases what is held back (generation ended without a match).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`,
/// ending on character boundaries of both.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopStrings::new(&stops);
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                Matched::No(t) => out.push_str(&t),
                Matched::Stop(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn a_stop_string_split_across_pieces_is_found_and_not_emitted() {
        assert_eq!(
            run(&["\nuser:"], &["Hello", " there\nu", "se", "r: more"]),
            ("Hello there".to_string(), true)
        );
    }

    #[test]
    fn held_back_text_is_released_when_it_stops_matching() {
        let stops = vec!["abc".to_string()];
        let mut m = StopStrings::new(&stops);
        assert_eq!(m.push("xa"), Matched::No("x".into()));
        assert_eq!(m.push("b"), Matched::No(String::new()));
        assert_eq!(m.push("d"), Matched::No("abd".into()));
        assert_eq!(run(&["abc"], &["xab"]), ("xab".to_string(), false));
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        assert_eq!(run(&["END", "D"], &["ABCEND"]), ("ABC".to_string(), true));
        assert_eq!(run(&["é!"], &["café", "!x"]), ("caf".to_string(), true));
    }

    #[test]
    fn no_stops_releases_everything_at_once() {
        let mut m = StopStrings::new(&[String::new()]);
        assert!(m.is_empty());
        assert_eq!(m.push("abc"), Matched::No("abc".into()));
    }

    #[test]
    fn cancel_token_is_shared() {
        let t = CancelToken::default();
        let u = t.clone();
        u.cancel();
        assert!(t.is_cancelled());
        t.reset();
        assert!(!u.is_cancelled());
    }
}
