//! `rill perplexity`: how well a model predicts a held-out text, and, against a reference
//! folder (say the float model a quantized one came from), how much worse it is and how
//! often both continue a prompt with the same greedy tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use rill::{GenerationConfig, Model, Session, SessionOptions};
use serde::Serialize;

use crate::OpenArgs;

#[derive(Args)]
pub struct PerplexityArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// UTF-8 text, one document per line (each starts a fresh context).
    #[arg(long)]
    text: PathBuf,
    /// A folder to compare with (e.g. the float model of a quantized one): its perplexity
    /// on the same tokens, the increase, and the agreement of greedy continuations.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Longest context in tokens; longer documents are scored in windows of this size.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Stop after scoring this many tokens (0: the whole text).
    #[arg(long, default_value_t = 0)]
    max_tokens: usize,
    /// Prompts (document beginnings) whose greedy continuations are compared with
    /// --reference.
    #[arg(long, default_value_t = 16)]
    continuations: usize,
    /// Tokens per greedy continuation.
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    open: OpenArgs,
}

/// Perplexity of one model.
#[derive(Serialize)]
struct Score {
    model: String,
    perplexity: f64,
    mean_nll: f64,
    tokens: usize,
    seconds: f64,
}

/// Greedy continuations of the model against the reference's.
#[derive(Serialize)]
struct Agreement {
    prompts: usize,
    new_tokens: usize,
    /// Share of positions (up to the longer continuation's end) where both chose the
    /// same token.
    token_agreement: f64,
    /// Continuations identical from start to end.
    identical: usize,
    /// Mean index of the first differing token (`new_tokens` when identical).
    mean_first_divergence: f64,
}

#[derive(Serialize)]
struct Report {
    score: Score,
    reference: Option<Score>,
    /// `perplexity / reference perplexity - 1`.
    increase: Option<f64>,
    greedy: Option<Agreement>,
}

pub fn run(a: PerplexityArgs) -> anyhow::Result<()> {
    if a.window < 2 {
        anyhow::bail!("--window must be at least 2 tokens");
    }
    let text = std::fs::read_to_string(&a.text)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.text.display()))?;
    let model = a.open.open(&a.model)?;
    let windows = windows(&model, &text, a.window, a.max_tokens)?;
    if windows.is_empty() {
        anyhow::bail!(
            "{} holds no document of two or more tokens to score",
            a.text.display()
        );
    }
    let own = score(&model, &windows, &a.model)?;
    let (reference, increase, greedy) = match &a.reference {
        None => (None, None, None),
        Some(dir) => {
            let other = a.open.open(dir)?;
            if other.config().vocab_size != model.config().vocab_size {
                anyhow::bail!(
                    "--reference {} has a vocabulary of {} tokens, the model {}: they cannot be compared token by token",
                    dir.display(),
                    other.config().vocab_size,
                    model.config().vocab_size
                );
            }
            let r = score(&other, &windows, dir)?;
            let increase = own.perplexity / r.perplexity - 1.0;
            let greedy = agreement(&model, &other, &windows, a.continuations, a.new_tokens)?;
            (Some(r), Some(increase), Some(greedy))
        }
    };
    let report = Report {
        score: own,
        reference,
        increase,
        greedy,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// The text as token windows: each line a document with the tokenizer's special tokens,
/// cut into windows of at most `window` tokens, until `max_tokens` are to be scored.
fn windows(
    model: &Model,
    text: &str,
    window: usize,
    max_tokens: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let mut out = Vec::new();
    let mut scored = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let ids = model.encode(line, true)?;
        for w in ids.chunks(window).filter(|w| w.len() >= 2) {
            let mut w = w.to_vec();
            if max_tokens > 0 {
                if scored >= max_tokens {
                    return Ok(out);
                }
                w.truncate((max_tokens - scored + 1).max(2));
            }
            scored += w.len() - 1;
            out.push(w);
        }
    }
    Ok(out)
}

/// Mean negative log-likelihood of every window's tokens after its first.
fn score(model: &Arc<Model>, windows: &[Vec<u32>], dir: &std::path::Path) -> anyhow::Result<Score> {
    let started = Instant::now();
    let longest = windows.iter().map(Vec::len).max().unwrap_or(2);
    let mut session = Session::new(
        model.clone(),
        SessionOptions {
            context_len: longest,
            ..Default::default()
        },
    )?;
    let (mut nll, mut tokens) = (0f64, 0usize);
    for w in windows {
        session.reset();
        for lp in session.token_logprobs(w)? {
            nll -= lp as f64;
            tokens += 1;
        }
    }
    let mean_nll = nll / tokens as f64;
    Ok(Score {
        model: dir.display().to_string(),
        perplexity: mean_nll.exp(),
        mean_nll,
        tokens,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Greedy continuations of the beginnings of the first `prompts` windows by both models.
fn agreement(
    model: &Arc<Model>,
    reference: &Arc<Model>,
    windows: &[Vec<u32>],
    prompts: usize,
    new_tokens: usize,
) -> anyhow::Result<Agreement> {
    let greedy = GenerationConfig {
        do_sample: Some(false),
        max_new_tokens: Some(new_tokens),
        ..Default::default()
    };
    let continue_with = |m: &Arc<Model>, prompt: &[u32]| -> anyhow::Result<Vec<u32>> {
        let mut s = Session::new(m.clone(), SessionOptions::default())?;
        s.set_generation_config(greedy.clone())?;
        Ok(s.generate_ids(prompt, |_| true)?.tokens)
    };
    let (mut same, mut compared) = (0usize, 0usize);
    let (mut identical, mut first_sum, mut n) = (0usize, 0usize, 0usize);
    for w in windows.iter().filter(|w| w.len() >= 4).take(prompts) {
        let prompt = &w[..(w.len() / 2).min(16)];
        let (a, b) = (
            continue_with(model, prompt)?,
            continue_with(reference, prompt)?,
        );
        // Continuations end early at EOS: positions past both ends are not compared.
        let first = (0..new_tokens)
            .find(|&i| a.get(i) != b.get(i))
            .unwrap_or(new_tokens);
        same += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        compared += a.len().max(b.len());
        identical += usize::from(first == new_tokens);
        first_sum += first;
        n += 1;
    }
    Ok(Agreement {
        prompts: n,
        new_tokens,
        token_agreement: same as f64 / compared.max(1) as f64,
        identical,
        mean_first_divergence: first_sum as f64 / n.max(1) as f64,
    })
}

fn print_report(r: &Report) {
    let line = |s: &Score| {
        println!(
            "{}: perplexity {:.3} (mean NLL {:.4} nats) over {} tokens, {:.1} s",
            s.model, s.perplexity, s.mean_nll, s.tokens, s.seconds
        )
    };
    line(&r.score);
    if let Some(reference) = &r.reference {
        line(reference);
    }
    if let Some(inc) = r.increase {
        println!("increase over the reference: {:+.2} %", inc * 100.0);
    }
    if let Some(g) = &r.greedy {
        println!(
            "greedy continuations: {} prompts × {} tokens: {:.1} % of tokens identical, {} of {} continuations identical, first difference at token {:.1} on average",
            g.prompts,
            g.new_tokens,
            g.token_agreement * 100.0,
            g.identical,
            g.prompts,
            g.mean_first_divergence
        );
    }
}
