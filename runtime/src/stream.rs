//! UTF-8-safe streaming of generated text: byte-level tokens may split a character, so
//! text is released only once it decodes without a trailing replacement character.

use tokenizers::Tokenizer;

/// Turns generated ids into text pieces that are always whole characters.
pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl<'t> TextStream<'t> {
    /// A stream over `tokenizer`.
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        TextStream {
            tokenizer,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }

    /// Adds a token; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Option<String> {
        self.ids.push(id);
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let now = self.decode(&self.ids[self.prefix..]);
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') {
            if let Some(piece) = now.get(before.len()..) {
                if now.starts_with(&before) {
                    let piece = piece.to_string();
                    self.prefix = self.read;
                    self.read = self.ids.len();
                    return Some(piece);
                }
            }
        }
        None
    }

    /// Whatever is still held back (an incomplete character at the very end).
    pub fn finish(&mut self) -> Option<String> {
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let now = self.decode(&self.ids[self.prefix..]);
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        now.get(before.len()..)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}
