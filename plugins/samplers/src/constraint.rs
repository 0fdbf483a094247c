//! Samplers that constrain the generated text (`regex`, `json`): a recognizer reads the
//! text byte by byte, and each step a candidate token stays only if the recognizer is
//! still alive after its bytes; an end-of-sequence token stays only once it accepts the
//! text. The driver here is shared; each recognizer says what "alive" and "accepts" are.

/// A byte-at-a-time recognizer of a language of texts.
pub trait Recognizer {
    /// Where it is in a text; cheap to copy (one per candidate per step). Equal states
    /// allow the same tokens, which lets the driver remember them.
    type State: Copy + PartialEq + Send;

    /// What it recognizes, for error messages.
    fn describe(&self) -> String;

    /// The state before any byte.
    fn start(&mut self) -> Result<Self::State, String>;

    /// The state after `byte`, or `None` when no text that begins so is in the language.
    fn step(&mut self, state: Self::State, byte: u8) -> Result<Option<Self::State>, String>;

    /// Whether the text that led to `state` may end there (is in the language).
    fn accepts(&mut self, state: Self::State) -> Result<bool, String>;

    /// Whether some text in the language still begins with the one that led to `state`,
    /// for a recognizer whose `step` may not see a dead end at once.
    fn alive(&mut self, _state: Self::State) -> Result<bool, String> {
        Ok(true)
    }

    /// A number that changes when states handed out before become invalid (a cache
    /// that was cleared); the driver then reads the text again.
    fn epoch(&self) -> u64 {
        0
    }
}

/// A recognizer and the state of the text generated so far.
pub struct Constrained<R: Recognizer> {
    recognizer: R,
    /// The generated tokens the state was computed for, and their bytes.
    seen: Vec<u32>,
    seen_bytes: Vec<u8>,
    /// Which tokens recent states allowed, most recent last.
    memo: Vec<Memo<R::State>>,
    /// The vocabulary's bytes as a trie, made when a step first checks most of it.
    trie: Option<std::sync::Arc<crate::vocab_trie::VocabTrie>>,
}

/// Which tokens a state was found to allow (a state recurs: inside a long string, in a
/// loop of a pattern), so a step from a state met before reads bits instead of walking
/// every candidate's bytes.
struct Memo<S> {
    state: S,
    epoch: u64,
    /// Bit `id`: token `id` was checked; and then whether it is allowed.
    known: Vec<u64>,
    allowed: Vec<u64>,
}

/// States remembered.
const MEMO_STATES: usize = 16;

/// What the constraint says of one step.
#[derive(Debug, PartialEq)]
pub struct Allowed {
    /// Whether the text so far is complete (an end of sequence may come).
    pub complete: bool,
}

impl<R: Recognizer> Constrained<R> {
    /// A constraint by `recognizer`, nothing generated yet.
    pub fn new(recognizer: R) -> Self {
        Constrained {
            recognizer,
            seen: Vec::new(),
            seen_bytes: Vec::new(),
            memo: Vec::new(),
            trie: None,
        }
    }

    /// The recognizer.
    pub fn recognizer(&self) -> &R {
        &self.recognizer
    }

    /// Where `bytes` lead from `from`.
    fn walk(&mut self, from: R::State, bytes: &[u8]) -> Result<Walk<R::State>, String> {
        let mut s = from;
        for &b in bytes {
            match self.recognizer.step(s, b)? {
                Some(next) => s = next,
                None => return Ok(Walk::Dead),
            }
        }
        let epoch = self.recognizer.epoch();
        let alive = self.recognizer.alive(s)?;
        Ok(if self.recognizer.epoch() != epoch {
            Walk::Void
        } else if alive {
            Walk::Alive(s)
        } else {
            Walk::Dead
        })
    }

    /// The state after the whole text generated so far (`None`: it went void at once).
    fn text_state(&mut self) -> Result<Option<R::State>, String> {
        let start = self.recognizer.start()?;
        let bytes = std::mem::take(&mut self.seen_bytes);
        let walk = self.walk(start, &bytes);
        self.seen_bytes = bytes;
        match walk? {
            Walk::Alive(s) => Ok(Some(s)),
            Walk::Void => Ok(None),
            Walk::Dead => Err(format!(
                "the text generated so far, {:?}, cannot begin {}",
                String::from_utf8_lossy(&self.seen_bytes),
                self.recognizer.describe()
            )),
        }
    }

