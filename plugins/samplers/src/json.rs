//! `json`: keeps the generated text a prefix of one JSON value (RFC 8259: objects,
//! arrays, strings with their escapes and well-formed UTF-8, numbers, `true`, `false`,
//! `null`), and lets the generation end only once the value is complete. A `\u` escape
//! of a surrogate must be half of a pair (RFC 8259 lets a lone one through its grammar,
//! but strict parsers such as serde_json refuse it). Every state it keeps alive can still
//! be completed within its limits. A pushdown
//! recognizer over bytes whose whole state is a few machine words (the open containers
//! are bits of a `u64`), so checking a candidate copies nothing on the heap.
//!
//! Parameters: `top` (`"any"`, the default, or `"object"`: the value must be an
//! object, as JSON modes ask), `max_depth` (nesting, at most 64; default 32),
//! `max_whitespace` (consecutive whitespace bytes between tokens, default 16, so a model
//! cannot loop on blank lines), `max_string_bytes` (the bytes of a string or key before
//! its closing quote, escapes included; 0, the default, for no limit: a small model
//! otherwise tends to ramble inside a string). No whitespace may follow the complete
//! value: the generation ends there.

use crate::constraint::{Constrained, Recognizer};

/// What the innermost context expects next (outside a token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Expect {
    /// A value (the top, after `:`, after `,` in an array).
    Value,
    /// A value or `]` (after `[`).
    ValueOrEnd,
    /// A key or `}` (after `{`).
    KeyOrEnd,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the container's end after a value.
    CommaOrEnd,
    /// Nothing: the top value is complete.
    Done,
}

/// Where a number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    ExpStart,
    ExpSign,
    Exp,
}

impl Num {
    /// Whether the number may end here.
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

/// Inside a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lex {
    None,
    /// A string.
    Str(Str),
    Num(Num),
    /// `true` / `false` / `null`: which word, how many bytes read.
    Word(u8, u8),
}

/// Where a string is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Str {
    /// An object's key.
    key: bool,
    /// 0 none, 1 after `\`, 2..=5: hex digits of a `\u` escape still to come, plus 1.
    escape: u8,
    /// The digits of the `\u` escape read so far, as a number.
    hex: u16,
    /// After a high surrogate (`\uD800`–`\uDBFF`), which a low one must follow: 1
    /// expects `\`, 2 expects `u`, 3 reads the low one's digits.
    low: u8,
    /// UTF-8 continuation bytes still to come and the range of the next.
    utf8: (u8, u8, u8),
}

impl Str {
    fn new(key: bool) -> Str {
        Str {
            key,
            escape: 0,
            hex: 0,
            low: 0,
            utf8: (0, 0, 0),
        }
    }

    /// Bytes that must still come before the closing quote may.
    fn bytes_before_close(self) -> u16 {
        let surrogate = match self.low {
            1 => 6,
            2 => 5,
            _ => 0,
        };
        let digits = if self.escape >= 2 { self.escape - 1 } else { 0 };
        // Digits of a high surrogate's escape: its low one's six bytes come after.
        let lead = match self.escape {
            3 => self.hex,
            2 => self.hex >> 4,
            _ => 0,
        };
        let high = self.low == 0 && (0xD8..=0xDB).contains(&lead);
        u16::from(self.utf8.0)
            + u16::from(self.escape == 1)
            + u16::from(digits)
            + surrogate
            + if high { 6 } else { 0 }
    }
}

const WORDS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// The recognizer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Open containers, innermost in bit 0: 1 an object, 0 an array.
    stack: u64,
    depth: u8,
    expect: Expect,
    lex: Lex,
    /// Consecutive whitespace bytes.
    whitespace: u8,
    /// Bytes of the string being read.
    string_bytes: u16,
}

/// A JSON value recognizer.
#[derive(Clone, Debug)]
pub struct Json {
    object_only: bool,
    max_depth: u8,
    max_whitespace: u8,
    max_string_bytes: u16,
}

