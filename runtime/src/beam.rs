//! Beam search, exactly as Hugging Face transformers 4.53 defines it for decoder-only
//! models (`GenerationMixin._beam_search`: the top `max(2, 1 + n_eos) * num_beams`
//! continuations of the accumulated log-probabilities, running beams chosen among those
//! that did not stop, finished hypotheses scored `sum_logprobs / generated_len **
//! length_penalty`, and its stopping rule for `early_stopping` true, false and "never").
//! All beams run as the rows of one batched forward pass; the KV cache is reordered by
//! parent row after each step. Checked token for token against transformers' output.
//! Diverse (group) beam search follows `_group_beam_search` and its `BeamSearchScorer`.
//! The search-strategy plugin ABI is not here yet: both are built into the runtime.

use std::sync::Arc;

use crate::error::{Result, RillError};
use crate::model::Model;
use crate::session::{Session, SessionOptions};

/// transformers' `early_stopping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopping {
    /// Stop as soon as `num_beams` hypotheses are finished.
    True,
    /// Stop when no running beam can still beat the finished ones (heuristic length).
    False,
    /// Stop only when no running beam can beat them even at the maximum length.
    Never,
}

/// Beam search settings (Hugging Face keys).
#[derive(Debug, Clone)]
pub struct BeamConfig {
    /// `num_beams`.
    pub num_beams: usize,
    /// `length_penalty`.
    pub length_penalty: f32,
    /// `early_stopping`.
    pub early_stopping: EarlyStopping,
    /// `num_return_sequences` (at most `num_beams`).
    pub num_return_sequences: usize,
    /// `max_new_tokens`.
    pub max_new_tokens: usize,
    /// End-of-sequence ids.
    pub eos: Vec<u32>,
    /// `repetition_penalty` (1.0: none), applied to the log-probabilities as transformers does.
    pub repetition_penalty: f32,
    /// `no_repeat_ngram_size` (0: none).
    pub no_repeat_ngram_size: usize,
    /// Diverse beam search, when `num_beam_groups` > 1.
    pub groups: Option<GroupConfig>,
}

/// One returned hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Prompt followed by the generated tokens (an EOS included when it ended there).
    pub tokens: Vec<u32>,
    /// `sum_logprobs / generated_len ** length_penalty`.
    pub score: f32,
}

impl BeamConfig {
    /// The beam settings of a generation config (None when `num_beams` is 1 or absent).
    pub fn from_generation(
        cfg: &crate::config::GenerationConfig,
        eos: Vec<u32>,
    ) -> Result<Option<BeamConfig>> {
        let k = cfg.num_beams.unwrap_or(1);
        if k <= 1 {
            return Ok(None);
        }
        let early_stopping = match &cfg.early_stopping {
            None | Some(serde_json::Value::Bool(false)) => EarlyStopping::False,
            Some(serde_json::Value::Bool(true)) => EarlyStopping::True,
            Some(serde_json::Value::String(s)) if s == "never" => EarlyStopping::Never,
            Some(other) => {
                return Err(RillError::GenerationConfig(format!(
                    "early_stopping must be true, false or \"never\", got {other}"
                )))
            }
        };
        if cfg.do_sample == Some(true) {
            return Err(RillError::GenerationConfig("beam sampling (num_beams > 1 with do_sample) is not supported yet; set do_sample to false".into()));
        }
        let n = cfg.num_return_sequences.unwrap_or(1);
        if n == 0 || n > k {
            return Err(RillError::GenerationConfig(format!(
                "num_return_sequences must be in 1..={k} (num_beams), got {n}"
            )));
        }
        Ok(Some(BeamConfig {
            num_beams: k,
            length_penalty: cfg.length_penalty.unwrap_or(1.0),
            early_stopping,
            num_return_sequences: n,
            max_new_tokens: cfg.max_new_tokens.unwrap_or(256),
            eos,
            repetition_penalty: cfg.repetition_penalty.unwrap_or(1.0),
            no_repeat_ngram_size: cfg.no_repeat_ngram_size.unwrap_or(0),
            groups: match cfg.num_beam_groups.unwrap_or(1) {
                1 => None,
                g if g == 0 || !k.is_multiple_of(g) => {
                    return Err(RillError::GenerationConfig(format!(
                        "num_beam_groups ({g}) must divide num_beams ({k})"
                    )))
                }
                g => Some(GroupConfig {
                    num_beam_groups: g,
                    diversity_penalty: cfg.diversity_penalty.unwrap_or(0.0),
                    pad: cfg.pad_token_id.unwrap_or(0),
                }),
            },
        }))
    }
}

