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
///
/// As transformers' `StopStringCriteria`, a stop string may begin in the text before the
/// generated text (the prompt's end, given as context) as long as it ends in generated
/// text; the context itself is never emitted.
#[derive(Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
    /// The end of the text before `held` (context, then released text): as much as a
    /// stop string could begin in.
    recent: String,
}

impl StopStrings {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self::with_context(stops, "")
    }

    /// A matcher for `stops` whose matches may begin in `context`, the text just before
    /// the generated text (its end is enough: the longest stop string's length).
    pub fn with_context(stops: &[String], context: &str) -> Self {
        let mut m = StopStrings {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            recent: String::new(),
        };
        m.remember(context);
        m
    }

    /// Appends released text to `recent`, keeping as much as a stop string could begin in.
    fn remember(&mut self, text: &str) {
        self.recent.push_str(text);
        let longest = self.stops.iter().map(String::len).max().unwrap_or(1);
        let mut cut = self.recent.len().saturating_sub(longest - 1);
        while !self.recent.is_char_boundary(cut) {
            cut -= 1;
        }
        self.recent.drain(..cut);
    }

    /// Whether there is anything to match.
    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Adds a piece of text (whole characters).
    pub fn push(&mut self, piece: &str) -> Matched {
        self.held.push_str(piece);
        let seen = self.recent.len();
        let text = format!("{}{}", self.recent, self.held);
        // The earliest stop string that ends in held text (one wholly in `recent` was
        // there before: context, or released because no stop string completed).
        let first = self
            .stops
            .iter()
            .filter_map(|s| occurrence_ending_after(&text, s, seen))
            .min();
        if let Some(at) = first {
            let before = self.held[..at.saturating_sub(seen)].to_string();
            self.held.clear();
            return Matched::Stop(before);
        }
        // Keep the longest tail of held text that may begin a stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&text, s))
            .max()
            .unwrap_or(0)
            .min(self.held.len());
        let release = self.held.len() - keep;
        let out = self.held[..release].to_string();
        self.held.drain(..release);
        self.remember(&out);
        Matched::No(out)
    }

    /// Releases what is held back (generation ended without a match).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Where the last tokens of `prompt` start whose text a stop string may begin in: enough
/// of them for the longest stop string's bytes (by `bytes`, each token's; special tokens
/// add none), and a few bytes more for a character the first one may split.
pub(crate) fn context_start(
    prompt: &[u32],
    stops: &[String],
    bytes: &crate::vocabulary::TokenBytes,
) -> usize {
    let longest = stops.iter().map(String::len).max().unwrap_or(0);
    if longest == 0 {
        return prompt.len();
    }
    let (mut start, mut have) = (prompt.len(), 0);
    while start > 0 && have < longest + 3 {
        start -= 1;
        have += bytes.get(prompt[start]).map_or(0, <[u8]>::len);
    }
    start
}

/// The text of `prompt`'s last tokens that a stop string may begin in (empty when there
/// are no stop strings), decoded on its own as generated text is.
pub(crate) fn prompt_context(
    model: &crate::model::Model,
    prompt: &[u32],
    stops: &[String],
) -> crate::error::Result<String> {
    if stops.iter().all(String::is_empty) {
        return Ok(String::new());
    }
    let start = context_start(prompt, stops, model.token_bytes());
    model.detokenize(&prompt[start..])
}

/// Whether `after`, the text of a sequence one token longer than the one whose text is
/// `before`, holds a stop string that ends in what the token changed: transformers'
/// `StopStringCriteria` rule (the match must overlap the last token), on decoded text.
pub(crate) fn completes_stop(before: &str, after: &str, stops: &[String]) -> bool {
    // Bytes the two texts share (a token may complete a character `before` ends with).
    let mut common = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !after.is_char_boundary(common) {
        common -= 1;
    }
    stops
        .iter()
        .any(|s| occurrence_ending_after(after, s, common).is_some())
}

/// Where the earliest occurrence of `stop` in `text` that ends after byte `seen` begins
/// (occurrences may overlap: one wholly before `seen` does not hide a later one).
fn occurrence_ending_after(text: &str, stop: &str, seen: usize) -> Option<usize> {
    if stop.is_empty() {
        return None;
    }
    let mut at = seen.saturating_sub(stop.len() - 1).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    while let Some(i) = text[at..].find(stop) {
        let start = at + i;
        if start + stop.len() > seen {
            return Some(start);
        }
        at = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    None
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
    fn a_stop_completes_only_where_the_new_token_changed_the_text() {
        let stops = vec!["stop".to_string(), "é!".to_string()];
        // transformers' examples: the match must overlap the last token.
        assert!(completes_stop("st", "stop", &stops));
        assert!(completes_stop("las", "lastopper", &stops));
        assert!(completes_stop("", "stop", &stops));
        assert!(!completes_stop("stop", "stopat", &stops));
        assert!(!completes_stop("a stop", "a stop here", &stops));
        assert!(!completes_stop("sto", "stoa", &stops));
        // A token that completes a split character, then the stop after it.
        assert!(completes_stop("caf\u{FFFD}", "café!", &stops));
        assert!(!completes_stop("caf\u{FFFD}", "café", &stops));
        assert!(!completes_stop("abc", "abcd", &[String::new()]));
    }

    #[test]
    fn a_stop_may_begin_in_the_context_but_must_end_in_generated_text() {
        let stops = vec!["User:".to_string()];
        let mut m = StopStrings::with_context(&stops, "...\nUser: hi\nUs");
        assert_eq!(m.push("er"), Matched::No(String::new()));
        assert_eq!(m.push(": x"), Matched::Stop(String::new()));
        // The context's own stop string (wholly before the generated text) is no match.
        let mut m = StopStrings::with_context(&stops, "User:");
        assert_eq!(m.push(" fine"), Matched::No(" fine".into()));
        // Held text that stops matching is released and remembered as context.
        let mut m = StopStrings::with_context(&stops, "");
        assert_eq!(m.push("a Us"), Matched::No("a ".into()));
        assert_eq!(m.push("e"), Matched::No(String::new()));
        assert_eq!(m.push("d"), Matched::No("Used".into()));
        assert_eq!(m.push(" User"), Matched::No(" ".into()));
        assert_eq!(m.push(":"), Matched::Stop(String::new()));
        let mut m = StopStrings::with_context(&["abcd".to_string()], "xab");
        assert_eq!(m.push("c"), Matched::No(String::new()));
        assert_eq!(m.push("d!"), Matched::Stop(String::new()));
        // An occurrence wholly in the context does not hide an overlapping one.
        let blank = vec!["\n\n".to_string(), "User:".to_string()];
        let mut m = StopStrings::with_context(&blank, "..\n\n");
        assert_eq!(m.push("\n"), Matched::Stop(String::new()));
        let mut m = StopStrings::with_context(&["éé".to_string()], "éé");
        assert_eq!(m.push("é"), Matched::Stop(String::new()));
        assert!(completes_stop("éé", "ééé", &["éé".to_string()]));
        assert!(completes_stop("a\n\n", "a\n\n\n", &blank));
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