impl Json {
    /// From the sampler's parameters (see the module documentation).
    pub fn from_params(v: &serde_json::Value) -> Result<Json, String> {
        let object_only = match v.get("top").and_then(|t| t.as_str()) {
            None | Some("any") => false,
            Some("object") => true,
            Some(other) => {
                return Err(format!(
                    "`top` must be \"any\" or \"object\", got {other:?}"
                ))
            }
        };
        let int = |key: &str, default: u64, max: u64| -> Result<u64, String> {
            match v.get(key) {
                None => Ok(default),
                Some(x) => x
                    .as_u64()
                    .filter(|&n| n <= max)
                    .ok_or_else(|| format!("`{key}` must be an integer in 0..={max}, got {x}")),
            }
        };
        Ok(Json {
            object_only,
            max_depth: int("max_depth", 32, 64)?.max(1) as u8,
            max_whitespace: int("max_whitespace", 16, 255)? as u8,
            max_string_bytes: int("max_string_bytes", 0, 65535)? as u16,
        })
    }

    /// The `json` sampler's constraint.
    pub fn constraint(params: &serde_json::Value) -> Result<Constrained<Json>, String> {
        Ok(Constrained::new(Json::from_params(params)?))
    }

    /// After a value ends: `,`/end in a container, nothing at the top.
    fn value_done(s: &mut State) {
        s.expect = if s.depth == 0 {
            Expect::Done
        } else {
            Expect::CommaOrEnd
        };
    }

    fn in_object(s: &State) -> bool {
        s.depth > 0 && s.stack & 1 == 1
    }

