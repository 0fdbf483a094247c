//! The two searches as step-by-step state machines (rill runs the model between steps).
//!
//! Beam search follows transformers 4.53's `GenerationMixin._beam_search`: the top
//! `max(2, 1 + n_eos) * num_beams` continuations of the accumulated log-probabilities,
//! running beams chosen among those that did not stop, finished hypotheses scored
//! `sum_logprobs / generated_len ** length_penalty`, and its stopping rule for
//! `early_stopping` true, false and "never". Diverse beam search follows
//! `_group_beam_search` with its `BeamSearchScorer` and Hamming diversity (Vijayakumar et
//! al., "Diverse Beam Search", 2016). Beam sampling (`do_sample` with beams) is the same
//! beam search with transformers' sampling warpers applied to each row's log-probabilities
//! and the continuations drawn without replacement in proportion to the exponential of
//! their accumulated scores (`torch.multinomial` over their softmax) instead of taken
//! from the top.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// Search settings (Hugging Face keys).
#[derive(Debug, Clone)]
pub struct Params {
    pub num_beams: usize,
    pub num_beam_groups: usize,
    pub diversity_penalty: f32,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub num_return_sequences: usize,
    pub repetition_penalty: f32,
    pub no_repeat_ngram_size: usize,
    /// The other logits processors.
    pub processors: Processors,
    pub eos: Vec<u32>,
    pub pad: u32,
    /// Beam sampling's settings (`do_sample`); `None` for beam search.
    pub sampling: Option<Sampling>,
}

/// Beam sampling: transformers' sampling warpers (Hugging Face keys and meanings; their
/// defaults mean "off") and the generator's seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub seed: u64,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: Option<f32>,
    pub typical_p: f32,
    pub epsilon_cutoff: f32,
    pub eta_cutoff: f32,
}

impl Sampling {
    /// The warpers in transformers' order, each keeping at least `min_keep` tokens.
    fn warp(&self, scores: &mut [f32], min_keep: usize) {
        use rill_samplers::processors as w;
        if self.temperature != 1.0 {
            w::temperature(scores, self.temperature);
        }
        if self.top_k != 0 {
            w::top_k(scores, self.top_k, min_keep);
        }
        if self.top_p < 1.0 {
            w::top_p(scores, self.top_p, min_keep);
        }
        if let Some(m) = self.min_p {
            w::min_p(scores, m, min_keep);
        }
        if self.typical_p < 1.0 {
            w::typical_p(scores, self.typical_p, min_keep);
        }
        if self.epsilon_cutoff > 0.0 && self.epsilon_cutoff < 1.0 {
            w::epsilon_cutoff(scores, self.epsilon_cutoff, min_keep);
        }
        if self.eta_cutoff > 0.0 && self.eta_cutoff < 1.0 {
            w::eta_cutoff(scores, self.eta_cutoff, min_keep);
        }
    }
}

/// `k` indices drawn without replacement with probabilities `softmax(scores)`, in the
/// order drawn (the Gumbel-top-k trick: the `k` largest `score + Gumbel noise` are such a
/// draw, Kool et al., 2019). Scores more than 104 below the largest have probability
/// zero in an f32 softmax, as in transformers, and are drawn only when nothing else is
/// left (then by score).
pub fn sample_without_replacement(scores: &[f32], k: usize, rng: &mut StdRng) -> Vec<usize> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let keys: Vec<f32> = scores
        .iter()
        .map(|&s| {
            if s == f32::NEG_INFINITY || s - max < -104.0 {
                // Below every drawable key (whose noise is above -5 but for a chance
                // of 1e-65).
                s - 1.0e6
            } else {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                s - (-u.ln()).ln() as f32
            }
        })
        .collect();
    top_indices(&keys, k)
}

/// transformers' logits processors that beam search applies besides the repetition
/// penalty and the n-gram ban (Hugging Face keys and meanings; empty or 0: none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Processors {
    /// `sequence_bias`: `[(ids, bias)]`.
    pub sequence_bias: Vec<(Vec<u32>, f32)>,
    /// `bad_words_ids`.
    pub bad_words_ids: Vec<Vec<u32>>,
    /// `min_length` (prompt included).
    pub min_length: usize,
    /// `min_new_tokens`.
    pub min_new_tokens: usize,
    /// `suppress_tokens`.
    pub suppress_tokens: Vec<u32>,
    /// `begin_suppress_tokens` (the first new token only).
    pub begin_suppress_tokens: Vec<u32>,
}