    /// Sets `logits[i]` to -inf for each candidate `ids[i]` the constraint rules out after
    /// `generated`: a token whose bytes (from `bytes_of`) leave no text of the language
    /// reachable, a token that adds no text, and an end-of-sequence id (`eos`) before the
    /// text is complete. An error when no candidate is left. `vocab`: the vocabulary's
    /// size; when most of it is still a candidate, a state met for the first time is
    /// checked over the whole vocabulary at once through a trie of its bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn restrict<'b>(
        &mut self,
        ids: &[u32],
        logits: &mut [f32],
        generated: &[u32],
        eos: &[u32],
        vocab: usize,
        bytes_of: &dyn Fn(u32) -> Option<&'b [u8]>,
    ) -> Result<Allowed, String> {
        if !generated.starts_with(&self.seen) {
            self.seen.clear();
            self.seen_bytes.clear();
        }
        for &t in &generated[self.seen.len()..] {
            let b = bytes_of(t)
                .ok_or_else(|| format!("token {t} of the text is outside the vocabulary"))?;
            self.seen_bytes.extend_from_slice(b);
            self.seen.push(t);
        }
        for _ in 0..RESTARTS {
            let Some((verdicts, complete)) = self.verdicts(ids, logits, eos, vocab, bytes_of)?
            else {
                // The recognizer's states became void on the way (a cache was cleared).
                self.memo.clear();
                continue;
            };
            let mut kept = 0usize;
            for (logit, allowed) in logits.iter_mut().zip(verdicts) {
                if allowed {
                    kept += 1;
                } else {
                    *logit = f32::NEG_INFINITY;
                }
            }
            if kept == 0 {
                let live = ids.len();
                return Err(format!(
                    "no candidate continues {} after {:?}{}{}",
                    self.recognizer.describe(),
                    String::from_utf8_lossy(&self.seen_bytes),
                    if complete && eos.is_empty() {
                        " (it is complete, but no end-of-sequence id is set)"
                    } else {
                        ""
                    },
                    if vocab > 0 && live < vocab {
                        format!(" among the {live} candidates the samplers before it left (a constraint belongs before the sampling warpers: \"before_warpers\": true)")
                    } else {
                        String::new()
                    }
                ));
            }
            return Ok(Allowed { complete });
        }
        Err(format!(
            "{} keeps outgrowing its automaton's cache; simplify it",
            self.recognizer.describe()
        ))
    }

    /// Whether each candidate stays (false for one already removed) and whether the text
    /// is complete; `None` when the recognizer's earlier states became void on the way.
    fn verdicts<'b>(
        &mut self,
        ids: &[u32],
        logits: &[f32],
        eos: &[u32],
        vocab: usize,
        bytes_of: &dyn Fn(u32) -> Option<&'b [u8]>,
    ) -> Result<Option<(Vec<bool>, bool)>, String> {
        let Some(state) = self.text_state()? else {
            return Ok(None);
        };
        let epoch = self.recognizer.epoch();
        let complete = self.recognizer.accepts(state)?;
        if self.recognizer.epoch() != epoch {
            return Ok(None);
        }
        let mut memo = match self
            .memo
            .iter()
            .position(|m| m.state == state && m.epoch == epoch)
        {
            Some(i) => self.memo.remove(i),
            None => Memo {
                state,
                epoch,
                known: Vec::new(),
                allowed: Vec::new(),
            },
        };
        let live = logits.iter().filter(|&&l| l != f32::NEG_INFINITY).count();
        if memo.known.is_empty() && vocab > 0 && live * 4 >= vocab {
            if self.trie.as_ref().is_none_or(|t| t.vocab() != vocab) {
                self.trie = Some(std::sync::Arc::new(crate::vocab_trie::VocabTrie::of(
                    vocab, bytes_of,
                )));
            }
            let trie = std::sync::Arc::clone(self.trie.as_ref().expect("made above"));
            let Some(allowed) = trie.allowed(&mut self.recognizer, state)? else {
                return Ok(None);
            };
            memo.known = vec![u64::MAX; allowed.len()];
            memo.allowed = allowed;
        }
        let mut verdicts = Vec::with_capacity(ids.len());
        for (&id, &logit) in ids.iter().zip(logits) {
            if logit == f32::NEG_INFINITY {
                verdicts.push(false);
                continue;
            }
            let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
            let allowed = if eos.contains(&id) {
                complete
            } else if memo.known.get(word).is_some_and(|w| w & bit != 0) {
                memo.allowed[word] & bit != 0
            } else {
                let allowed = match bytes_of(id) {
                    Some(b) if !b.is_empty() => match self.walk(state, b)? {
                        Walk::Alive(_) => true,
                        Walk::Dead => false,
                        Walk::Void => return Ok(None),
                    },
                    _ => false,
                };
                if self.recognizer.epoch() != epoch {
                    return Ok(None);
                }
                if memo.known.len() <= word {
                    memo.known.resize(word + 1, 0);
                    memo.allowed.resize(word + 1, 0);
                }
                memo.known[word] |= bit;
                if allowed {
                    memo.allowed[word] |= bit;
                }
                allowed
            };
            verdicts.push(allowed);
        }
        if self.memo.len() == MEMO_STATES {
            self.memo.remove(0);
        }
        self.memo.push(memo);
        Ok(Some((verdicts, complete)))
    }
}

