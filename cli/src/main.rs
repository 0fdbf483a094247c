//! `rill`: generate text with a model folder, inspect a folder.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

mod bench;
mod chat;
mod perplexity;
use rill::{
    ContextPolicy, GenerationConfig, Model, ModelOptions, Session, SessionOptions, WeightSource,
};

#[derive(Parser)]
#[command(
    name = "rill",
    version,
    about = "Run language models from rill model folders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt, streaming it to stdout.
    Generate(Box<GenerateArgs>),
    /// Chat in the terminal with the folder's chat template (/reset, /regen, /quit;
    /// Ctrl-C stops the reply being written).
    Chat(Box<chat::ChatArgs>),
    /// Measure open time, memory, prefill and decode speed.
    Bench(bench::BenchArgs),
    /// Perplexity on a text, and against a reference folder: the increase and how often
    /// greedy continuations agree (e.g. a quantized folder against its float source).
    Perplexity(perplexity::PerplexityArgs),
    /// Describe a model folder: config, graph, weights, tokenizer.
    Inspect {
        /// Model folder.
        dir: PathBuf,
        #[command(flatten)]
        open: OpenArgs,
    },
}

#[derive(Args)]
struct GenerateArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (with --load-state: a new turn appended to the saved conversation;
    /// empty continues it).
    #[arg(long, default_value = "")]
    prompt: String,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    open: OpenArgs,
    /// Print timings and memory to stderr.
    #[arg(long)]
    stats: bool,
    /// Context length in tokens (0: the model's maximum).
    #[arg(long, default_value_t = 0)]
    context: usize,
    /// When the context fills, drop the oldest tokens after the first N instead of
    /// stopping (a sliding window that keeps the first N tokens, e.g. a system prompt).
    #[arg(long, value_name = "N")]
    sliding_window: Option<usize>,
    /// Write the session (tokens, KV cache, settings) to this file afterwards.
    #[arg(long, value_name = "FILE")]
    save_state: Option<PathBuf>,
    /// Start from a session saved with --save-state (same model folder).
    #[arg(long, value_name = "FILE")]
    load_state: Option<PathBuf>,
    /// Assisted generation: a smaller model folder with the same tokenizer proposes the
    /// next tokens (up to `num_assistant_tokens`, default 20) for the model to check in
    /// one pass; the output is the same.
    #[arg(long, value_name = "DIR")]
    assistant: Option<PathBuf>,
    /// Print each generated token's log-probability to stderr afterwards (index, natural
    /// log, the token's text), one line each.
    #[arg(long)]
    logprobs: bool,
}

/// How the model folder is opened.
#[derive(Args)]
pub(crate) struct OpenArgs {
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Let ONNX Runtime load the weights itself instead of rill mapping them.
    #[arg(long)]
    ort_loads_weights: bool,
    /// Stop ONNX Runtime from pre-packing weights (no second copy, but a fused-attention export's joined q, k, v; slower products).
    #[arg(long)]
    no_prepack: bool,
    /// Where the graph runs: cpu, cuda (an error naming what is missing when CUDA cannot
    /// be used), or auto (CUDA when usable, else the CPU, saying why). CUDA needs a build
    /// with `--features cuda` and the onnxruntime-gpu library (`make cuda-env`).
    #[arg(long, default_value = "cpu")]
    provider: String,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: i32,
    /// Which of the folder's graphs runs: auto (the fused-attention model.gqa.onnx when
    /// the folder has one, else model.onnx), plain (model.onnx) or fused (model.gqa.onnx,
    /// an error when missing).
    #[arg(long, value_enum, default_value_t = GraphArg::Auto)]
    graph: GraphArg,
}

/// `--graph`: [`rill::GraphChoice`] on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphArg {
    Auto,
    Plain,
    Fused,
}

impl OpenArgs {
    /// The model options these flags ask for.
    pub(crate) fn options(&self) -> anyhow::Result<ModelOptions> {
        Ok(ModelOptions {
            intra_threads: self.threads,
            weights: if self.ort_loads_weights {
                WeightSource::OrtExternalData
            } else {
                WeightSource::Mapped
            },
            prepack: !self.no_prepack,
            provider: rill::Provider::parse(&self.provider, self.device)?,
            graph: match self.graph {
                GraphArg::Auto => rill::GraphChoice::Auto,
                GraphArg::Plain => rill::GraphChoice::Plain,
                GraphArg::Fused => rill::GraphChoice::Fused,
            },
        })
    }