const NEG: f32 = -1.0e9;

use rill_samplers::processors::{exp_nonpositive, top_indices};

/// `row`'s log-softmax into `out` (as long as `row`).
fn log_softmax_into(row: &[f32], out: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for (o, &x) in out.iter_mut().zip(row) {
        *o = exp_nonpositive(x - max);
    }
    // Eight running sums, so the additions vectorise too.
    let mut lanes = [0f32; 8];
    let mut chunks = out.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &e) in lanes.iter_mut().zip(chunk) {
            *lane += e;
        }
    }
    let sum = lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    let lse = max + sum.ln();
    for (o, &x) in out.iter_mut().zip(row) {
        *o = x - lse;
    }
}

/// Writes into `acc` (rows × vocab) each row's log-probabilities after the processors
/// that transformers applies in beam search, in its order (sequence bias, diversity,
/// repetition penalty, no-repeat n-grams, bad words, minimum lengths, suppressed tokens,
/// then beam sampling's warpers), plus the row's running score. `rows` are whole sequences, the first `prompt_len`
/// tokens the prompt.
fn accumulate(
    acc: &mut Vec<f32>,
    logits: &[f32],
    rows: &[Vec<u32>],
    scores: &[f32],
    p: &Params,
    diversity: &[u32],
    prompt_len: usize,
) {
    let vocab = logits.len() / rows.len();
    acc.resize(logits.len(), 0.0);
    for (((out, row), seq), &score) in acc
        .chunks_exact_mut(vocab)
        .zip(logits.chunks_exact(vocab))
        .zip(rows)
        .zip(scores)
    {
        log_softmax_into(row, out);
        let q = &p.processors;
        if !q.sequence_bias.is_empty() {
            rill_samplers::sequence_bias(out, seq, &q.sequence_bias);
        }
        for &t in diversity {
            if let Some(x) = out.get_mut(t as usize) {
                *x -= p.diversity_penalty;
            }
        }
        if p.repetition_penalty != 1.0 {
            rill_samplers::repetition_penalty(out, seq, p.repetition_penalty);
        }
        if p.no_repeat_ngram_size > 0 {
            rill_samplers::no_repeat_ngram(out, seq, p.no_repeat_ngram_size);
        }
        if !q.bad_words_ids.is_empty() {
            rill_samplers::bad_words(out, seq, &q.bad_words_ids, &p.eos);
        }
        rill_samplers::min_length(out, seq.len(), q.min_length, &p.eos);
        let generated = seq.len().saturating_sub(prompt_len);
        rill_samplers::min_length(out, generated, q.min_new_tokens, &p.eos);
        rill_samplers::suppress_tokens(out, &q.suppress_tokens);
        rill_samplers::begin_suppress_tokens(out, seq.len(), prompt_len, &q.begin_suppress_tokens);
        if let Some(sampling) = &p.sampling {
            // transformers keeps one more token than there are end tokens (2 without any),
            // so a beam can always go on.
            sampling.warp(out, (p.eos.len() + 1).max(2));
        }
        for x in out.iter_mut() {
            *x += score;
        }
    }
}

/// One step's input.
pub struct Step<'a> {
    pub logits: &'a [f32],
    pub vocab: usize,
    pub rows: Vec<&'a [u32]>,
    pub prompt_len: usize,
    pub max_length: usize,
    /// The host's stop check: whether row `r` followed by token `t` completes a stop
    /// string (ends that hypothesis as an end-of-sequence token would).
    pub stops: Option<&'a dyn Fn(usize, u32) -> bool>,
}

/// A running search.
#[derive(Clone)]
pub enum Search {
    Beam(Beam),
    Group(Group),
}

impl Search {
    /// A search for `p`.
    pub fn new(p: Params) -> Result<Search, String> {
        let (k, g) = (p.num_beams, p.num_beam_groups);
        if k < 1
            || g < 1
            || !k.is_multiple_of(g)
            || p.num_return_sequences < 1
            || p.num_return_sequences > k
        {
            return Err(format!(
                "need num_beams >= 1, num_beam_groups dividing it and 1 <= num_return_sequences <= num_beams (got {k}, {g}, {})",
                p.num_return_sequences
            ));
        }
        if g > 1 && p.sampling.is_some() {
            return Err(
                "diverse beam search (num_beam_groups > 1) cannot sample; set do_sample to false"
                    .into(),
            );
        }
        Ok(if g == 1 {
            Search::Beam(Beam {
                rng: p
                    .sampling
                    .as_ref()
                    .map(|s| Box::new(StdRng::seed_from_u64(s.seed))),
                p,
                acc: Vec::new(),
                running: Vec::new(),
                scores: Vec::new(),
                finished: Vec::new(),
                results: Vec::new(),
            })
        } else {
            Search::Group(Group {
                p,
                acc: Vec::new(),
                finished: Vec::new(),
                done: Vec::new(),
                scores: Vec::new(),
                seqs: Vec::new(),
                results: Vec::new(),
            })
        })
    }

