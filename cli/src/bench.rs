//! `rill bench`: open time, resident memory, prefill and decode speed over repetitions,
//! and where a decode step's time goes (inside ONNX Runtime's Run, or around it in rill).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use rill::config::OneOrMany;
use rill::{GenerationConfig, Model, Session, SessionOptions};

/// Options of `rill bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// Prompt length in tokens (a fixed synthetic prompt).
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens to decode per repetition.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Repetitions.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[command(flatten)]
    open: crate::OpenArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also measure greedy decoding assisted by this model folder (same tokenizer):
    /// tokens/s and passes of the model per token.
    #[arg(long, value_name = "DIR")]
    assistant: Option<PathBuf>,
}

/// min / median / max of a sample.
fn summary(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    [v[0], v[v.len() / 2], v[v.len() - 1]]
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.reps > 0 && a.new_tokens > 0 && a.prompt_tokens > 0,
        "reps, new-tokens and prompt-tokens must be positive"
    );
    let options = a.open.options()?;
    let rss0 = crate::resident_bytes().unwrap_or(0);
    let t = Instant::now();
    let model = Arc::new(Model::open(&a.model, &options)?);
    let mut open_ms = vec![t.elapsed().as_secs_f64() * 1e3];
    let rss_open = crate::resident_bytes().unwrap_or(0); // one model: measured before more opens
    for _ in 1..a.reps {
        let t = Instant::now();
        drop(Model::open(&a.model, &options)?);
        open_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let vocab = model.config().vocab_size as u32;
    let mut prompt = vec![model.config().bos_token_id.unwrap_or(0)];
    prompt.extend((0..a.prompt_tokens as u32 - 1).map(|i| 3 + (i * 7919) % (vocab - 3)));
    let context = a.prompt_tokens + a.new_tokens + 32; // room for the second-turn measurement
    let options = SessionOptions {
        context_len: context,
        prefill_chunk: a.prompt_tokens,
        ..Default::default()
    };
    let mut session = Session::new(model.clone(), options.clone())?;
    let greedy = GenerationConfig {
        max_new_tokens: Some(a.new_tokens),
        eos_token_id: Some(OneOrMany::Many(vec![])), // never stop early
        do_sample: Some(false),
        repetition_penalty: Some(1.0),
        no_repeat_ngram_size: Some(0),
        ..Default::default()
    };
    // The standard sampler chain: repetition penalty, temperature, top-k, top-p, draw.
    let sampled = GenerationConfig {
        do_sample: Some(true),
        temperature: Some(0.8),
        top_k: Some(50),
        top_p: Some(0.95),
        repetition_penalty: Some(1.1),
        seed: Some(1),
        ..greedy.clone()
    };
    let mut measure = |config: &GenerationConfig| -> anyhow::Result<[Vec<f64>; 4]> {
        session.set_generation_config(config.clone())?;
        session.reset();
        session.generate_ids(&prompt, |_| true)?; // warm-up
        let mut m: [Vec<f64>; 4] = Default::default();
        for _ in 0..a.reps {
            session.reset(); // measure the whole prefill, not a reused prefix
            let t = session.generate_ids(&prompt, |_| true)?.timings;
            let total = (t.prefill + t.decode).as_secs_f64();
            m[0].push(a.prompt_tokens as f64 / t.prefill.as_secs_f64());
            m[1].push(t.decode_steps as f64 / t.decode.as_secs_f64());
            m[2].push(t.ort_run.as_secs_f64() / total);
            m[3].push(t.sampling.as_secs_f64() / total);
        }
        Ok(m)
    };
    let [prefill, decode, ort_share, _] = measure(&greedy)?;
    let [_, decode_sampled, _, sampler_share] = measure(&sampled)?;
    // A second chat turn: 16 new tokens after the conversation so far, against evaluating
    // the whole conversation afresh.
    let turn: Vec<u32> = (0..16u32)
        .map(|i| 3 + (i * 104_729) % (vocab - 3))
        .collect();
    let one = GenerationConfig {
        max_new_tokens: Some(1),
        ..greedy.clone()
    };
    let (mut turn_ms, mut fresh_ms) = (Vec::new(), Vec::new());
    for _ in 0..a.reps {
        session.set_generation_config(greedy.clone())?;
        session.reset();
        session.generate_ids(&prompt, |_| true)?;
        session.set_generation_config(one.clone())?;
        let mut whole = session.history();
        whole.extend_from_slice(&turn);
        turn_ms.push(
            session
                .append_ids(&turn, |_| true)?
                .timings
                .prefill
                .as_secs_f64()
                * 1e3,
        );
        session.reset();
        fresh_ms.push(
            session
                .generate_ids(&whole, |_| true)?
                .timings
                .prefill
                .as_secs_f64()
                * 1e3,
        );
    }
    let (turn_ms, fresh_ms) = (summary(turn_ms), summary(fresh_ms));
    // Beam search with 4 beams: batched steps per second after the prompt (evaluated once
    // for all beams, timed apart as prefill), as greedy decode is counted. Each repetition
    // pairs it with a greedy generation just before it, so the ratio of the two is taken a
    // second apart rather than across the whole benchmark (this host's speed drifts).
    let (mut beam_tps, mut beam_ort, mut beam_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let beam = GenerationConfig {
        num_beams: Some(4),
        ..greedy.clone()
    };
    for _ in 0..a.reps {
        session.set_generation_config(greedy.clone())?;
        session.reset();
        let t = session.generate_ids(&prompt, |_| true)?.timings;
        let greedy_tps = t.decode_steps as f64 / t.decode.as_secs_f64();
        session.set_generation_config(beam.clone())?;
        let t = session.generate_ids(&prompt, |_| true)?.timings;
        let tps = t.decode_steps as f64 / t.decode.as_secs_f64();
        beam_tps.push(tps);
        beam_ort.push(t.ort_run.as_secs_f64() / t.decode.as_secs_f64());
        beam_ratio.push(tps / greedy_tps);
    }
    let (beam_tps, beam_ort, beam_ratio) =
        (summary(beam_tps), summary(beam_ort), summary(beam_ratio));
    // Assisted greedy decoding: generated tokens (not passes of the model) per second.
    let assisted = match &a.assistant {
        None => None,
        Some(dir) => {
            session.set_assistant(Some(Arc::new(Model::open(dir, &a.open.options()?)?)))?;
            session.set_generation_config(greedy.clone())?;
            session.reset();
            session.generate_ids(&prompt, |_| true)?; // warm-up
            let (mut tps, mut passes) = (Vec::new(), Vec::new());
            for _ in 0..a.reps {
                session.reset();
                let g = session.generate_ids(&prompt, |_| true)?;
                let after_first = (g.tokens.len() - 1).max(1) as f64;
                tps.push(after_first / g.timings.decode.as_secs_f64());
                passes.push(g.timings.decode_steps as f64 / after_first);
            }
            session.set_assistant(None)?;
            Some((summary(tps), summary(passes)))
        }
    };
    let rss_gen = crate::resident_bytes().unwrap_or(0);
    // Eight more sessions on the same model: each should cost its KV cache, no weights.
    let before = crate::resident_bytes().unwrap_or(0);
    let mut eight = Vec::new();
    for _ in 0..8 {
        let mut s = Session::new(model.clone(), options.clone())?;
        s.set_generation_config(one.clone())?;
        s.generate_ids(&prompt, |_| true)?; // touch the cache
        eight.push(s);
    }
    let eight_rss = crate::resident_bytes().unwrap_or(0).saturating_sub(before);
    let eight_caches: usize = eight.iter().map(|s| s.cache_bytes()).sum();
    drop(eight);
    let (o, p, d, s, ds, ss) = (
        summary(open_ms),
        summary(prefill),
        summary(decode),
        summary(ort_share),
        summary(decode_sampled),
        summary(sampler_share),
    );
    let step_us = 1e6 / d[1];
    if a.json {
        let v = serde_json::json!({
            "model": a.model, "graph_file": model.graph_file(), "threads": a.open.threads, "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens,
            "reps": a.reps, "open_ms": o, "prefill_tokens_per_s": p, "decode_tokens_per_s": d,
            "ort_run_share": s, "decode_step_us_median": step_us,
            "decode_sampled_tokens_per_s": ds, "sampler_share_sampled": ss,
            "around_ort_us_median": step_us * (1.0 - s[1]),
            "second_turn_ms": turn_ms, "second_turn_fresh_ms": fresh_ms,
            "decode_beam4_tokens_per_s": beam_tps, "beam4_ort_run_share": beam_ort,
            "beam4_over_greedy": beam_ratio,
            "eight_sessions_rss_bytes": eight_rss, "eight_sessions_cache_bytes": eight_caches,
            "rss_before_open": rss0, "rss_after_open": rss_open, "rss_after_generation": rss_gen,
            "weights_file_bytes": model.mapped_weight_bytes(), "kv_cache_bytes": session.cache_bytes(),
            "assisted_decode_tokens_per_s": assisted.map(|(t, _)| t),
            "assisted_passes_per_token": assisted.map(|(_, p)| p),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "model {} ({} reps, min / median / max; graph {})",
        a.model.display(),
        a.reps,
        model.graph_file().display()
    );
    println!(
        "open            {:>9.1} {:>9.1} {:>9.1} ms",
        o[0], o[1], o[2]
    );
    println!(
        "prefill ({:>4})  {:>9.0} {:>9.0} {:>9.0} tokens/s",
        a.prompt_tokens, p[0], p[1], p[2]
    );
    println!(
        "decode  ({:>4})  {:>9.1} {:>9.1} {:>9.1} tokens/s",
        a.new_tokens, d[0], d[1], d[2]
    );
    println!(
        "decode sampled  {:>9.1} {:>9.1} {:>9.1} tokens/s (temperature 0.8, top-k 50, top-p 0.95, repetition penalty 1.1)",
        ds[0], ds[1], ds[2]
    );
    println!("decode step     {:>9.1} us median (greedy); {:.1}% inside ONNX Runtime Run, {:.1} us around it in rill", step_us, s[1] * 100.0, step_us * (1.0 - s[1]));
    println!(
        "sampler chain   {:.1}% of a sampled decode step ({:.1} us)",
        ss[1] * 100.0,
        ss[1] * 1e6 / ds[1]
    );
    println!(
        "second turn     {:>9.2} ms for 16 new tokens after {} cached; {:.2} ms evaluating all {} afresh",
        turn_ms[1],
        a.prompt_tokens + a.new_tokens,
        fresh_ms[1],
        a.prompt_tokens + a.new_tokens + 16
    );
    println!(
        "beam search (4) {:>9.1} {:>9.1} {:>9.1} steps/s after the prompt, all beams ({:.2}x greedy decode, median of each repetition against a greedy one just before it; {:.1}% inside ONNX Runtime Run)",
        beam_tps[0],
        beam_tps[1],
        beam_tps[2],
        beam_ratio[1],
        beam_ort[1] * 100.0
    );
    if let Some((t, p)) = assisted {
        println!(
            "assisted decode {:>9.1} {:>9.1} {:>9.1} tokens/s ({:.2}x greedy decode; {:.2} passes of the model per token)",
            t[0], t[1], t[2], t[1] / d[1], p[1]
        );
    }
    println!(
        "eight sessions  +{:.1} MiB resident for {:.1} MiB of KV caches",
        eight_rss as f64 / 1048576.0,
        eight_caches as f64 / 1048576.0
    );
    println!("resident memory {:.1} MiB after open (+{:.1} MiB), {:.1} MiB after generation; weights file {:.1} MiB",
        rss_open as f64 / 1048576.0, rss_open.saturating_sub(rss0) as f64 / 1048576.0, rss_gen as f64 / 1048576.0,
        model.mapped_weight_bytes().unwrap_or(0) as f64 / 1048576.0);
    Ok(())
}
