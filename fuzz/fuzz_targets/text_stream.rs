//! The UTF-8 streaming assembler and the stop-string matcher: for any token ids, the
//! streamed pieces are whole characters that add up to the detokenized text; for any
//! stop strings, the released text never contains one and is a prefix of the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rill::stop::{Matched, StopStrings};
use rill::stream::TextStream;
use tokenizers::Tokenizer;

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_file(rill_fuzz::model_dir().join("tokenizer.json")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut b = rill_fuzz::Bytes(data);
    let stops: Vec<String> = (0..b.byte() % 3)
        .map(|_| String::from_utf8_lossy(b.slice()).into_owned())
        .collect();
    let tok = tokenizer();
    let vocab = tok.get_vocab_size(true) as u32;
    let ids: Vec<u32> =
        b.0.chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32 % vocab)
            .collect();
    let mut stream = TextStream::new(tok);
    let mut pieces = Vec::new();
    for &id in &ids {
        pieces.extend(stream.push(id));
    }
    pieces.extend(stream.finish());
    let whole = tok.decode(&ids, true).unwrap();
    assert_eq!(pieces.concat(), whole);

    let mut matcher = StopStrings::new(&stops);
    let (mut out, mut stopped) = (String::new(), false);
    for p in &pieces {
        match matcher.push(p) {
            Matched::No(t) => out.push_str(&t),
            Matched::Stop(t) => {
                out.push_str(&t);
                stopped = true;
                break;
            }
        }
    }
    if !stopped {
        out.push_str(&matcher.finish());
        assert_eq!(out, whole);
    }
    assert!(whole.starts_with(&out));
    for s in stops.iter().filter(|s| !s.is_empty()) {
        assert!(
            !out.contains(s.as_str()),
            "released text contains stop {s:?}"
        );
    }
    if stopped {
        let rest = &whole[out.len()..];
        assert!(stops
            .iter()
            .any(|s| !s.is_empty() && rest.starts_with(s.as_str())));
    }
});