    /// Rows the model runs.
    pub fn rows(&self) -> usize {
        match self {
            Search::Beam(b) => b.p.num_beams,
            Search::Group(g) => g.p.num_beams,
        }
    }

    /// One step: the choices for the next step, or None when the search has ended.
    /// Diverse beam search refuses stop checks (transformers applies them to its groups
    /// only as a whole).
    pub fn step(&mut self, s: &Step) -> Result<Option<Vec<(u32, u32)>>, String> {
        match self {
            Search::Beam(b) => Ok(b.step(s)),
            Search::Group(_) if s.stops.is_some() => {
                Err("diverse beam search (num_beam_groups > 1) does not apply stop strings".into())
            }
            Search::Group(g) => Ok(g.step(s)),
        }
    }

    /// The hypotheses, best first (after the search ended).
    pub fn results(&self) -> &[(Vec<u32>, f32)] {
        match self {
            Search::Beam(b) => &b.results,
            Search::Group(g) => &g.results,
        }
    }
}

/// Beam search state.
#[derive(Clone)]
pub struct Beam {
    p: Params,
    /// Beam sampling's generator.
    rng: Option<Box<StdRng>>,
    /// Accumulated scores of every row's continuations (reused from step to step).
    acc: Vec<f32>,
    running: Vec<Vec<u32>>,
    scores: Vec<f32>,
    finished: Vec<(Vec<u32>, f32, bool)>,
    results: Vec<(Vec<u32>, f32)>,
}

impl Beam {
    fn step(&mut self, s: &Step) -> Option<Vec<(u32, u32)>> {
        let p = &self.p;
        let (k, vocab) = (p.num_beams, s.vocab);
        if self.running.is_empty() {
            self.running = s.rows.iter().map(|r| r.to_vec()).collect();
            self.scores = (0..k).map(|i| if i == 0 { 0.0 } else { NEG }).collect();
            self.finished = vec![(s.rows[0].to_vec(), NEG, false); k];
        }
        let keep = 2usize.max(1 + p.eos.len()) * k;
        let cur_len = self.running[0].len();
        let acc = &mut self.acc;
        let logits = &s.logits[..k * vocab];
        accumulate(
            acc,
            logits,
            &self.running,
            &self.scores,
            p,
            &[],
            s.prompt_len,
        );
        let top = match &mut self.rng {
            Some(rng) => sample_without_replacement(acc, keep, rng),
            None => top_indices(acc, keep),
        };
        let cands: Vec<(usize, u32, f32)> = top
            .iter()
            .map(|&i| (i / vocab, (i % vocab) as u32, acc[i]))
            .collect();
        let hits: Vec<bool> = cands
            .iter()
            .map(|c| {
                p.eos.contains(&c.1)
                    || cur_len + 1 >= s.max_length
                    || s.stops.is_some_and(|stops| stops(c.0, c.1))
            })
            .collect();
        let running = &self.running;
        let seq_of = |c: &(usize, u32, f32)| {
            let mut q = running[c.0].clone();
            q.push(c.1);
            q
        };
        let masked: Vec<f32> = cands
            .iter()
            .zip(&hits)
            .map(|(c, &h)| c.2 + if h { NEG } else { 0.0 })
            .collect();
        let next = top_indices(&masked, k);
        let choices: Vec<(u32, u32)> = next
            .iter()
            .map(|&j| (cands[j].0 as u32, cands[j].1))
            .collect();
        let new_running: Vec<Vec<u32>> = next.iter().map(|&j| seq_of(&cands[j])).collect();
        let new_scores: Vec<f32> = next.iter().map(|&j| masked[j]).collect();
        let denom = ((cur_len + 1 - s.prompt_len) as f32).powf(p.length_penalty);
        let full = self.finished.iter().all(|f| f.2) && p.early_stopping == EarlyStopping::True;
        let mut merged = self.finished.clone();
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
        self.finished = top_indices(&scores, k)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();
        let best_len = if p.early_stopping == EarlyStopping::Never && p.length_penalty > 0.0 {
            s.max_length - s.prompt_len
        } else {
            cur_len + 1 - s.prompt_len
        };
        let best_possible = new_scores[0] / (best_len as f32).powf(p.length_penalty);
        let worst = self
            .finished
            .iter()
            .map(|f| f.1)
            .fold(f32::INFINITY, f32::min);
        let improvement = self
            .finished
            .iter()
            .any(|f| best_possible > if f.2 { worst } else { NEG });
        let open_beam =
            !(self.finished.iter().all(|f| f.2) && p.early_stopping == EarlyStopping::True);
        let valid = !hits.iter().all(|&h| h);
        self.running = new_running;
        self.scores = new_scores;
        if improvement && open_beam && valid {
            return Some(choices);
        }
        self.results = self
            .finished
            .iter()
            .take(p.num_return_sequences)
            .map(|f| (f.0.clone(), f.1))
            .collect();
        None
    }
}