/// Where a walk over some bytes ended.
enum Walk<S> {
    /// In a live state.
    Alive(S),
    /// Nothing of the language begins so.
    Dead,
    /// The recognizer's earlier states became void on the way (the verdict is unknown).
    Void,
}

/// Times a step is tried again after the recognizer's states became void.
const RESTARTS: usize = 4;

impl<R: Recognizer + Clone> Constrained<R> {
    /// The same constraint with nothing generated yet (a sampler's `clone`; the
    /// vocabulary's trie is shared).
    pub fn fresh(&self) -> Self {
        Constrained {
            trie: self.trie.clone(),
            ..Constrained::new(self.recognizer.clone())
        }
    }
}

/// A constraint whatever its recognizer: what the sampler plugin keeps as its state.
pub trait TextConstraint: Send {
    /// See [`Constrained::restrict`].
    #[allow(clippy::too_many_arguments)]
    fn restrict<'b>(
        &mut self,
        ids: &[u32],
        logits: &mut [f32],
        generated: &[u32],
        eos: &[u32],
        vocab: usize,
        bytes_of: &dyn Fn(u32) -> Option<&'b [u8]>,
    ) -> Result<Allowed, String>;

    /// The same constraint with nothing generated yet.
    fn fresh_box(&self) -> Box<dyn TextConstraint>;
}

impl<R: Recognizer + Clone + Send + 'static> TextConstraint for Constrained<R> {
    fn restrict<'b>(
        &mut self,
        ids: &[u32],
        logits: &mut [f32],
        generated: &[u32],
        eos: &[u32],
        vocab: usize,
        bytes_of: &dyn Fn(u32) -> Option<&'b [u8]>,
    ) -> Result<Allowed, String> {
        Constrained::restrict(self, ids, logits, generated, eos, vocab, bytes_of)
    }

    fn fresh_box(&self) -> Box<dyn TextConstraint> {
        Box::new(self.fresh())
    }
}

#[cfg(test)]
mod tests {
    use crate::json::Json;
    use crate::pattern::Pattern;

    use super::*;

