//! The vocabulary as a trie of token bytes, for the text constraints: walking it from a
//! recognizer's state steps through each prefix that tokens share once, and skips every
//! token below a byte the recognizer refuses.

use crate::constraint::Recognizer;

/// One node: the byte that leads to it, its first child and next sibling (0: none; the
/// root, node 0, is nobody's child), and the tokens whose bytes end here.
#[derive(Debug, Clone)]
struct Node {
    byte: u8,
    first_child: u32,
    next_sibling: u32,
    tokens: (u32, u32),
}

/// Token bytes of ids `0..vocab` in a trie.
#[derive(Debug, Clone)]
pub struct VocabTrie {
    vocab: usize,
    nodes: Vec<Node>,
    /// Token ids, each node's a contiguous run.
    tokens: Vec<u32>,
}

impl VocabTrie {
    /// The trie of every token with bytes among ids `0..vocab`.
    pub fn of<'b>(vocab: usize, bytes_of: &dyn Fn(u32) -> Option<&'b [u8]>) -> VocabTrie {
        let mut entries: Vec<(&[u8], u32)> = (0..vocab as u32)
            .filter_map(|id| bytes_of(id).filter(|b| !b.is_empty()).map(|b| (b, id)))
            .collect();
        entries.sort_unstable();
        let root = Node {
            byte: 0,
            first_child: 0,
            next_sibling: 0,
            tokens: (0, 0),
        };
        let mut trie = VocabTrie {
            vocab,
            nodes: vec![root],
            tokens: Vec::with_capacity(entries.len()),
        };
        // The nodes of the previous entry's bytes, root first, and each one's last child.
        let mut path: Vec<u32> = vec![0];
        let mut last_child: Vec<u32> = vec![0];
        let mut previous: &[u8] = &[];
        for (bytes, id) in entries {
            let shared = previous
                .iter()
                .zip(bytes)
                .take_while(|(a, b)| a == b)
                .count();
            path.truncate(shared + 1);
            for &b in &bytes[shared..] {
                let parent = *path.last().expect("the root stays") as usize;
                let node = trie.nodes.len() as u32;
                trie.nodes.push(Node {
                    byte: b,
                    first_child: 0,
                    next_sibling: 0,
                    tokens: (0, 0),
                });
                match last_child[parent] {
                    0 => trie.nodes[parent].first_child = node,
                    sibling => trie.nodes[sibling as usize].next_sibling = node,
                }
                last_child[parent] = node;
                last_child.push(0);
                path.push(node);
            }
            let end = *path.last().expect("non-empty bytes") as usize;
            let at = trie.tokens.len() as u32;
            if trie.nodes[end].tokens.1 == 0 {
                trie.nodes[end].tokens = (at, at);
            }
            trie.tokens.push(id);
            trie.nodes[end].tokens.1 = at + 1;
            previous = bytes;
        }
        trie
    }

    /// The ids it was built over.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Sets in `allowed` (one bit per id) each token whose bytes `recognizer` reads from
    /// `state` without refusing and after which it is still alive. `None` when the
    /// recognizer's earlier states became void on the way (its epoch changed).
    pub fn allowed<R: Recognizer>(
        &self,
        recognizer: &mut R,
        state: R::State,
    ) -> Result<Option<Vec<u64>>, String> {
        let epoch = recognizer.epoch();
        let mut allowed = vec![0u64; self.vocab.div_ceil(64)];
        let mut stack = vec![(0u32, state)];
        // Every call may void the states on the stack: check before using another.
        while let Some((n, s)) = stack.pop() {
            let node = &self.nodes[n as usize];
            let (start, end) = node.tokens;
            if end > start {
                let alive = recognizer.alive(s)?;
                if recognizer.epoch() != epoch {
                    return Ok(None);
                }
                if alive {
                    for &t in &self.tokens[start as usize..end as usize] {
                        allowed[t as usize / 64] |= 1 << (t % 64);
                    }
                }
            }
            let mut child = node.first_child;
            while child != 0 {
                let c = &self.nodes[child as usize];
                let next = recognizer.step(s, c.byte)?;
                if recognizer.epoch() != epoch {
                    return Ok(None);
                }
                if let Some(next) = next {
                    stack.push((child, next));
                }
                child = c.next_sibling;
            }
        }
        Ok(Some(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Pattern;

    #[test]
    fn the_trie_allows_what_walking_each_token_allows() {
        let table: Vec<Vec<u8>> = ["", "a", "ab", "abc", "b", "ab", "ba", "bab", "c", "é"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .chain([vec![0xC3], vec![0xA9]])
            .collect();
        let bytes_of = |id: u32| table.get(id as usize).map(Vec::as_slice);
        let trie = VocabTrie::of(table.len(), &bytes_of);
        assert_eq!(
            trie.nodes.len(),
            1 + 3 + 3 + 1 + 2 + 1,
            "shared prefixes once"
        );
        for source in ["(ab)+", "[ab]*c", "b?a", "é|c", "a|ab|abc"] {
            let mut p = Pattern::new(source).unwrap();
            let start = p.start().unwrap();
            for prefix in [&b""[..], b"a", b"ab", b"b", &[0xC3]] {
                let mut s = Some(start);
                for &b in prefix {
                    s = s.and_then(|s| p.step(s, b).unwrap());
                }
                let Some(s) = s else { continue };
                let bits = trie.allowed(&mut p, s).unwrap().unwrap();
                for (id, bytes) in table.iter().enumerate() {
                    let mut walked = Some(s);
                    for &b in bytes {
                        walked = walked.and_then(|w| p.step(w, b).unwrap());
                    }
                    let want = !bytes.is_empty() && walked.is_some_and(|w| p.alive(w).unwrap());
                    let got = bits[id / 64] >> (id % 64) & 1 == 1;
                    assert_eq!(
                        got, want,
                        "{source:?} after {prefix:?}: token {id} {bytes:?}"
                    );
                }
            }
        }
    }
}