/// transformers' `BeamHypotheses`: the best `capacity` finished hypotheses of a group.
#[derive(Clone)]
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
        best: f32,
        cur_len: usize,
        prompt_len: usize,
        max_length: usize,
        p: &Params,
    ) -> bool {
        if self.beams.len() < self.capacity {
            return false;
        }
        let lp = p.length_penalty;
        let highest = match p.early_stopping {
            EarlyStopping::True => return true,
            EarlyStopping::Never if lp > 0.0 => best / ((max_length - prompt_len) as f32).powf(lp),
            _ => best / ((cur_len - prompt_len) as f32).powf(lp),
        };
        self.worst >= highest
    }
}

/// Diverse beam search state.
#[derive(Clone)]
pub struct Group {
    p: Params,
    /// Accumulated scores of one group's continuations (reused from step to step).
    acc: Vec<f32>,
    finished: Vec<Finished>,
    done: Vec<bool>,
    scores: Vec<f32>,
    seqs: Vec<Vec<u32>>,
    results: Vec<(Vec<u32>, f32)>,
}

impl Group {
    fn step(&mut self, s: &Step) -> Option<Vec<(u32, u32)>> {
        let p = &self.p;
        let (k, g, vocab) = (p.num_beams, p.num_beam_groups, s.vocab);
        let size = k / g;
        if self.seqs.is_empty() {
            self.seqs = s.rows.iter().map(|r| r.to_vec()).collect();
            self.finished = (0..g)
                .map(|_| Finished {
                    capacity: size,
                    beams: Vec::new(),
                    worst: 1e9,
                })
                .collect();
            self.done = vec![false; g];
            self.scores = (0..k)
                .map(|i| if i % size == 0 { 0.0 } else { NEG })
                .collect();
        }
        let keep = 2usize.max(1 + p.eos.len()) * size;
        let mut current = vec![0u32; k];
        let mut reorder = vec![0usize; k];
        let cur_len = self.seqs[0].len() + 1;
        for group in 0..g {
            let start = group * size;
            let rows = start..start + size;
            let logits = &s.logits[rows.start * vocab..rows.end * vocab];
            let (seqs, scores) = (&self.seqs[rows.clone()], &self.scores[rows]);
            let acc = &mut self.acc;
            accumulate(
                acc,
                logits,
                seqs,
                scores,
                p,
                &current[..start],
                s.prompt_len,
            );
            let top = top_indices(acc, keep);
            let (mut next_scores, mut next_tokens, mut next_idx) =
                (vec![0f32; size], vec![p.pad; size], vec![0usize; size]);
            if !self.done[group] {
                let mut b = 0;
                for (rank, &j) in top.iter().enumerate() {
                    let (token, idx, score) = ((j % vocab) as u32, j / vocab, acc[j]);
                    if p.eos.contains(&token) {
                        if rank >= size {
                            continue;
                        }
                        self.finished[group].add(
                            self.seqs[start + idx].clone(),
                            score,
                            cur_len - s.prompt_len,
                            p.length_penalty,
                        );
                    } else {
                        (next_scores[b], next_tokens[b], next_idx[b]) = (score, token, idx);
                        b += 1;
                    }
                    if b == size {
                        break;
                    }
                }
                self.done[group] = self.done[group]
                    || self.finished[group].is_done(
                        acc[top[0]],
                        cur_len,
                        s.prompt_len,
                        s.max_length,
                        p,
                    );
            }
            let old: Vec<Vec<u32>> = self.seqs[start..start + size].to_vec();
            for i in 0..size {
                self.scores[start + i] = next_scores[i];
                self.seqs[start + i] = old[next_idx[i]].clone();
                current[start + i] = next_tokens[i];
                reorder[start + i] = start + next_idx[i];
            }
        }
        for (q, t) in self.seqs.iter_mut().zip(&current) {
            q.push(*t);
        }
        if !(self.done.iter().all(|&d| d) || self.seqs[0].len() >= s.max_length) {
            return Some(
                reorder
                    .iter()
                    .zip(&current)
                    .map(|(&r, &t)| (r as u32, t))
                    .collect(),
            );
        }
        self.finalize(s);
        None
    }