    /// A byte outside any token.
    fn structural(&self, mut s: State, b: u8) -> Option<State> {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if s.expect == Expect::Done || s.whitespace >= self.max_whitespace {
                return None;
            }
            s.whitespace += 1;
            return Some(s);
        }
        s.whitespace = 0;
        match s.expect {
            Expect::Value | Expect::ValueOrEnd => {
                if self.object_only && s.depth == 0 && b != b'{' {
                    return None;
                }
                match b {
                    b'{' | b'[' => {
                        if s.depth >= self.max_depth {
                            return None;
                        }
                        s.stack = (s.stack << 1) | u64::from(b == b'{');
                        s.depth += 1;
                        s.expect = if b == b'{' {
                            Expect::KeyOrEnd
                        } else {
                            Expect::ValueOrEnd
                        };
                    }
                    b']' if s.expect == Expect::ValueOrEnd => return Some(Self::close(s)),
                    b'"' => s.lex = Lex::Str(Str::new(false)),
                    b'-' => s.lex = Lex::Num(Num::Minus),
                    b'0' => s.lex = Lex::Num(Num::Zero),
                    b'1'..=b'9' => s.lex = Lex::Num(Num::Int),
                    b't' => s.lex = Lex::Word(0, 1),
                    b'f' => s.lex = Lex::Word(1, 1),
                    b'n' => s.lex = Lex::Word(2, 1),
                    _ => return None,
                }
            }
            Expect::KeyOrEnd | Expect::Key => match b {
                b'"' => s.lex = Lex::Str(Str::new(true)),
                b'}' if s.expect == Expect::KeyOrEnd => return Some(Self::close(s)),
                _ => return None,
            },
            Expect::Colon => {
                if b != b':' {
                    return None;
                }
                s.expect = Expect::Value;
            }
            Expect::CommaOrEnd => match (b, Self::in_object(&s)) {
                (b',', true) => s.expect = Expect::Key,
                (b',', false) => s.expect = Expect::Value,
                (b'}', true) | (b']', false) => return Some(Self::close(s)),
                _ => return None,
            },
            Expect::Done => return None,
        }
        Some(s)
    }

    /// Closes the innermost container; its value is done.
    fn close(mut s: State) -> State {
        s.stack >>= 1;
        s.depth -= 1;
        Self::value_done(&mut s);
        s
    }

    /// A byte inside a string.
    fn string(&self, mut s: State, mut st: Str, b: u8) -> Option<State> {
        let (need, lo, hi) = st.utf8;
        if need > 0 {
            if !(lo..=hi).contains(&b) {
                return None;
            }
            st.utf8 = (need - 1, 0x80, 0xBF);
        } else if st.low == 1 || st.low == 2 {
            // After a high surrogate only its low one's `\u` may come.
            if b != [b'\\', b'u'][st.low as usize - 1] {
                return None;
            }
            st.low += 1;
            if st.low == 3 {
                (st.escape, st.hex) = (5, 0);
            }
        } else if st.escape == 1 {
            match b {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => st.escape = 0,
                b'u' => (st.escape, st.hex) = (5, 0),
                _ => return None,
            }
        } else if st.escape >= 2 {
            let digit = (b as char).to_digit(16)? as u16;
            st.hex = st.hex * 16 + digit;
            let read = 6 - st.escape; // digits read, this one included
                                      // The first two digits tell a surrogate: a low one must follow a high one,
                                      // and only a high one.
            if (read == 1 && st.low == 3 && st.hex != 0xD)
                || (read == 2 && (0xDC..=0xDF).contains(&st.hex) != (st.low == 3))
            {
                return None;
            }
            st.escape -= 1;
            if st.escape == 1 {
                st.escape = 0;
                st.low = if st.low == 3 {
                    0
                } else if (0xD800..=0xDBFF).contains(&st.hex) {
                    1
                } else {
                    0
                };
            }
        } else {
            match b {
                b'"' => {
                    s.lex = Lex::None;
                    s.string_bytes = 0;
                    if st.key {
                        s.expect = Expect::Colon;
                    } else {
                        Self::value_done(&mut s);
                    }
                    return Some(s);
                }
                b'\\' => st.escape = 1,
                0x00..=0x1F => return None,
                0x20..=0x7F => {}
                0xC2..=0xDF => st.utf8 = (1, 0x80, 0xBF),
                0xE0 => st.utf8 = (2, 0xA0, 0xBF),
                0xED => st.utf8 = (2, 0x80, 0x9F),
                0xE1..=0xEF => st.utf8 = (2, 0x80, 0xBF),
                0xF0 => st.utf8 = (3, 0x90, 0xBF),
                0xF1..=0xF3 => st.utf8 = (3, 0x80, 0xBF),
                0xF4 => st.utf8 = (3, 0x80, 0x8F),
                _ => return None,
            }
        }
        // Counted only under a limit (without one, states inside strings recur): a byte
        // is taken only if the string can still close within it.
        if self.max_string_bytes > 0 {
            let taken = u32::from(s.string_bytes) + 1;
            if taken + u32::from(st.bytes_before_close()) > u32::from(self.max_string_bytes) {
                return None;
            }
            s.string_bytes = taken as u16; // at most max_string_bytes
        }
        s.lex = Lex::Str(st);
        Some(s)
    }

    /// A byte inside a number; one that ends it is read again outside.
    fn number(&self, mut s: State, b: u8, n: Num) -> Option<State> {
        let digit = b.is_ascii_digit();
        let exp = b == b'e' || b == b'E';
        let next = match n {
            Num::Minus if b == b'0' => Num::Zero,
            Num::Minus if digit => Num::Int,
            Num::Zero | Num::Int | Num::Frac if exp => Num::ExpStart,
            Num::Zero | Num::Int if b == b'.' => Num::Dot,
            Num::Int if digit => Num::Int,
            Num::Dot | Num::Frac if digit => Num::Frac,
            Num::ExpStart if b == b'+' || b == b'-' => Num::ExpSign,
            Num::ExpStart | Num::ExpSign | Num::Exp if digit => Num::Exp,
            _ if n.complete() => {
                s.lex = Lex::None;
                Self::value_done(&mut s);
                return self.structural(s, b);
            }
            _ => return None,
        };
        s.lex = Lex::Num(next);
        Some(s)
    }
}

impl Recognizer for Json {
    type State = State;

    fn describe(&self) -> String {
        if self.object_only {
            "a JSON object".into()
        } else {
            "a JSON value".into()
        }
    }