const NEG: f32 = -1.0e9;

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|x| x - lse).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(idx.len());
    let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

/// Runs beam search (diverse beam search when `cfg.groups` is set) from `prompt` and
/// returns the best `num_return_sequences` hypotheses, best first.
pub fn search(model: &Arc<Model>, prompt: &[u32], cfg: &BeamConfig) -> Result<Vec<Hypothesis>> {
    match &cfg.groups {
        Some(groups) => group_beam_search(model, prompt, cfg, groups),
        None => beam_search(model, prompt, cfg),
    }
}

/// Runs beam search from `prompt` and returns the best `num_return_sequences`
/// hypotheses, best first.
pub fn beam_search(
    model: &Arc<Model>,
    prompt: &[u32],
    cfg: &BeamConfig,
) -> Result<Vec<Hypothesis>> {
    let k = cfg.num_beams;
    if k == 0
        || cfg.num_return_sequences == 0
        || cfg.num_return_sequences > k
        || cfg.max_new_tokens == 0
    {
        return Err(RillError::GenerationConfig(format!(
            "beam search needs num_beams >= 1, 1 <= num_return_sequences <= num_beams and max_new_tokens >= 1 (got {}, {}, {})",
            k, cfg.num_return_sequences, cfg.max_new_tokens
        )));
    }
    if prompt.is_empty() {
        return Err(RillError::EmptyPrompt);
    }
    let prompt_len = prompt.len();
    let max_length = prompt_len + cfg.max_new_tokens;
    let options = SessionOptions {
        context_len: max_length,
        prefill_chunk: prompt_len.max(1),
        batch: k,
    };
    let mut session = Session::new(model.clone(), options)?;
    let vocab = model.graph().vocab;
    let keep = 2usize.max(1 + cfg.eos.len()) * k;

    let mut running: Vec<Vec<u32>> = vec![prompt.to_vec(); k];
    let mut running_scores: Vec<f32> = (0..k).map(|i| if i == 0 { 0.0 } else { NEG }).collect();
    let mut finished: Vec<(Vec<u32>, f32, bool)> = vec![(prompt.to_vec(), NEG, false); k];
    let rows: Vec<&[u32]> = running.iter().map(Vec::as_slice).collect();
    session.forward_rows(&rows)?;
    let mut cur_len = prompt_len;
    loop {
        let logits = session.forward_cached();
        let mut acc = Vec::with_capacity(k * vocab);
        for (b, seq) in running.iter().enumerate() {
            let mut lp = log_softmax(&logits[b * vocab..(b + 1) * vocab]);
            if cfg.repetition_penalty != 1.0 {
                rill_samplers::repetition_penalty(&mut lp, seq, cfg.repetition_penalty);
            }
            if cfg.no_repeat_ngram_size > 0 {
                rill_samplers::no_repeat_ngram(&mut lp, seq, cfg.no_repeat_ngram_size);
            }
            acc.extend(lp.iter().map(|x| x + running_scores[b]));
        }
        // The top continuations over all beams.
        let top = top_indices(&acc, keep);
        let cands: Vec<(usize, u32, f32)> = top
            .iter()
            .map(|&i| (i / vocab, (i % vocab) as u32, acc[i]))
            .collect();
        let hits: Vec<bool> = cands
            .iter()
            .map(|c| cfg.eos.contains(&c.1) || cur_len + 1 >= max_length)
            .collect();
        let seq_of = |c: &(usize, u32, f32)| {
            let mut s = running[c.0].clone();
            s.push(c.1);
            s
        };
        // Running beams for the next step: the best that did not stop.
        let masked: Vec<f32> = cands
            .iter()
            .zip(&hits)
            .map(|(c, &h)| c.2 + if h { NEG } else { 0.0 })
            .collect();
        let next = top_indices(&masked, k);
        let parents: Vec<usize> = next.iter().map(|&j| cands[j].0).collect();
        let new_running: Vec<Vec<u32>> = next.iter().map(|&j| seq_of(&cands[j])).collect();
        let new_scores: Vec<f32> = next.iter().map(|&j| masked[j]).collect();
        // Finished hypotheses: merge the old with those among the first k that stopped.
        let denom = ((cur_len + 1 - prompt_len) as f32).powf(cfg.length_penalty);
        let full = finished.iter().all(|f| f.2) && cfg.early_stopping == EarlyStopping::True;
        let mut merged = finished.clone();
        for (j, c) in cands.iter().enumerate() {
            let done = hits[j] && j < k;
            let mut score = c.2 / denom;
            if full {
                score += NEG;
            }
            if !done {
                score += NEG;
            }
            merged.push((seq_of(c), score, done));
        }
        let scores: Vec<f32> = merged.iter().map(|m| m.1).collect();
        finished = top_indices(&scores, k)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();
        cur_len += 1;
        // Stopping rule.
        let best_len = if cfg.early_stopping == EarlyStopping::Never && cfg.length_penalty > 0.0 {
            max_length - prompt_len
        } else {
            cur_len - prompt_len
        };
        let best_possible = new_scores[0] / (best_len as f32).powf(cfg.length_penalty);
        let worst = finished.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
        let improvement = finished
            .iter()
            .any(|f| best_possible > if f.2 { worst } else { NEG });
        let open_beam =
            !(finished.iter().all(|f| f.2) && cfg.early_stopping == EarlyStopping::True);
        let valid = !hits.iter().all(|&h| h);
        running = new_running;
        running_scores = new_scores;
        if !(improvement && open_beam && valid) {
            break;
        }
        session.reorder_rows(&parents)?;
        let last: Vec<[u32; 1]> = running
            .iter()
            .map(|s| [*s.last().expect("non-empty")])
            .collect();
        let rows: Vec<&[u32]> = last.iter().map(|r| r.as_slice()).collect();
        session.forward_rows(&rows)?;
    }
    Ok(finished
        .into_iter()
        .take(cfg.num_return_sequences)
        .map(|(tokens, score, _)| Hypothesis { tokens, score })
        .collect())
}

