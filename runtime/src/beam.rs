//! Beam search and diverse beam search, driven by the host through the search-strategy
//! plugin ABI: the `beam` strategy of `rill-beam` (registered statically) decides each
//! step which hypotheses live on, with transformers 4.53's semantics; rill runs all beams
//! as the rows of one batched forward pass and reorders the KV cache by parent row.
//! Checked token for token against transformers' own output (runtime/tests/beam.rs).

use std::sync::Arc;

use crate::error::{Result, RillError};
use crate::model::Model;
use crate::session::{Session, SessionOptions};

pub use rill_beam::search::EarlyStopping;

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
    /// The other logits processors, applied to the log-probabilities as transformers does.
    pub processors: BeamProcessors,
    /// Beam sampling (`do_sample`): the warpers and the seed.
    pub sampling: Option<BeamSampling>,
    /// `stop_strings`: a continuation whose generated text completes one finishes its
    /// hypothesis, as an end-of-sequence token does (not with diverse beam search).
    pub stop_strings: Vec<String>,
}

/// Beam sampling's warpers and seed (the beam plugin's definition).
pub use rill_beam::search::Sampling as BeamSampling;

/// transformers' logits processors that beam search applies besides the repetition
/// penalty and the n-gram ban (the beam plugin's own definition).
pub use rill_beam::search::Processors as BeamProcessors;

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
        let sampling = (cfg.do_sample == Some(true)).then(|| BeamSampling {
            seed: crate::sampling::seed_or_clock(cfg.seed),
            temperature: cfg.temperature.unwrap_or(1.0),
            top_k: cfg.top_k.unwrap_or(50),
            top_p: cfg.top_p.unwrap_or(1.0),
            min_p: cfg.min_p,
            typical_p: cfg.typical_p.unwrap_or(1.0),
            epsilon_cutoff: cfg.epsilon_cutoff.unwrap_or(0.0),
            eta_cutoff: cfg.eta_cutoff.unwrap_or(0.0),
        });
        if sampling.is_some() && cfg.num_beam_groups.unwrap_or(1) > 1 {
            return Err(RillError::GenerationConfig(
                "diverse beam search (num_beam_groups > 1) cannot sample; set do_sample to false"
                    .into(),
            ));
        }
        let not_applied: Vec<&str> = [
            (
                "presence_penalty",
                cfg.presence_penalty.is_some_and(|x| x != 0.0),
            ),
            (
                "frequency_penalty",
                cfg.frequency_penalty.is_some_and(|x| x != 0.0),
            ),
            (
                "samplers",
                cfg.samplers.as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "prompt_lookup_num_tokens",
                cfg.prompt_lookup_num_tokens.is_some_and(|n| n > 0),
            ),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !not_applied.is_empty() {
            return Err(RillError::GenerationConfig(format!(
                "beam search does not apply {} yet; unset {} or generate without beams",
                not_applied.join(", "),
                if not_applied.len() > 1 { "them" } else { "it" }
            )));
        }
        let stop_strings: Vec<String> = cfg
            .stop_strings
            .as_ref()
            .map(|v| v.to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if !stop_strings.is_empty() && cfg.num_beam_groups.unwrap_or(1) > 1 {
            return Err(RillError::GenerationConfig(
                "diverse beam search (num_beam_groups > 1) does not apply stop_strings (transformers stops its groups only when every beam has hit one); unset stop_strings or num_beam_groups".into(),
            ));
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
            max_new_tokens: cfg
                .max_new_tokens
                .unwrap_or(crate::config::DEFAULT_MAX_NEW_TOKENS),
            eos,
            repetition_penalty: cfg.repetition_penalty.unwrap_or(1.0),
            no_repeat_ngram_size: cfg.no_repeat_ngram_size.unwrap_or(0),
            processors: BeamProcessors {
                sequence_bias: cfg.sequence_bias.clone().unwrap_or_default(),
                bad_words_ids: cfg.bad_words_ids.clone().unwrap_or_default(),
                min_length: cfg.min_length.unwrap_or(0),
                min_new_tokens: cfg.min_new_tokens.unwrap_or(0),
                suppress_tokens: cfg.suppress_tokens.clone().unwrap_or_default(),
                begin_suppress_tokens: cfg.begin_suppress_tokens.clone().unwrap_or_default(),
            },
            sampling,
            stop_strings,
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

impl BeamConfig {
    /// The strategy parameters (JSON, Hugging Face names).
    pub(crate) fn params(&self) -> String {
        let early = match self.early_stopping {
            EarlyStopping::True => serde_json::json!(true),
            EarlyStopping::False => serde_json::json!(false),
            EarlyStopping::Never => serde_json::json!("never"),
        };
        let g = self.groups.as_ref();
        let mut params = serde_json::json!({
            "num_beams": self.num_beams,
            "num_beam_groups": g.map_or(1, |g| g.num_beam_groups),
            "diversity_penalty": g.map_or(0.0, |g| g.diversity_penalty),
            "pad_token_id": g.map_or(0, |g| g.pad),
            "length_penalty": self.length_penalty,
            "early_stopping": early,
            "num_return_sequences": self.num_return_sequences,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "eos_token_id": self.eos,
            "sequence_bias": self.processors.sequence_bias,
            "bad_words_ids": self.processors.bad_words_ids,
            "min_length": self.processors.min_length,
            "min_new_tokens": self.processors.min_new_tokens,
            "suppress_tokens": self.processors.suppress_tokens,
            "begin_suppress_tokens": self.processors.begin_suppress_tokens,
        });
        if let (Some(s), Some(map)) = (&self.sampling, params.as_object_mut()) {
            let keys = serde_json::json!({
                "do_sample": true, "seed": s.seed, "temperature": s.temperature,
                "top_k": s.top_k, "top_p": s.top_p, "min_p": s.min_p, "typical_p": s.typical_p,
                "epsilon_cutoff": s.epsilon_cutoff, "eta_cutoff": s.eta_cutoff,
            });
            map.extend(
                keys.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        params.to_string()
    }
}

/// Runs beam search (diverse beam search when `cfg.groups` is set) from `prompt` through
/// the `beam` strategy and returns the best `num_return_sequences` hypotheses, best first.
pub fn search(model: &Arc<Model>, prompt: &[u32], cfg: &BeamConfig) -> Result<Vec<Hypothesis>> {
    let run = run_strategy_timed(
        model,
        prompt,
        "beam",
        &cfg.params(),
        cfg.max_new_tokens,
        &cfg.stop_strings,
    )?;
    Ok(run.hypotheses)
}

/// What a search returned and where its time went.
#[derive(Debug, Clone)]
pub struct SearchRun {
    /// Hypotheses, best first.
    pub hypotheses: Vec<Hypothesis>,
    /// Evaluating the prompt (once, for all rows).
    pub prefill: std::time::Duration,
    /// The steps after it: one batched forward pass per new token after the first.
    pub decode: std::time::Duration,
    /// Batched forward passes after the prompt.
    pub decode_steps: usize,
    /// Inside ONNX Runtime's Run, during those steps.
    pub ort_run: std::time::Duration,
}

/// Runs the search strategy `name` (any registered plugin's) with JSON `params` from
/// `prompt` for at most `max_new_tokens`, and returns its hypotheses, best first.
pub fn run_strategy(
    model: &Arc<Model>,
    prompt: &[u32],
    name: &str,
    params: &str,
    max_new_tokens: usize,
) -> Result<Vec<Hypothesis>> {
    Ok(run_strategy_timed(model, prompt, name, params, max_new_tokens, &[])?.hypotheses)
}

/// As [`run_strategy`], with the prompt's evaluation and the steps after it timed apart,
/// and `stops` (stop strings) offered to the strategy as its stop check; a strategy that
/// does not apply stop strings (`RILL_SEARCH_APPLIES_STOPS`) is refused when there are
/// any.
pub fn run_strategy_timed(
    model: &Arc<Model>,
    prompt: &[u32],
    name: &str,
    params: &str,
    max_new_tokens: usize,
    stops: &[String],
) -> Result<SearchRun> {
    let started = std::time::Instant::now();
    if prompt.is_empty() {
        return Err(RillError::EmptyPrompt);
    }
    if max_new_tokens == 0 {
        return Err(RillError::GenerationConfig(
            "max_new_tokens must be at least 1".into(),
        ));
    }
    let mut strategy =
        crate::plugin::PluginStrategy::create(name, params).map_err(|e| match e {
            RillError::Plugin(m) => RillError::GenerationConfig(m),
            other => other,
        })?;
    if !stops.is_empty() && !strategy.applies_stops() {
        return Err(RillError::GenerationConfig(format!(
            "search strategy `{name}` does not apply stop strings (its plugin does not declare RILL_SEARCH_APPLIES_STOPS); unset stop_strings"
        )));
    }
    let context = crate::stop::prompt_context(model, prompt, stops)?;
    let rows = strategy.rows();
    let prompt_len = prompt.len();
    let max_length = prompt_len + max_new_tokens;
    // The prompt is evaluated in the default chunks: one chunk of the whole prompt would
    // borrow logits for every position of it (prompt × vocabulary) just to read the last.
    let options = SessionOptions {
        context_len: max_length,
        batch: rows,
        ..Default::default()
    };
    let mut session = Session::new(model.clone(), options.clone())?;
    let vocab = model.graph().vocab;
    let mut seqs: Vec<Vec<u32>> = vec![prompt.to_vec(); rows];
    // Every row starts from the same prompt: evaluate it once, copy its cache to all rows.
    let mut single = Session::new(
        model.clone(),
        SessionOptions {
            batch: 1,
            ..options
        },
    )?;
    single.forward(prompt)?;
    session.broadcast_from(&single)?;
    drop(single);
    let prefill = started.elapsed();
    let mut decode_steps = 0;
    let mut cache_rows = CacheRows::new(rows);
    let mut ordered = Vec::new();
    loop {
        let flat: Vec<u32> = seqs.iter().flatten().copied().collect();
        let length = seqs[0].len();
        let mut check = (!stops.is_empty())
            .then(|| StopCheck::new(model, &seqs, prompt_len, stops, context.clone()));
        let mut ask = check
            .as_mut()
            .map(|c| move |row: usize, token: u32| c.completes(row, token));
        let logits = cache_rows.in_hypothesis_order(session.forward_cached(), vocab, &mut ordered);
        let Some(choices) = strategy.step(
            logits,
            vocab,
            &flat,
            length,
            prompt_len,
            max_length,
            ask.as_mut()
                .map(|f| f as &mut dyn FnMut(usize, u32) -> bool),
        )?
        else {
            break;
        };
        if length + 1 > max_length {
            return Err(RillError::Plugin(format!(
                "search strategy `{name}` did not stop at max_length {max_length}"
            )));
        }
        let parents: Vec<usize> = choices.iter().map(|c| c.parent as usize).collect();
        let (sources, keep) = cache_rows.assign(&parents, &seqs);
        seqs = choices
            .iter()
            .map(|c| {
                let mut s = seqs[c.parent as usize].clone();
                s.push(c.token);
                s
            })
            .collect();
        session.reorder_rows_keeping(&sources, &keep)?;
        let mut last = vec![[0u32; 1]; choices.len()];
        for (c, &row) in choices.iter().zip(&cache_rows.row) {
            last[row] = [c.token];
        }
        let next: Vec<&[u32]> = last.iter().map(|r| r.as_slice()).collect();
        session.forward_rows(&next)?;
        decode_steps += 1;
    }
    let hypotheses = strategy
        .results(vocab)?
        .into_iter()
        .map(|(tokens, score)| Hypothesis { tokens, score })
        .collect();
    Ok(SearchRun {
        hypotheses,
        prefill,
        decode: started.elapsed() - prefill,
        decode_steps,
        ort_run: session.ort_time(),
    })
}

/// The stop check a strategy asks about candidates: whether row `r` followed by token
/// `t` completes a stop string that ends in `t`'s text (transformers'
/// `StopStringCriteria`: the match may begin in the prompt). Text is decoded as the
/// streamed text is, special tokens skipped.
struct StopCheck<'a> {
    model: &'a Model,
    rows: &'a [Vec<u32>],
    prompt_len: usize,
    stops: &'a [String],
    /// The prompt's end that a stop string may begin in, decoded on its own (as when
    /// decoding token by token, whose cut this check must agree with).
    context: String,
    /// Each row's context and generated text, decoded on first use.
    texts: Vec<Option<String>>,
    ids: Vec<u32>,
}

impl<'a> StopCheck<'a> {
    fn new(
        model: &'a Model,
        rows: &'a [Vec<u32>],
        prompt_len: usize,
        stops: &'a [String],
        context: String,
    ) -> Self {
        StopCheck {
            model,
            rows,
            prompt_len,
            stops,
            context,
            texts: vec![None; rows.len()],
            ids: Vec::new(),
        }
    }

    /// The context followed by the text of `ids`.
    fn text(&self, ids: &[u32]) -> String {
        let generated = self.model.tokenizer().decode(ids, true).unwrap_or_default();
        format!("{}{generated}", self.context)
    }

    fn completes(&mut self, row: usize, token: u32) -> bool {
        let Some(generated) = self.rows.get(row).and_then(|r| r.get(self.prompt_len..)) else {
            return false;
        };
        if self.texts[row].is_none() {
            self.texts[row] = Some(self.text(generated));
        }
        self.ids.clear();
        self.ids.extend_from_slice(generated);
        self.ids.push(token);
        let after = self.text(&self.ids);
        let before = self.texts[row].as_deref().unwrap_or_default();
        crate::stop::completes_stop(before, &after, self.stops)
    }
}

/// Which row of the batch's KV cache holds each hypothesis of a search. The strategy
/// keeps its hypotheses in its own order (best first, as transformers does) and says each
/// step which earlier hypothesis each new one extends; rows need not follow that order.
/// Each parent's row passes to its first child as it is, and only its other children copy
/// a cache row, into the rows of hypotheses that ended: a step whose best hypothesis
/// spawns two (parents `[0, 0, 1, 2]`) copies one row instead of moving three.
struct CacheRows {
    /// `row[i]`: the cache row of hypothesis `i`.
    row: Vec<usize>,
}

impl CacheRows {
    /// Hypothesis `i` in row `i`, for `n` hypotheses.
    fn new(n: usize) -> Self {
        CacheRows {
            row: (0..n).collect(),
        }
    }

    /// Moves to the next step's hypotheses, the new hypothesis `i` extending
    /// `parents[i]` of `seqs` (the hypotheses so far, whose tokens the rows hold), and
    /// returns what the cache must do first, row by row: the row each row copies from
    /// (itself: nothing to copy) and the position it copies from (what the two rows
    /// already share, the prompt at least, stays).
    fn assign(&mut self, parents: &[usize], seqs: &[Vec<u32>]) -> (Vec<usize>, Vec<usize>) {
        let n = self.row.len();
        let mut holder = vec![0; n];
        for (i, &r) in self.row.iter().enumerate() {
            holder[r] = i;
        }
        let mut taken = vec![false; n];
        let mut row = vec![None; n];
        for (i, &p) in parents.iter().enumerate() {
            let r = self.row[p];
            if !taken[r] {
                taken[r] = true;
                row[i] = Some(r);
            }
        }
        let mut free = (0..n).filter(|&r| !taken[r]);
        let row: Vec<usize> = row
            .into_iter()
            .map(|r| r.or_else(|| free.next()).expect("one row per hypothesis"))
            .collect();
        let mut sources: Vec<usize> = (0..n).collect();
        let mut keep: Vec<usize> = vec![seqs.first().map_or(0, Vec::len); n];
        for (i, &p) in parents.iter().enumerate() {
            let (r, from) = (row[i], self.row[p]);
            if r != from {
                sources[r] = from;
                keep[r] = common_prefix(&seqs[holder[r]], &seqs[p]);
            }
        }
        self.row = row;
        (sources, keep)
    }

    /// The batch's logits (`[rows * vocab]`, row by row) in hypothesis order: `rows`
    /// itself while hypothesis `i` is in row `i`, else rearranged into `buffer`.
    fn in_hypothesis_order<'a>(
        &self,
        rows: &'a [f32],
        vocab: usize,
        buffer: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        if self.row.iter().enumerate().all(|(i, &r)| i == r) {
            return rows;
        }
        buffer.clear();
        for &r in &self.row {
            buffer.extend_from_slice(&rows[r * vocab..(r + 1) * vocab]);
        }
        buffer
    }
}

/// How many leading tokens `a` and `b` share.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::CacheRows;

    fn extend(seqs: &[Vec<u32>], parents: &[usize], tokens: &[u32]) -> Vec<Vec<u32>> {
        parents
            .iter()
            .zip(tokens)
            .map(|(&p, &t)| [seqs[p].as_slice(), &[t]].concat())
            .collect()
    }

    /// After any sequence of steps, each hypothesis's row holds its tokens, and a step
    /// copies only the rows of second children, from their parent's row.
    #[test]
    fn cache_rows_follow_their_hypotheses_and_copy_only_extra_children() {
        let prompt = vec![7u32, 8, 9];
        let mut seqs = vec![prompt; 4];
        let mut rows = CacheRows::new(4);
        // What each cache row holds, copied and extended as the cache would be.
        let mut cached = seqs.clone();
        let steps: [(&[usize], &[u32]); 5] = [
            (&[0, 0, 1, 2], &[10, 11, 12, 13]),
            (&[1, 0, 3, 3], &[20, 21, 22, 23]),
            (&[2, 2, 2, 2], &[30, 31, 32, 33]),
            (&[0, 1, 2, 3], &[40, 41, 42, 43]),
            (&[3, 1, 0, 0], &[50, 51, 52, 53]),
        ];
        for (parents, tokens) in steps {
            let before = rows.row.clone();
            let next = extend(&seqs, parents, tokens);
            let (sources, keep) = rows.assign(parents, &seqs);
            let mut distinct = parents.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            let copies = (0..4).filter(|&r| sources[r] != r).count();
            assert_eq!(copies, 4 - distinct.len(), "parents {parents:?}");
            let old = cached.clone();
            for r in 0..4 {
                // Row r already holds what it keeps: its source's tokens up to `keep`.
                let held = keep[r].min(old[r].len());
                assert_eq!(old[r][..held], old[sources[r]][..held]);
                cached[r] = old[sources[r]].clone();
            }
            for (i, &p) in parents.iter().enumerate() {
                let r = rows.row[i];
                assert_eq!(sources[r], before[p]);
                cached[r].push(tokens[i]);
            }
            for (i, &r) in rows.row.iter().enumerate() {
                assert_eq!(cached[r], next[i]);
            }
            let mut used = rows.row.clone();
            used.sort_unstable();
            assert_eq!(used, vec![0, 1, 2, 3]);
            seqs = next;
        }
    }

    #[test]
    fn logits_come_back_in_hypothesis_order() {
        let seqs = vec![vec![1u32]; 3];
        let mut rows = CacheRows::new(3);
        let batch = [0.0f32, 0.5, 1.0, 1.5, 2.0, 2.5];
        let mut buffer = Vec::new();
        assert_eq!(rows.in_hypothesis_order(&batch, 2, &mut buffer), &batch);
        rows.assign(&[2, 2, 0], &seqs);
        let ordered = rows.in_hypothesis_order(&batch, 2, &mut buffer).to_vec();
        for (i, &r) in rows.row.iter().enumerate() {
            assert_eq!(ordered[i * 2..i * 2 + 2], batch[r * 2..r * 2 + 2]);
        }
        assert_ne!(rows.row, vec![0, 1, 2]);
    }
}