    fn start(&mut self) -> Result<State, String> {
        Ok(State {
            stack: 0,
            depth: 0,
            expect: Expect::Value,
            lex: Lex::None,
            whitespace: 0,
            string_bytes: 0,
        })
    }

    fn step(&mut self, s: State, b: u8) -> Result<Option<State>, String> {
        Ok(match s.lex {
            Lex::None => self.structural(s, b),
            Lex::Str(st) => self.string(s, st, b),
            Lex::Num(n) => self.number(s, b, n),
            Lex::Word(w, at) => {
                let word = WORDS[w as usize];
                if word[at as usize] != b {
                    None
                } else if at as usize + 1 == word.len() {
                    let mut s = s;
                    s.lex = Lex::None;
                    Self::value_done(&mut s);
                    Some(s)
                } else {
                    let mut s = s;
                    s.lex = Lex::Word(w, at + 1);
                    Some(s)
                }
            }
        })
    }

    fn accepts(&mut self, s: State) -> Result<bool, String> {
        Ok(match s.lex {
            Lex::None => s.expect == Expect::Done,
            Lex::Num(n) => s.depth == 0 && n.complete(),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn json_any() -> Json {
        Json::from_params(&json!({})).unwrap()
    }

    /// The state after `text`, or `None` where it dies.
    fn run(j: &mut Json, text: &[u8]) -> Option<State> {
        let mut s = j.start().unwrap();
        for &b in text {
            s = j.step(s, b).unwrap()?;
        }
        Some(s)
    }

    /// The shortest bytes that complete `s`, breadth first over bytes enough to close
    /// any construct (every byte would make `\u` escapes' 65,536 values distinct states;
    /// a completion missed for want of a byte fails the test, it cannot pass one).
    fn completion(j: &mut Json, s: State) -> Vec<u8> {
        const BYTES: &[u8] = b"\"\\0Ddc:,{}[] eutrfalsn\x80\x90\xa0";
        let mut seen = std::collections::HashSet::new();
        let mut queue = std::collections::VecDeque::from([(s, Vec::new())]);
        while let Some((s, path)) = queue.pop_front() {
            if j.accepts(s).unwrap() {
                return path;
            }
            assert!(path.len() < 200, "no completion within 200 bytes");
            for &b in BYTES {
                if let Some(n) = j.step(s, b).unwrap() {
                    if seen.insert(n) {
                        let mut p = path.clone();
                        p.push(b);
                        queue.push_back((n, p));
                    }
                }
            }
        }
        panic!("a live state without a completion: {s:?}")
    }

    /// A pseudo-random JSON value (deterministic in `seed`).
    fn value(seed: &mut u64, depth: u32) -> Value {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (*seed >> 33) as u32;
        match if depth > 3 { r % 5 } else { r % 7 } {
            0 => Value::Null,
            1 => Value::Bool(r.is_multiple_of(2)),
            2 => json!((r % 2000) as i64 - 1000),
            3 => json!((r as f64) / 7.0e3 * if r.is_multiple_of(3) { -1.0 } else { 1e-5 }),
            4 => {
                let pool = [
                    "",
                    "a",
                    "é",
                    "\"q\"",
                    "tab\t",
                    "\\",
                    "😀x",
                    "\u{7f}",
                    "ü\n",
                    "\u{1F600}",
                ];
                json!(pool[(r % pool.len() as u32) as usize].repeat((r % 3) as usize))
            }
            5 => Value::Array((0..r % 4).map(|_| value(seed, depth + 1)).collect()),
            _ => Value::Object(
                (0..r % 4)
                    .map(|i| (format!("k{i}é"), value(seed, depth + 1)))
                    .collect(),
            ),
        }
    }

    /// Whether `text` is UTF-8 that serde_json parses as JSON, a number beyond f64
    /// (which JSON allows and serde_json refuses as out of range) counted as parsed:
    /// read as `IgnoredAny` numbers are only scanned, read as `Value` strings are checked
    /// (escapes, surrogate pairs).
    fn parses_or_overflows(text: &[u8]) -> bool {
        std::str::from_utf8(text).is_ok_and(|t| {
            serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
                && serde_json::from_str::<Value>(t).map_or_else(
                    |e| e.to_string().starts_with("number out of range"),
                    |_| true,
                )
        })
    }

    #[test]
    fn valid_documents_are_accepted_byte_by_byte() {
        let mut j = json_any();
        let mut seed = 7;
        for _ in 0..300 {
            let v = value(&mut seed, 0);
            for text in [
                serde_json::to_string(&v).unwrap(),
                serde_json::to_string_pretty(&v).unwrap(),
            ] {
                let s = run(&mut j, text.as_bytes()).unwrap_or_else(|| panic!("rejected {text}"));
                assert!(j.accepts(s).unwrap(), "not complete: {text}");
            }
        }
        for text in [
            "0",
            "-0.5e+10",
            "1E3",
            "\"\\u00e9\\n\"",
            "[]",
            "{}",
            " [ 1 , 2 ]",
            "true",
        ] {
            let s = run(&mut j, text.as_bytes()).unwrap_or_else(|| panic!("rejected {text}"));
            assert!(j.accepts(s).unwrap(), "not complete: {text}");
        }
    }

    #[test]
    fn every_live_prefix_completes_to_what_serde_json_parses_and_nothing_else_is_accepted() {
        // Mutations of valid documents (some characters written as `\u` escapes,
        // surrogate pairs included): each prefix the recognizer keeps alive must have a
        // completion that serde_json parses, also under a string length limit (no dead
        // end); what it accepts serde_json parses; what serde_json parses (no whitespace
        // after the value) it accepts, when strings are not limited.
        let limited = Json::from_params(&json!({"max_string_bytes": 7})).unwrap();
        for (mut j, exact) in [(json_any(), true), (limited, false)] {
            let mut seed = 11;
            let alphabet = b"{}[]\",:0123456789-+.eEtrufalsn \\\n\xc3\xa9\xed\xa0\x80uDdcC8";
            let (mut alive_prefixes, mut accepted) = (0, 0);
            for _ in 0..1000 {
                let v = value(&mut seed, 0);
                let mut text = serde_json::to_string(&v)
                    .unwrap()
                    .replace('😀', "\\ud83d\\uDE00")
                    .replace('é', "\\u00e9")
                    .into_bytes();
                for _ in 0..1 + (seed >> 60) {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let at = (seed >> 33) as usize % (text.len() + 1);
                    let b = alphabet[(seed >> 20) as usize % alphabet.len()];
                    match (seed >> 10) % 3 {
                        0 if at < text.len() => text[at] = b,
                        1 => text.insert(at, b),
                        _ if at < text.len() => {
                            text.remove(at);
                        }
                        _ => {}
                    }
                }
                let mut s = j.start().unwrap();
                let mut dead = false;
                for (i, &b) in text.iter().enumerate() {
                    match j.step(s, b).unwrap() {
                        Some(n) => s = n,
                        None => {
                            dead = true;
                            break;
                        }
                    }
                    if i % 2 == 0 {
                        let mut full = text[..=i].to_vec();
                        full.extend(completion(&mut j, s));
                        assert!(
                            parses_or_overflows(&full),
                            "live prefix {:?} completed to {:?}",
                            String::from_utf8_lossy(&text[..=i]),
                            String::from_utf8_lossy(&full)
                        );
                        alive_prefixes += 1;
                    }
                }
                let parses = parses_or_overflows(&text)
                    && !text.last().is_some_and(|b| b.is_ascii_whitespace());
                let accepts = !dead && j.accepts(s).unwrap();
                if exact {
                    assert_eq!(accepts, parses, "{:?}", String::from_utf8_lossy(&text));
                } else {
                    assert!(!accepts || parses, "{:?}", String::from_utf8_lossy(&text));
                }
                accepted += usize::from(accepts);
            }
            assert!(
                alive_prefixes > 1000 && accepted > 50 && accepted < 1000,
                "{alive_prefixes} {accepted}"
            );
        }
    }

    #[test]
    fn surrogate_escapes_come_in_pairs() {
        let mut j = json_any();
        let complete =
            |j: &mut Json, t: &str| run(j, t.as_bytes()).is_some_and(|s| j.accepts(s).unwrap());
        assert!(complete(&mut j, r#""\ud83d\uDE00""#));
        assert!(complete(&mut j, r#""\u00e9\uFFFF""#));
        assert!(run(&mut j, br#""\ud83d""#).is_none(), "a high one alone");
        assert!(run(&mut j, br#""\ud83dx"#).is_none());
        assert!(run(&mut j, br#""\ud83d\n"#).is_none());
        assert!(run(&mut j, br#""\ud83d\u0"#).is_none(), "not a low one");
        assert!(run(&mut j, br#""\ud83d\uD8"#).is_none(), "a high one again");
        assert!(run(&mut j, br#""\uDE"#).is_none(), "a low one alone");
        assert!(run(&mut j, br#""\uD"#).is_some());
    }

    #[test]
    fn limits_and_the_object_only_top() {
        let mut j =
            Json::from_params(&json!({"top": "object", "max_depth": 2, "max_whitespace": 2}))
                .unwrap();
        assert!(run(&mut j, b"[1]").is_none());
        assert!(run(&mut j, b"\"s\"").is_none());
        assert!(run(&mut j, b"{\"a\":[1]}").is_some());
        assert!(run(&mut j, b"{\"a\":[[1]]}").is_none(), "depth 3");
        assert!(run(&mut j, b"{  \"a\":1}").is_some());
        assert!(run(&mut j, b"{   \"a\":1}").is_none(), "three blanks");
        assert!(run(&mut j, b"{} ").is_none(), "nothing after the value");
        let mut j = Json::from_params(&json!({"max_string_bytes": 3})).unwrap();
        assert!(run(&mut j, b"[\"abc\",\"\\na\"]").is_some(), "3 bytes each");
        assert!(run(&mut j, b"\"abcd").is_none());
        assert!(
            run(&mut j, "\"\u{e9}\u{e9}".as_bytes()).is_none(),
            "4 bytes"
        );
        // The largest limit holds too (no counter wraps).
        let mut j = Json::from_params(&json!({"max_string_bytes": 65535})).unwrap();
        let mut text = vec![b'"'];
        text.extend(std::iter::repeat_n(b'a', 65535));
        assert!(run(&mut j, &text).is_some());
        text.push(b'a');
        assert!(run(&mut j, &text).is_none(), "65,536 bytes");
        assert!(Json::from_params(&json!({"top": "array"})).is_err());
        assert!(Json::from_params(&json!({"max_depth": 65})).is_err());
    }

    #[test]
    fn the_sampler_ends_a_number_or_a_value_only_where_json_allows() {
        let bytes: [&[u8]; 6] = [b"", b"1", b"]", b"[", b" ", b"2}"];
        let bytes_of = |id: u32| bytes.get(id as usize).copied();
        let mut c = Json::constraint(&json!({})).unwrap();
        let ids: Vec<u32> = (0..6).collect();
        let kept = |c: &mut Constrained<Json>, generated: &[u32]| {
            let mut logits = vec![0.0f32; 6];
            let a = c
                .restrict(&ids, &mut logits, generated, &[0], 6, &bytes_of)
                .unwrap();
            let kept: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&i| logits[i as usize] == 0.0)
                .collect();
            (kept, a.complete)
        };
        // A top-level number may end (EOS) or go on; "]" and "2}" cannot follow it.
        assert_eq!(kept(&mut c, &[1]), (vec![0, 1], true));
        // In an array: more digits, "]", a blank; "[" and "2}" not.
        assert_eq!(kept(&mut c, &[3, 1]), (vec![1, 2, 4], false));
        assert_eq!(kept(&mut c, &[3, 1, 2]), (vec![0], true));
    }
}