/// Diverse (group) beam search settings on top of [`BeamConfig`] (Vijayakumar et al.,
/// "Diverse Beam Search", 2016; transformers' `num_beam_groups` / `diversity_penalty`).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `num_beam_groups` (divides `num_beams`).
    pub num_beam_groups: usize,
    /// `diversity_penalty`: subtracted from a token's log-probability once per earlier
    /// group that chose it at this step (Hamming diversity).
    pub diversity_penalty: f32,
    /// `pad_token_id`, fed to the beams of a group that has finished.
    pub pad: u32,
}

/// transformers' `BeamHypotheses`: the best `capacity` finished hypotheses of a group.
struct Finished {
    capacity: usize,
    beams: Vec<(f32, Vec<u32>)>,
    worst: f32,
}

impl Finished {
    fn add(&mut self, hyp: Vec<u32>, sum_logprobs: f32, generated_len: usize, length_penalty: f32) {
        let score = sum_logprobs / (generated_len as f32).powf(length_penalty);
        if self.beams.len() < self.capacity || score > self.worst {
            self.beams.push((score, hyp));
            if self.beams.len() > self.capacity {
                let mut order: Vec<(f32, usize)> = self
                    .beams
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (b.0, i))
                    .collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                self.beams.remove(order[0].1);
                self.worst = order[1].0;
            } else {
                self.worst = self.worst.min(score);
            }
        }
    }

    fn is_done(
        &self,
        best_sum_logprobs: f32,
        cur_len: usize,
        prompt_len: usize,
        max_length: usize,
        cfg: &BeamConfig,
    ) -> bool {
        if self.beams.len() < self.capacity {
            return false;
        }
        let lp = cfg.length_penalty;
        let highest = match cfg.early_stopping {
            EarlyStopping::True => return true,
            EarlyStopping::Never if lp > 0.0 => {
                best_sum_logprobs / ((max_length - prompt_len) as f32).powf(lp)
            }
            _ => best_sum_logprobs / ((cur_len - prompt_len) as f32).powf(lp),
        };
        self.worst >= highest
    }
}