    /// Groups still open keep their running beams; the best over all groups are returned
    /// as transformers' `finalize` lays them out (an EOS after shorter hypotheses).
    fn finalize(&mut self, s: &Step) {
        let p = &self.p;
        let size = p.num_beams / p.num_beam_groups;
        for group in 0..p.num_beam_groups {
            if self.done[group] {
                continue;
            }
            for r in group * size..(group + 1) * size {
                let generated = self.seqs[r].len() - s.prompt_len;
                self.finished[group].add(
                    self.seqs[r].clone(),
                    self.scores[r],
                    generated,
                    p.length_penalty,
                );
            }
        }
        let mut all: Vec<(f32, Vec<u32>)> = self
            .finished
            .iter_mut()
            .flat_map(|f| std::mem::take(&mut f.beams))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0)); // stable, ascending, as Python's sorted
        let best: Vec<(f32, Vec<u32>)> = (0..p.num_return_sequences)
            .filter_map(|_| all.pop())
            .collect();
        let longest = best.iter().map(|b| b.1.len()).max().unwrap_or(0);
        let out_len = (longest + 1).min(s.max_length);
        let eos = p.eos.first().copied();
        self.results = best
            .into_iter()
            .map(|(score, mut tokens)| {
                if tokens.len() < out_len {
                    tokens.extend(eos);
                }
                (tokens, score)
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::{log_softmax_into, sample_without_replacement};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn draws_without_replacement_follow_softmax_in_draw_order() {
        // Ordered pairs drawn from softmax([ln 0.5, ln 0.3, ln 0.2, -inf]) must come with
        // probability p_i * p_j / (1 - p_i), as torch.multinomial's sequential draws do;
        // the impossible fourth never comes before the others are used up.
        let p = [0.5f64, 0.3, 0.2];
        let scores: Vec<f32> = p
            .iter()
            .map(|&x| x.ln() as f32)
            .chain([f32::NEG_INFINITY])
            .collect();
        let mut rng = StdRng::seed_from_u64(11);
        let n = 30_000;
        let mut counts = [[0usize; 3]; 3];
        for _ in 0..n {
            let d = sample_without_replacement(&scores, 2, &mut rng);
            assert_ne!(d[0], d[1]);
            assert!(d.iter().all(|&i| i < 3), "{d:?}");
            counts[d[0]][d[1]] += 1;
        }
        let mut chi2 = 0.0;
        for i in 0..3 {
            for j in (0..3).filter(|&j| j != i) {
                let expected = n as f64 * p[i] * p[j] / (1.0 - p[i]);
                chi2 += (counts[i][j] as f64 - expected).powi(2) / expected;
            }
        }
        // 5 degrees of freedom: 20.5 is the 0.999 quantile.
        assert!(chi2 < 20.5, "chi-square {chi2}: {counts:?}");
        let all = sample_without_replacement(&scores, 4, &mut rng);
        assert_eq!(all[3], 3, "drawn last, when nothing else is left");
    }

    #[test]
    fn log_softmax_matches_the_f64_definition() {
        let row: Vec<f32> = (0..4099)
            .map(|i| ((i * 37) as f32 * 0.01).sin() * 9.0)
            .collect();
        let mut out = vec![0f32; row.len()];
        log_softmax_into(&row, &mut out);
        let max = row.iter().fold(f64::MIN, |m, &x| m.max(x as f64));
        let lse = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        for (&o, &x) in out.iter().zip(&row) {
            assert!(
                (o as f64 - (x as f64 - lse)).abs() < 2e-6,
                "{o} vs {}",
                x as f64 - lse
            );
        }
    }
}
