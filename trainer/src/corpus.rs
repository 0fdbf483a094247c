//! The training text: documents (one per line), a deterministic held-out split, the token
//! stream each split becomes, and random windows drawn from it.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, TrainerError};
use crate::tokenizer::{BOS_ID, EOS_ID};

/// Fewest documents a corpus may have.
pub const MIN_DOCUMENTS: usize = 4;

/// A corpus split into training and held-out documents.
pub struct Corpus {
    /// Documents used for training (and the tokenizer).
    pub train: Vec<String>,
    /// Documents only evaluated on.
    pub held_out: Vec<String>,
}

impl Corpus {
    /// Reads `path` (UTF-8, one document per line) and puts every `every`-th document
    /// (the last of each group of `every`) into the held-out split.
    pub fn load(path: &Path, every: usize) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TrainerError::CorpusUnreadable {
                path: path.to_path_buf(),
                source,
            })?;
        let docs: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if docs.is_empty() {
            return Err(TrainerError::CorpusEmpty(path.to_path_buf()));
        }
        if docs.len() < MIN_DOCUMENTS || every < 2 {
            return Err(TrainerError::CorpusTooSmall {
                path: path.to_path_buf(),
                documents: docs.len(),
                needed: MIN_DOCUMENTS.max(every),
            });
        }
        let every = every.min(docs.len());
        let (mut train, mut held_out) = (Vec::new(), Vec::new());
        for (i, doc) in docs.into_iter().enumerate() {
            if i % every == every - 1 {
                held_out.push(doc.to_string());
            } else {
                train.push(doc.to_string());
            }
        }
        Ok(Corpus { train, held_out })
    }
}

/// Concatenates encoded documents as `BOS doc EOS BOS doc EOS ...`.
pub fn token_stream(encoded: impl IntoIterator<Item = Vec<u32>>) -> Vec<u32> {
    let mut out = Vec::new();
    for ids in encoded {
        out.push(BOS_ID);
        out.extend(ids);
        out.push(EOS_ID);
    }
    out
}

/// Draws training windows of `len + 1` tokens from a token stream.
pub struct WindowSampler {
    stream: Vec<u32>,
    rng: StdRng,
}

impl WindowSampler {
    /// A sampler over `stream` with a fixed seed.
    pub fn new(stream: Vec<u32>, seed: u64) -> Self {
        WindowSampler {
            stream,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Tokens in the stream.
    pub fn len(&self) -> usize {
        self.stream.len()
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }

    /// `batch` random windows of `len + 1` tokens (inputs are the first `len`, targets the
    /// last `len`), flattened row by row. `len` is capped by the stream's length.
    pub fn sample(&mut self, batch: usize, len: usize) -> (Vec<u32>, usize) {
        let len = len.min(self.stream.len() - 1);
        let mut out = Vec::with_capacity(batch * (len + 1));
        for _ in 0..batch {
            let start = self.rng.random_range(0..self.stream.len() - len);
            out.extend_from_slice(&self.stream[start..start + len + 1]);
        }
        (out, len)
    }

    /// Consecutive non-overlapping windows covering the stream (for evaluation), at most
    /// `max_windows` of them.
    pub fn sequential(&self, len: usize, max_windows: usize) -> Vec<Vec<u32>> {
        let len = len.min(self.stream.len() - 1);
        self.stream
            .windows(len + 1)
            .step_by(len)
            .take(max_windows)
            .map(<[u32]>::to_vec)
            .collect()
    }
}

/// Uniform draws in [0, 1) from a seeded generator (scheduled sampling's coin flips).
pub fn coin_flips(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random::<f64>()).collect()
}