/// Runs diverse beam search (transformers 4.53's `_group_beam_search` with its
/// `BeamSearchScorer`): the beams are split into groups that take turns each step, a group
/// penalised for the tokens earlier groups just chose. All beams are rows of one batched
/// forward pass. Returns the best `num_return_sequences` hypotheses over all groups.
pub fn group_beam_search(
    model: &Arc<Model>,
    prompt: &[u32],
    cfg: &BeamConfig,
    groups: &GroupConfig,
) -> Result<Vec<Hypothesis>> {
    let (k, g) = (cfg.num_beams, groups.num_beam_groups);
    if g == 0 || !k.is_multiple_of(g) || k < 2 {
        return Err(RillError::GenerationConfig(format!(
            "num_beam_groups ({g}) must divide num_beams ({k}), with num_beams >= 2"
        )));
    }
    if cfg.num_return_sequences == 0
        || cfg.num_return_sequences > k
        || prompt.is_empty()
        || cfg.max_new_tokens == 0
    {
        return Err(RillError::GenerationConfig(
            "need a prompt, max_new_tokens >= 1 and 1 <= num_return_sequences <= num_beams".into(),
        ));
    }
    let size = k / g;
    let prompt_len = prompt.len();
    let max_length = prompt_len + cfg.max_new_tokens;
    let options = SessionOptions {
        context_len: max_length,
        prefill_chunk: prompt_len,
        batch: k,
    };
    let mut session = Session::new(model.clone(), options)?;
    let vocab = model.graph().vocab;
    let keep = 2usize.max(1 + cfg.eos.len()) * size;

    let mut finished: Vec<Finished> = (0..g)
        .map(|_| Finished {
            capacity: size,
            beams: Vec::new(),
            worst: 1e9,
        })
        .collect();
    let mut done = vec![false; g];
    let mut scores: Vec<f32> = (0..k)
        .map(|i| if i % size == 0 { 0.0 } else { NEG })
        .collect();
    let mut seqs: Vec<Vec<u32>> = vec![prompt.to_vec(); k];
    let rows: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    session.forward_rows(&rows)?;
    loop {
        let logits = session.forward_cached().to_vec();
        let mut current = vec![0u32; k];
        let mut reorder = vec![0usize; k];
        let cur_len = seqs[0].len() + 1;
        for group in 0..g {
            let start = group * size;
            let mut acc = Vec::with_capacity(size * vocab);
            for r in start..start + size {
                let mut lp = log_softmax(&logits[r * vocab..(r + 1) * vocab]);
                for &t in &current[..start] {
                    lp[t as usize] -= groups.diversity_penalty;
                }
                if cfg.repetition_penalty != 1.0 {
                    rill_samplers::repetition_penalty(&mut lp, &seqs[r], cfg.repetition_penalty);
                }
                if cfg.no_repeat_ngram_size > 0 {
                    rill_samplers::no_repeat_ngram(&mut lp, &seqs[r], cfg.no_repeat_ngram_size);
                }
                acc.extend(lp.iter().map(|x| x + scores[r]));
            }
            let top = top_indices(&acc, keep);
            let (mut next_scores, mut next_tokens, mut next_idx) =
                (vec![0f32; size], vec![groups.pad; size], vec![0usize; size]);
            if !done[group] {
                let mut b = 0;
                for (rank, &j) in top.iter().enumerate() {
                    let (token, idx, score) = ((j % vocab) as u32, j / vocab, acc[j]);
                    if cfg.eos.contains(&token) {
                        if rank >= size {
                            continue;
                        }
                        finished[group].add(
                            seqs[start + idx].clone(),
                            score,
                            cur_len - prompt_len,
                            cfg.length_penalty,
                        );
                    } else {
                        (next_scores[b], next_tokens[b], next_idx[b]) = (score, token, idx);
                        b += 1;
                    }
                    if b == size {
                        break;
                    }
                }
                done[group] = done[group]
                    || finished[group].is_done(acc[top[0]], cur_len, prompt_len, max_length, cfg);
            }
            let old: Vec<Vec<u32>> = seqs[start..start + size].to_vec();
            for i in 0..size {
                scores[start + i] = next_scores[i];
                seqs[start + i] = old[next_idx[i]].clone();
                current[start + i] = next_tokens[i];
                reorder[start + i] = start + next_idx[i];
            }
        }
        for (s, t) in seqs.iter_mut().zip(&current) {
            s.push(*t);
        }
        if done.iter().all(|&d| d) || seqs[0].len() >= max_length {
            break;
        }
        session.reorder_rows(&reorder)?;
        let last: Vec<[u32; 1]> = current.iter().map(|&t| [t]).collect();
        let rows: Vec<&[u32]> = last.iter().map(|r| r.as_slice()).collect();
        session.forward_rows(&rows)?;
    }
    // Finalize: groups still open keep their running beams.
    for group in 0..g {
        if done[group] {
            continue;
        }
        for r in group * size..(group + 1) * size {
            let generated = seqs[r].len() - prompt_len;
            finished[group].add(seqs[r].clone(), scores[r], generated, cfg.length_penalty);
        }
    }
    let mut all: Vec<(f32, Vec<u32>)> = finished.into_iter().flat_map(|f| f.beams).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0)); // stable, ascending, as Python's sorted
    let best: Vec<(f32, Vec<u32>)> = (0..cfg.num_return_sequences)
        .filter_map(|_| all.pop())
        .collect();
    let longest = best.iter().map(|b| b.1.len()).max().unwrap_or(0);
    let out_len = (longest + 1).min(max_length);
    let eos = cfg.eos.first().copied();
    Ok(best
        .into_iter()
        .map(|(score, mut tokens)| {
            if tokens.len() < out_len {
                tokens.extend(eos);
            }
            Hypothesis { tokens, score }
        })
        .collect())
}