    /// Opens `dir` with these options (a CUDA fallback is reported on stderr).
    pub(crate) fn open(&self, dir: &std::path::Path) -> anyhow::Result<Arc<Model>> {
        let model = Model::open(dir, &self.options()?)?;
        if let Some(note) = model.provider_note() {
            eprintln!("note: {note}");
        }
        Ok(Arc::new(model))
    }
}

/// Decoding settings shared by `generate` and `chat` (over the folder's
/// generation_config.json).
#[derive(Args)]
pub(crate) struct SamplingArgs {
    /// Most new tokens (default: the folder's generation_config.json, else 256).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// No end-of-sequence before this many new tokens.
    #[arg(long)]
    min_new_tokens: Option<usize>,
    /// Decode greedily (argmax) whatever the folder's generation config says.
    #[arg(long)]
    greedy: bool,
    /// Sampling temperature (sets do_sample).
    #[arg(long)]
    temperature: Option<f32>,
    /// Keep the k most likely tokens when sampling.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Drop tokens below this fraction of the top probability.
    #[arg(long)]
    min_p: Option<f32>,
    /// Locally typical sampling mass.
    #[arg(long)]
    typical_p: Option<f32>,
    /// Penalty on tokens already present (1.0: none).
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Ban repeating n-grams of this size.
    #[arg(long)]
    no_repeat_ngram_size: Option<usize>,
    /// Seed of the sampler's random generator.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when the text produces this string (not printed); repeatable.
    #[arg(long)]
    stop: Vec<String>,
    /// Beam search with this many beams.
    #[arg(long)]
    num_beams: Option<usize>,
    /// Length normalisation exponent of beam scores.
    #[arg(long)]
    length_penalty: Option<f32>,
    /// Beam search stopping: true, false or never.
    #[arg(long)]
    early_stopping: Option<String>,
    /// Diverse beam search: number of beam groups.
    #[arg(long)]
    num_beam_groups: Option<usize>,
    /// Diverse beam search: penalty per earlier group that chose a token.
    #[arg(long)]
    diversity_penalty: Option<f32>,
    /// Print this many beam hypotheses, one per line, best first.
    #[arg(long)]
    num_return_sequences: Option<usize>,
    /// Load a sampler plugin (a shared library exporting rill_plugin_entry); repeatable.
    #[arg(long)]
    plugin: Vec<PathBuf>,
    /// Add a sampler by name, with JSON parameters after a colon; repeatable.
    #[arg(long, value_name = "NAME[:JSON]")]
    sampler: Vec<String>,
    /// Keep the generated text a full match of this regular expression (Rust regex
    /// syntax): the `regex` sampler, run before the sampling warpers; the generation
    /// ends when the text is a full match that nothing may extend.
    #[arg(long, value_name = "PATTERN")]
    regex: Option<String>,
    /// Keep the generated text one JSON value (`object`: a JSON object) and end it when
    /// the value is complete: the `json` sampler, run before the sampling warpers.
    #[arg(long, value_name = "TOP", num_args = 0..=1, default_missing_value = "any")]
    json: Option<String>,
    /// Generation settings as a JSON object with Hugging Face generation_config.json keys
    /// (any rill implements, e.g. '{"suppress_tokens": [5], "max_length": 200}'); the
    /// other flags override it.
    #[arg(long, value_name = "JSON")]
    generation_config: Option<String>,
}

impl SamplingArgs {
    /// Loads the plugins and turns the flags into generation settings.
    pub(crate) fn config(&self) -> anyhow::Result<GenerationConfig> {
        for path in &self.plugin {
            rill::plugin::load_once(path)?;
        }
        let a = self;
        let sampling_flag = a.temperature.is_some()
            || a.top_k.is_some()
            || a.top_p.is_some()
            || a.min_p.is_some()
            || a.typical_p.is_some();
        let base = match &a.generation_config {
            Some(json) => GenerationConfig::from_json(json)?,
            None => GenerationConfig::default(),
        };
        Ok(base.merged(&GenerationConfig {
            max_new_tokens: a.max_new_tokens,
            min_new_tokens: a.min_new_tokens,
            do_sample: if a.greedy || (a.num_beams.unwrap_or(1) > 1 && !sampling_flag) {
                Some(false)
            } else if sampling_flag {
                Some(true)
            } else {
                None
            },
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            typical_p: a.typical_p,
            repetition_penalty: a.repetition_penalty,
            no_repeat_ngram_size: a.no_repeat_ngram_size,
            seed: a.seed,
            stop_strings: (!a.stop.is_empty())
                .then(|| rill::config::OneOrMany::Many(a.stop.clone())),
            samplers: sampler_specs(&a.sampler, a.regex.as_deref(), a.json.as_deref())?,
            num_beams: a.num_beams,
            length_penalty: a.length_penalty,
            early_stopping: match a.early_stopping.as_deref() {
                None => None,
                Some("true") => Some(true.into()),
                Some("false") => Some(false.into()),
                Some(other) => Some(other.into()),
            },
            num_return_sequences: a.num_return_sequences,
            num_beam_groups: a.num_beam_groups,
            diversity_penalty: a.diversity_penalty,
            ..Default::default()
        }))
    }
}