    /// What `c` keeps of every token after `generated`; `trie`: whether a new state may
    /// be checked through the vocabulary's trie (else each token's bytes are walked).
    fn kept<R: Recognizer>(
        c: &mut Constrained<R>,
        generated: &[u32],
        table: &[&[u8]],
        trie: bool,
    ) -> Vec<u32> {
        let ids: Vec<u32> = (0..table.len() as u32).collect();
        let mut logits = vec![0.0f32; ids.len()];
        let bytes_of = |id: u32| table.get(id as usize).copied();
        let vocab = if trie { table.len() } else { 0 };
        match c.restrict(&ids, &mut logits, generated, &[0], vocab, &bytes_of) {
            Ok(_) => ids
                .into_iter()
                .filter(|&i| logits[i as usize] == 0.0)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A JSON recognizer whose states go void every 97 calls (as a lazy DFA's do when
    /// its cache is cleared), and that fails the test when handed a void one.
    #[derive(Clone)]
    struct Flaky {
        inner: Json,
        calls: u64,
        epoch: u64,
    }

    #[derive(Clone, Copy, PartialEq)]
    struct Tagged(crate::json::State, u64);

    impl Flaky {
        fn tick(&mut self) {
            self.calls += 1;
            if self.calls.is_multiple_of(97) {
                self.epoch += 1;
            }
        }
        fn check(&self, t: Tagged) {
            assert_eq!(t.1, self.epoch, "a void state was used");
        }
    }

    impl Recognizer for Flaky {
        type State = Tagged;
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn start(&mut self) -> Result<Tagged, String> {
            self.tick();
            Ok(Tagged(self.inner.start()?, self.epoch))
        }
        fn step(&mut self, t: Tagged, b: u8) -> Result<Option<Tagged>, String> {
            self.check(t);
            self.tick();
            Ok(self.inner.step(t.0, b)?.map(|s| Tagged(s, self.epoch)))
        }
        fn accepts(&mut self, t: Tagged) -> Result<bool, String> {
            self.check(t);
            self.tick();
            self.inner.accepts(t.0)
        }
        fn alive(&mut self, t: Tagged) -> Result<bool, String> {
            self.check(t);
            self.tick();
            Ok(true)
        }
        fn epoch(&self) -> u64 {
            self.epoch
        }
    }

    /// Tokens of the random walks below.
    const TABLE: [&[u8]; 12] = [
        b"", b"{", b"}", b"\"", b"a", b"ab", b":", b"1", b",", b"[", b"]", b" ",
    ];

    /// `walks` random walks of up to `steps` tokens from `seed`, each step choosing among
    /// the tokens (end of sequence aside) that `options` allows after the walk so far.
    fn random_walks(
        walks: usize,
        steps: usize,
        mut seed: u64,
        mut options: impl FnMut(&[u32]) -> Vec<u32>,
    ) {
        for _ in 0..walks {
            let mut generated = Vec::new();
            for _ in 0..steps {
                let choices: Vec<u32> = options(&generated)
                    .into_iter()
                    .filter(|&t| t != 0)
                    .collect();
                if choices.is_empty() {
                    break;
                }
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                generated.push(choices[(seed >> 33) as usize % choices.len()]);
            }
        }
    }

    #[test]
    fn states_that_went_void_are_never_used_and_the_step_starts_again() {
        let params = serde_json::json!({});
        let mut flaky = Constrained::new(Flaky {
            inner: Json::from_params(&params).unwrap(),
            calls: 0,
            epoch: 0,
        });
        random_walks(200, 10, 5, |generated| {
            let got = kept(&mut flaky, generated, &TABLE, true);
            let want = kept(
                &mut Json::constraint(&params).unwrap(),
                generated,
                &TABLE,
                false,
            );
            assert_eq!(got, want, "after {generated:?}");
            got
        });
        assert!(flaky.recognizer().epoch > 20, "states went void often");
    }

    #[test]
    fn remembered_states_answer_as_a_fresh_walk_does() {
        // One constraint lives through many steps (states recur and are remembered, new
        // ones are checked through the trie); each answer must equal a fresh
        // constraint's that walks every token's bytes and remembers nothing.
        let source = r"(\{a+\}|\[1(,1)*\])+";
        let mut json = Json::constraint(&serde_json::json!({})).unwrap();
        let mut regex = Pattern::constraint(source).unwrap();
        random_walks(300, 12, 3, |generated| {
            let options = kept(&mut json, generated, &TABLE, true);
            let fresh = kept(
                &mut Json::constraint(&serde_json::json!({})).unwrap(),
                generated,
                &TABLE,
                false,
            );
            assert_eq!(options, fresh, "json after {generated:?}");
            let r = kept(&mut regex, generated, &TABLE, true);
            let fresh = kept(
                &mut Pattern::constraint(source).unwrap(),
                generated,
                &TABLE,
                false,
            );
            assert_eq!(r, fresh, "regex after {generated:?}");
            options
        });
        assert!(json.memo.len() > 1 && regex.memo.len() > 1);
        assert!(json.trie.is_some() && regex.trie.is_some());
    }
}
