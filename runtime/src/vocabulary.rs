//! The bytes each token adds to the generated text, for samplers that constrain the text
//! (a pattern, a grammar; `rill_sampler_context.token_bytes`). Read from the tokenizer's
//! vocabulary through its decoder's byte mapping, so a byte-level token that holds part of
//! a UTF-8 character gives exactly that part, which decoding to a string cannot.

use std::collections::HashMap;

use tokenizers::Tokenizer;

/// Every token's bytes, in one buffer.
#[derive(Debug, Default)]
pub struct TokenBytes {
    bytes: Vec<u8>,
    /// `ends[id]`: where token `id`'s bytes end (they start where the previous id's end).
    ends: Vec<usize>,
}

/// How a tokenizer's vocabulary strings become text.
#[derive(Debug, PartialEq)]
enum Style {
    /// GPT-2's byte-level alphabet (Llama 3, Qwen, GPT-2, rill's default model).
    ByteLevel,
    /// SentencePiece pieces: `▁` for a space, `<0xHH>` byte-fallback pieces (Llama 2,
    /// Mistral, Gemma).
    SentencePiece,
    /// Anything else: each token decoded on its own (a partial character is lost).
    Decoded,
}

impl TokenBytes {
    /// The bytes of ids `0..vocab` of `tokenizer` (an id it does not know adds nothing).
    pub fn of(tokenizer: &Tokenizer, vocab: usize) -> TokenBytes {
        let style = style_of(tokenizer);
        let alphabet = byte_level_alphabet();
        let special: HashMap<u32, bool> = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, t)| (id, t.special))
            .collect();
        let mut out = TokenBytes::default();
        for id in 0..vocab as u32 {
            match special.get(&id) {
                Some(true) => {}
                // An added token's content is literal text, not vocabulary alphabet.
                Some(false) => {
                    if let Some(t) = tokenizer.id_to_token(id) {
                        out.bytes.extend_from_slice(t.as_bytes());
                    }
                }
                None => match (&style, tokenizer.id_to_token(id)) {
                    (_, None) => {}
                    (Style::ByteLevel, Some(t)) => {
                        out.bytes
                            .extend(t.chars().flat_map(|c| match alphabet.get(&c) {
                                Some(&b) => vec![b],
                                None => c.to_string().into_bytes(),
                            }))
                    }
                    (Style::SentencePiece, Some(t)) => match byte_piece(&t) {
                        Some(b) => out.bytes.push(b),
                        None => out.bytes.extend(t.replace('\u{2581}', " ").bytes()),
                    },
                    (Style::Decoded, Some(_)) => {
                        let text = tokenizer.decode(&[id], false).unwrap_or_default();
                        out.bytes.extend(text.bytes());
                    }
                },
            }
            out.ends.push(out.bytes.len());
        }
        out
    }

    /// Token `id`'s bytes, or `None` outside the vocabulary.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        let end = *self.ends.get(id)?;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        Some(&self.bytes[start..end])
    }

    /// How many ids it covers.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it covers no id.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

fn style_of(tokenizer: &Tokenizer) -> Style {
    let decoder = serde_json::to_string(&tokenizer.get_decoder()).unwrap_or_default();
    if decoder.contains(r#""type":"ByteLevel""#) {
        Style::ByteLevel
    } else if decoder.contains(r#""type":"ByteFallback""#)
        || decoder.contains(r#""type":"Metaspace""#)
        || decoder.contains('\u{2581}')
    {
        Style::SentencePiece
    } else {
        Style::Decoded
    }
}

/// The byte of a SentencePiece byte-fallback piece such as `<0x0A>`.
fn byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// GPT-2's byte-level alphabet, character to byte: printable bytes stand for
/// themselves, the others (controls, space, 127–160, 173) for 256, 257, ... in order.
fn byte_level_alphabet() -> HashMap<char, u8> {
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
            let c = if printable {
                b
            } else {
                next += 1;
                next - 1
            };
            (char::from_u32(c).expect("below the surrogates"), b as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentencepiece_pieces_give_spaces_and_fallback_bytes() {
        let json = r#"{
          "version": "1.0", "truncation": null, "padding": null,
          "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
          ],
          "normalizer": null, "pre_tokenizer": null, "post_processor": null,
          "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": {"<unk>": 0, "<s>": 1, "<0xC3>": 2, "<0xA9>": 3, "\u2581caf": 4, "s": 5},
            "merges": []}
        }"#;
        let tokenizer = Tokenizer::from_bytes(json).unwrap();
        let t = TokenBytes::of(&tokenizer, 7);
        assert_eq!(t.len(), 7);
        assert_eq!(t.get(1), Some(&b""[..]), "special");
        assert_eq!(t.get(2), Some(&[0xC3][..]));
        assert_eq!(t.get(4), Some(&b" caf"[..]));
        assert_eq!(t.get(6), Some(&b""[..]), "an id the tokenizer lacks");
        assert_eq!(t.get(7), None);
        let joined: Vec<u8> = [4, 2, 3, 5]
            .iter()
            .flat_map(|&i| t.get(i).unwrap().to_vec())
            .collect();
        assert_eq!(String::from_utf8(joined).unwrap(), " cafés");
    }

    #[test]
    fn the_byte_level_alphabet_covers_every_byte_once() {
        let a = byte_level_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[&'A'], b'A');
        assert_eq!(a[&'\u{120}'], b' ', "GPT-2's Ġ");
        assert_eq!(a[&'\u{10A}'], b'\n', "GPT-2's Ċ");
    }
}