fn main() {
    let result = match Cli::parse().command {
        Command::Generate(a) => generate(*a),
        Command::Chat(a) => chat::run(*a),
        Command::Bench(a) => bench::run(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Inspect { dir, open } => inspect(dir, &open),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Resident set size of this process in bytes (Linux), for `--stats`.
pub(crate) fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// `NAME[:JSON]` flags (after the `--regex` and `--json` constraints, which run before
/// the warpers) as custom sampler entries.
fn sampler_specs(
    flags: &[String],
    regex: Option<&str>,
    json: Option<&str>,
) -> anyhow::Result<Option<Vec<rill::config::SamplerSpec>>> {
    if flags.is_empty() && regex.is_none() && json.is_none() {
        return Ok(None);
    }
    let constraint = |name: &str, params: serde_json::Value| rill::config::SamplerSpec {
        name: name.into(),
        params: Some(params),
        plugin: None,
        before_warpers: true,
    };
    let constraints = [
        regex.map(|pattern| constraint("regex", serde_json::json!({ "pattern": pattern }))),
        json.map(|top| constraint("json", serde_json::json!({ "top": top }))),
    ];
    let specs = constraints
        .into_iter()
        .flatten()
        .map(Ok)
        .chain(flags.iter().map(|f| {
            let (name, params) = f
                .split_once(':')
                .map_or((f.as_str(), None), |(n, p)| (n, Some(p)));
            let params = params
                .map(|p| {
                    serde_json::from_str(p).map_err(|e| {
                        anyhow::anyhow!("--sampler {name}: parameters are not JSON: {e}")
                    })
                })
                .transpose()?;
            Ok(rill::config::SamplerSpec {
                name: name.to_string(),
                params,
                plugin: None,
                before_warpers: false,
            })
        }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(specs))
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let mut config = a.sampling.config()?;
    if a.logprobs {
        config.output_logprobs = Some(true);
    }
    let rss_before = resident_bytes();
    let model = a.open.open(&a.model)?;
    let rss_open = resident_bytes();
    let mut session = Session::new(
        model.clone(),
        SessionOptions {
            context_len: a.context,
            context_policy: match a.sliding_window {
                None => ContextPolicy::Error,
                Some(pinned) => ContextPolicy::SlidingWindow { pinned },
            },
            ..Default::default()
        },
    )?;
    if let Some(path) = &a.load_state {
        let blob = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        session.load_state(&blob)?;
    } else if a.prompt.is_empty() {
        anyhow::bail!("--prompt is required (unless --load-state continues a saved session)");
    }
    session.set_generation_config(config)?;
    if let Some(dir) = &a.assistant {
        session.set_assistant(Some(a.open.open(dir)?))?;
    }
    let stdout = std::io::stdout();
    let started = Instant::now();
    let print = |piece: &str| {
        let mut lock = stdout.lock();
        lock.write_all(piece.as_bytes())
            .and_then(|_| lock.flush())
            .is_ok()
    };
    let out = if a.load_state.is_some() {
        session.append(&a.prompt, print)?
    } else {
        session.generate(&a.prompt, print)?
    };
    if let Some(path) = &a.save_state {
        std::fs::write(path, session.save_state()?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    for index in 1..session.beam_results().len() {
        let (text, _) = session.beam_text(index)?;
        println!();
        print!("{text}");
    }
    for (i, (&id, lp)) in out.tokens.iter().zip(&out.logprobs).enumerate() {
        eprintln!("{i}\t{lp:.4}\t{:?}", model.detokenize(&[id])?);
    }
    if a.stats {
        let t = out.timings;
        let total = started.elapsed();
        let per = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
        eprintln!("open: {:.1} ms", model.open_time().as_secs_f64() * 1e3);
        if let (Some(b), Some(o)) = (rss_before, rss_open) {
            let w = model
                .mapped_weight_bytes()
                .map(|w| format!(" (weights file {})", mib(w)))
                .unwrap_or_default();
            eprintln!(
                "resident memory: {} after open, +{} for the model{w}",
                mib(o),
                mib(o.saturating_sub(b))
            );
        }
        eprintln!(
            "prompt: {} tokens in {:.1} ms ({:.0} tokens/s)",
            out.prompt_tokens,
            t.prefill.as_secs_f64() * 1e3,
            per(out.prompt_tokens, t.prefill)
        );
        // The first token comes from the prompt's pass; decode made the others, in
        // `decode_steps` forward passes (fewer with prompt lookup decoding).
        eprintln!(
            "decode: {} tokens in {:.1} ms ({:.1} tokens/s, {} forward passes), stop: {:?}",
            out.tokens.len(),
            t.decode.as_secs_f64() * 1e3,
            per(out.tokens.len().saturating_sub(1), t.decode),
            t.decode_steps,
            out.stop
        );
        let ort = t.ort_run.as_secs_f64();
        let assistant = t.assistant_ort_run.as_secs_f64();
        let all = (t.prefill + t.decode).as_secs_f64().max(1e-9);
        let of_which = if assistant > 0.0 {
            format!(
                "{:.1} ms of the model's passes and {:.1} ms of the assistant's",
                ort * 1e3,
                assistant * 1e3
            )
        } else {
            format!("{:.1} ms", ort * 1e3)
        };
        eprintln!(
            "time in ONNX Runtime Run: {:.1}% ({of_which} of {:.1} ms); total {:.1} ms",
            100.0 * (ort + assistant) / all,
            all * 1e3,
            total.as_secs_f64() * 1e3
        );
        if let Some(r) = resident_bytes() {
            eprintln!(
                "resident memory after generation: {} (KV cache {})",
                mib(r),
                mib(session.cache_bytes())
            );
        }
    }
    Ok(())
}

fn inspect(dir: PathBuf, open: &OpenArgs) -> anyhow::Result<()> {
    let model = open.open(&dir)?;
    let c = model.config();
    println!("folder: {}", dir.display());
    let shown = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    println!("config: model_type {:?}, vocab {}, hidden {}, layers {}, heads {} (kv {}), head_dim {}, max positions {}, tied embeddings {}",
        c.model_type, c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.kv_heads(), c.head_dim(), shown(c.max_position_embeddings.map(|n| n.to_string())), c.tie_word_embeddings);
    println!(
        "execution provider: {} (CUDA {})",
        model.provider().describe(),
        if rill::provider::CUDA_BUILD {
            "available in this build: --provider cuda"
        } else {
            "not in this build: rebuild with --features cuda"
        }
    );
    println!(
        "KV cache: {}",
        if model.cache_on_device() {
            "GPU memory (bound to past/present; rows move on the device)"
        } else {
            "host memory"
        }
    );
    match &c.quantization_config {
        Some(q) => println!("quantization: {}", q.describe()),
        None => println!("quantization: none (float weights)"),
    }
    println!(
        "special tokens: bos {}, eos {}",
        shown(c.bos_token_id.map(|id| id.to_string())),
        shown(c.eos_token_id.as_ref().map(|e| format!("{:?}", e.to_vec())))
    );
    println!(
        "graph: {}{}",
        model.graph_file().display(),
        if model.graph_file().ends_with(rill::graph::FUSED_GRAPH_FILE) {
            " (fused attention; --graph plain runs model.onnx)"
        } else {
            ""
        }
    );
    let (inputs, outputs) = model.graph_io();
    println!("graph inputs:");
    for i in inputs {
        println!("  {i}");
    }
    if model.graph().logits_to_keep {
        println!("  logits_to_keep: Int64 [] (optional; prompt chunks compute the last position's logits only)");
    }
    println!("graph outputs:");
    for o in outputs {
        println!("  {o}");
    }
    println!(
        "cache layout: {}",
        match model.graph().cache_layout {
            rill::kv_cache::Layout::Shared =>
                "one shared past/present buffer per tensor (fused attention export)",
            rill::kv_cache::Layout::DoubleBuffered => "past and present double-buffered",
        }
    );
    let weights = model.weight_summary();
    if weights.is_empty() {
        println!("weights: loaded by ONNX Runtime from the graph (no model.safetensors)");
    }
    for (dtype, n, bytes) in weights {
        println!(
            "weights: {n} tensors {dtype}, {} (memory-mapped)",
            mib(bytes)
        );
    }
    println!(
        "tokenizer: {} tokens",
        model.tokenizer().get_vocab_size(true)
    );
    println!("generation defaults: {:?}", model.generation_defaults());
    println!(
        "KV cache: {:?}, {} bytes per token",
        model.graph().cache_dtype,
        2 * c.num_hidden_layers
            * c.kv_heads()
            * c.head_dim()
            * if model.graph().cache_dtype == rill::kv_cache::CacheDtype::F16 {
                2
            } else {
                4
            }
    );
    Ok(())
}
