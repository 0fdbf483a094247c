//! `rill-train`: the command line of the trainer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rill_trainer::config::{LlamaConfig, Preset};
use rill_trainer::corpus::{token_stream, Corpus, WindowSampler};
use rill_trainer::schedule::{LengthCurriculum, LrSchedule, SamplingDecay, ScheduledSampling};
use rill_trainer::train::{TrainOptions, TrainOutputs, Trainee};
use rill_trainer::weights::{FolderWeights, WeightDtype};
use rill_trainer::{folder, model, sample, tokenizer, train};

#[derive(Parser)]
#[command(
    name = "rill-train",
    version,
    about = "Train Llama-architecture models on CPU and write rill model folders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a tokenizer and a model on a text corpus and write a model folder.
    Train(TrainArgs),
    /// Write model.onnx beside the weights of a Hugging Face Llama folder (ours or any).
    Export(ExportArgs),
    /// Write a model folder with random weights (for benchmarks and tests).
    Init(InitArgs),
    /// Print the model's logits for token ids as JSON (the reference forward pass).
    Logits(LogitsArgs),
    /// Generate text from a model folder with the trainer's own forward pass.
    Sample(SampleArgs),
    /// Write a copy of a float model folder with block-wise 4- or 8-bit weights that
    /// ONNX Runtime multiplies with MatMulNBits.
    Quantize(QuantizeArgs),
    /// Print a corpus's held-out documents (the text perplexity is measured on).
    HeldOut(HeldOutArgs),
}

#[derive(Args)]
struct QuantizeArgs {
    /// The float model folder (ours, or any folder `export --from` accepts).
    input: PathBuf,
    /// The quantized folder to write.
    output: PathBuf,
    /// Bits per weight.
    #[arg(long, default_value_t = 4)]
    bits: usize,
    /// Weights per scale.
    #[arg(long, default_value_t = 32)]
    block_size: usize,
    /// Symmetric blocks (no zero points stored; smaller, usually less accurate).
    #[arg(long)]
    symmetric: bool,
    /// Keep the embedding and the LM head in float (tied heads are one matrix).
    #[arg(long)]
    keep_embeddings: bool,
    /// MatMulNBits accuracy level: 0 computes in f32; 4 quantizes activations to int8 per
    /// block and uses integer dot products (faster on CPU).
    #[arg(long, default_value_t = 4)]
    accuracy_level: i64,
    /// Attention in the graph (as for `export`).
    #[arg(long, value_enum, default_value_t = rill_trainer::onnx::Graphs::Hf)]
    attention: rill_trainer::onnx::Graphs,
    /// Overwrite the output folder if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct HeldOutArgs {
    /// Corpus file (one document per line).
    #[arg(long)]
    corpus: PathBuf,
    /// Every N-th document is held out (as `train --held-out-every`).
    #[arg(long, default_value_t = 50)]
    held_out_every: usize,
    /// Stop after this many bytes of text.
    #[arg(long, default_value_t = 1 << 20)]
    max_bytes: usize,
}

#[derive(Args)]
struct TrainArgs {
    /// UTF-8 text, one document per line.
    #[arg(long)]
    corpus: PathBuf,
    /// Output model folder.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite the output folder if it exists.
    #[arg(long)]
    force: bool,
    /// Tokenizer vocabulary size.
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
    /// Model size.
    #[arg(long, value_enum, default_value_t = Preset::Tiny)]
    preset: Preset,
    /// Sequence length (the full length when a curriculum is used).
    #[arg(long, default_value_t = 256)]
    seq_len: usize,
    /// Tokens per micro-batch.
    #[arg(long, default_value_t = 4096)]
    batch_tokens: usize,
    /// Micro-batches accumulated per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Optimizer steps; the cosine schedule ends here.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Wall-clock budget in minutes: the schedule is compressed to end there if sooner.
    #[arg(long)]
    time_limit_min: Option<f64>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Learning rate at the end of the cosine.
    #[arg(long, default_value_t = 1e-4)]
    min_lr: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// AdamW weight decay (matrices only).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Clip the global gradient norm to this value (0 disables).
    #[arg(long, default_value_t = 1.0)]
    clip_grad: f64,
    /// Label smoothing epsilon.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Scheduled sampling decay (teacher forcing when absent).
    #[arg(long, value_enum)]
    scheduled_sampling: Option<SamplingDecay>,
    /// Steps over which scheduled sampling decays (default: all steps).
    #[arg(long)]
    ss_steps: Option<usize>,
    /// Lowest teacher-forcing probability.
    #[arg(long, default_value_t = 0.75)]
    ss_floor: f64,
    /// Length curriculum: starting sequence length (no curriculum when absent).
    #[arg(long)]
    curriculum_start: Option<usize>,
    /// Steps over which the sequence length grows (default: half the steps).
    #[arg(long)]
    curriculum_steps: Option<usize>,
    /// Evaluate on the held-out split every this many steps.
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Held-out windows per evaluation.
    #[arg(long, default_value_t = 32)]
    eval_windows: usize,
    /// Every N-th document goes to the held-out split.
    #[arg(long, default_value_t = 50)]
    held_out_every: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Weight dtype of the written folder.
    #[arg(long, value_enum, default_value_t = WeightDtype::F32)]
    dtype: WeightDtype,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// A Llama-family model folder: config.json and model.safetensors (or shards + index).
    #[arg(long = "from")]
    from: PathBuf,
    /// Write a new folder here (weights converted to --dtype, tokenizer copied) instead of
    /// adding model.onnx to --from.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Weight dtype of the new folder (with --out).
    #[arg(long, value_enum, default_value_t = WeightDtype::F32)]
    dtype: WeightDtype,
    /// Overwrite --out if it exists.
    #[arg(long)]
    force: bool,
    /// Attention in the graph: `hf` (plain ONNX, any runtime), `gqa` (ONNX Runtime's
    /// fused GroupQueryAttention with one shared past/present buffer: faster decoding,
    /// most at long context) or `both` (the plain model.onnx and the fused graph beside it
    /// as model.gqa.onnx, which rill runs when present).
    #[arg(long, value_enum, default_value_t = rill_trainer::onnx::Graphs::Hf)]
    attention: rill_trainer::onnx::Graphs,
}

#[derive(Args)]
struct InitArgs {
    /// Output model folder.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite the output folder if it exists.
    #[arg(long)]
    force: bool,
    /// Model size.
    #[arg(long, value_enum, default_value_t = Preset::Test)]
    preset: Preset,
    /// Vocabulary size (ignored when --tokenizer-from is given).
    #[arg(long, default_value_t = 512)]
    vocab_size: usize,
    /// Copy tokenizer files from this folder (its vocabulary size is used).
    #[arg(long)]
    tokenizer_from: Option<PathBuf>,
    /// Give the model its own LM head instead of tying it to the embedding.
    #[arg(long)]
    untied: bool,
    /// Biases on the attention projections (Llama's `attention_bias`: q, k, v and o).
    #[arg(long)]
    attention_bias: bool,
    /// Biases on the MLP projections (`mlp_bias`).
    #[arg(long)]
    mlp_bias: bool,
    /// `model_type` to write: `qwen2` gives q, k and v biases, as Qwen2 checkpoints have;
    /// `qwen3` per-head query and key norms, as Qwen3 checkpoints have; `gemma3_text`
    /// Gemma 3's layers (sliding-window layers, the last layer and every sixth full);
    /// `gemma2` Gemma 2's (every other layer sliding, soft-capped scores and logits);
    /// `smollm3` every fourth layer without rotary positions; `granite` Granite 3's
    /// embedding, residual, attention and logits multipliers; `olmo2` OLMo 2's layers
    /// (normalised outputs, query/key norms over the whole projection).
    #[arg(long, default_value = "llama")]
    model_type: String,
    /// The window of a `gemma3_text` or `gemma2` model's sliding layers.
    #[arg(long, default_value_t = 512)]
    sliding_window: u64,
    /// Weight dtype.
    #[arg(long, value_enum, default_value_t = WeightDtype::F32)]
    dtype: WeightDtype,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Attention in the graph (as for `export`).
    #[arg(long, value_enum, default_value_t = rill_trainer::onnx::Graphs::Hf)]
    attention: rill_trainer::onnx::Graphs,
}

#[derive(Args)]
struct LogitsArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// Token ids, comma separated; repeat for several sequences.
    #[arg(long, required = true)]
    ids: Vec<String>,
}

#[derive(Args)]
struct SampleArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (repeat for several).
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// Tokens to generate.
    #[arg(long, default_value_t = 48)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample among the top K tokens.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    tune_allocator();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Export(args) => run_export(args),
        Command::Init(args) => run_init(args),
        Command::Logits(args) => run_logits(args),
        Command::Sample(args) => run_sample(args),
        Command::Quantize(args) => run_quantize(args),
        Command::HeldOut(args) => run_held_out(args),
    }
}

/// glibc hands large buffers back to the OS after every op; keeping them (DESIGN.md,
/// "Trainer") took candle training from ~1,400 to ~2,300 tokens/s.
fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tunables; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn run_train(a: TrainArgs) -> anyhow::Result<()> {
    folder::create_dir(&a.out, a.force)?;
    let corpus = Corpus::load(&a.corpus, a.held_out_every)?;
    eprintln!(
        "corpus: {} training and {} held-out documents",
        corpus.train.len(),
        corpus.held_out.len()
    );
    let tok = tokenizer::train(corpus.train.iter().map(String::as_str), a.vocab_size)?;
    let encode_all = |docs: &[String]| -> anyhow::Result<Vec<u32>> {
        let encoded = docs
            .iter()
            .map(|d| tokenizer::encode(&tok, d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(token_stream(encoded))
    };
    let mut train_tokens = WindowSampler::new(encode_all(&corpus.train)?, a.seed);
    let held_tokens = WindowSampler::new(encode_all(&corpus.held_out)?, a.seed);
    eprintln!(
        "tokens: {} training, {} held-out (vocab {})",
        train_tokens.len(),
        held_tokens.len(),
        tok.get_vocab_size(true)
    );

    let mut cfg = LlamaConfig::preset(a.preset, tok.get_vocab_size(true));
    cfg.max_position_embeddings = cfg.max_position_embeddings.max(a.seq_len);
    let trainee = Trainee {
        vars: model::init_vars(&cfg, a.seed, &candle_core::Device::Cpu)?,
        cfg: cfg.clone(),
    };
    let opts = TrainOptions {
        seq_len: a.seq_len,
        batch_tokens: a.batch_tokens,
        grad_accum: a.grad_accum,
        steps: a.steps,
        time_limit: a.time_limit_min.map(|m| Duration::from_secs_f64(m * 60.0)),
        lr: LrSchedule {
            peak: a.lr,
            min: a.min_lr,
            warmup: a.warmup,
            total: a.steps,
        },
        weight_decay: a.weight_decay,
        clip_grad: (a.clip_grad > 0.0).then_some(a.clip_grad),
        label_smoothing: a.label_smoothing,
        scheduled_sampling: a.scheduled_sampling.map(|decay| ScheduledSampling {
            decay,
            steps: a.ss_steps.unwrap_or(a.steps),
            floor: a.ss_floor,
        }),
        curriculum: a.curriculum_start.map(|start| LengthCurriculum {
            start: start.min(a.seq_len),
            full: a.seq_len,
            steps: a.curriculum_steps.unwrap_or(a.steps / 2),
        }),
        eval_every: a.eval_every.max(1),
        eval_windows: a.eval_windows,
        seed: a.seed,
        progress: !a.quiet,
    };
    eprintln!(
        "model: {} parameters ({:?} preset)",
        cfg.parameter_count(),
        a.preset
    );
    let outputs = TrainOutputs {
        log: a.out.join("training_log.jsonl"),
        plot: a.out.join("loss_curve.png"),
    };
    let summary = train::train(&trainee, &mut train_tokens, &held_tokens, &opts, &outputs)?;
    tokenizer::save(&tok, &a.out, cfg.max_position_embeddings)?;
    folder::write_weights(&a.out, &cfg, &trainee.tensors(), a.dtype)?;
    folder::write_generation_config(&a.out, &cfg)?;
    let summary_path = a.out.join("training_summary.json");
    std::fs::write(
        &summary_path,
        serde_json::to_string_pretty(&summary)? + "\n",
    )
    .with_context(|| format!("writing {}", summary_path.display()))?;
    eprintln!(
        "{}",
        train::describe(&summary, cfg.parameter_count(), &a.out)
    );
    Ok(())
}

fn run_export(a: ExportArgs) -> anyhow::Result<()> {
    let dir = match &a.out {
        None => a.from.clone(),
        Some(out) => {
            let cfg = LlamaConfig::load(&a.from.join("config.json"))?;
            // Refused before the output folder is made, so a refusal leaves nothing.
            rill_trainer::onnx::check_attention(&cfg, a.attention)?;
            let weights = FolderWeights::open(&a.from, &cfg)?;
            if let Some(q) = weights.quantization() {
                anyhow::bail!(
                    "`{}` is already quantized ({}); export the float folder it came from",
                    a.from.display(),
                    q.describe()
                );
            }
            let created = !out.exists();
            folder::create_dir(out, a.force)?;
            let written = folder::write_converted(out, &cfg, &weights, a.dtype)
                .and_then(|()| folder::copy_side_files(&a.from, out));
            if let Err(e) = written {
                if created {
                    let _ = std::fs::remove_dir_all(out);
                }
                return Err(e.into());
            }
            out.clone()
        }
    };
    let bytes = rill_trainer::onnx::export_folder_with(&dir, a.attention)?;
    eprintln!(
        "wrote {} ({bytes} bytes; weights stay in safetensors)",
        dir.join("model.onnx").display()
    );
    if a.attention == rill_trainer::onnx::Graphs::Both {
        eprintln!(
            "wrote {} (fused attention, the same weights)",
            dir.join(rill_trainer::onnx::FUSED_GRAPH_FILE).display()
        );
    }
    Ok(())
}

fn run_init(a: InitArgs) -> anyhow::Result<()> {
    folder::create_dir(&a.out, a.force)?;
    let vocab = match &a.tokenizer_from {
        Some(dir) => {
            let tok = tokenizer::load(&dir.join("tokenizer.json"))?;
            for f in ["tokenizer.json", "tokenizer_config.json"] {
                copy_if_present(&dir.join(f), &a.out.join(f))?;
            }
            tok.get_vocab_size(true)
        }
        None => a.vocab_size,
    };
    let mut cfg = LlamaConfig::preset(a.preset, vocab);
    cfg.tie_word_embeddings = !a.untied;
    cfg.attention_bias = a.attention_bias;
    cfg.mlp_bias = a.mlp_bias;
    let architecture = match a.model_type.as_str() {
        "qwen2" => "Qwen2ForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        "mistral" => "MistralForCausalLM",
        "gemma3_text" => "Gemma3ForCausalLM",
        "gemma2" => "Gemma2ForCausalLM",
        "smollm3" => "SmolLM3ForCausalLM",
        "phi3" => "Phi3ForCausalLM",
        "granite" => "GraniteForCausalLM",
        "olmo2" => "Olmo2ForCausalLM",
        _ => "LlamaForCausalLM",
    };
    cfg.architectures = vec![architecture.into()];
    if a.model_type == "gemma3_text" {
        let layers = cfg.num_hidden_layers;
        cfg.hidden_activation = Some("gelu_pytorch_tanh".into());
        cfg.query_pre_attn_scalar = Some(cfg.head_dim() as f64);
        cfg.sliding_window = Some(a.sliding_window);
        cfg.rope_local_base_freq = Some(10_000.0);
        cfg.rope_theta = 1_000_000.0;
        cfg.layer_types = Some(
            (0..layers)
                .map(|i| match !(i + 1).is_multiple_of(6) && i + 1 != layers {
                    true => "sliding_attention".to_string(),
                    false => "full_attention".to_string(),
                })
                .collect(),
        );
    }
    if a.model_type == "granite" {
        // Granite 3's multipliers (its 2B model's).
        cfg.embedding_multiplier = Some(12.0);
        cfg.residual_multiplier = Some(0.22);
        cfg.attention_multiplier = Some(0.015625);
        cfg.logits_scaling = Some(8.0);
    }
    if a.model_type == "gemma2" {
        // Gemma 2's defaults; layer_types left out, as older checkpoints have them.
        cfg.hidden_activation = Some("gelu_pytorch_tanh".into());
        cfg.query_pre_attn_scalar = Some(cfg.head_dim() as f64);
        cfg.sliding_window = Some(a.sliding_window);
        cfg.attn_logit_softcapping = Some(50.0);
        cfg.final_logit_softcapping = Some(30.0);
    }
    cfg.model_type = a.model_type;
    let vars = model::init_vars(&cfg, a.seed, &candle_core::Device::Cpu)?;
    let tensors: Vec<_> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    folder::write_weights(&a.out, &cfg, &tensors, a.dtype)?;
    folder::write_generation_config(&a.out, &cfg)?;
    rill_trainer::onnx::export_folder_with(&a.out, a.attention)?;
    eprintln!(
        "wrote {} ({} parameters, random weights)",
        a.out.display(),
        cfg.parameter_count()
    );
    Ok(())
}

fn run_quantize(a: QuantizeArgs) -> anyhow::Result<()> {
    let scheme = rill_trainer::quantize::Scheme {
        bits: a.bits,
        block_size: a.block_size,
        symmetric: a.symmetric,
    };
    let q = rill_trainer::quantize::QuantizationConfig::new(
        scheme,
        a.accuracy_level,
        !a.keep_embeddings,
    );
    let cfg = LlamaConfig::load(&a.input.join("config.json"))?;
    rill_trainer::onnx::check_attention(&cfg, a.attention)?;
    let bytes = folder::write_quantized(&a.input, &a.output, &q, a.force)?;
    rill_trainer::onnx::export_folder_with(&a.output, a.attention)?;
    let before = folder_bytes(&a.input, "model.safetensors");
    eprintln!(
        "wrote {} ({}; weights {:.1} MB, {:.2}× the source's)",
        a.output.display(),
        q.describe(),
        bytes as f64 / 1e6,
        bytes as f64 / before.max(1) as f64
    );
    Ok(())
}

/// Bytes of the folder's weights: `file`, or every shard beside it.
fn folder_bytes(dir: &Path, file: &str) -> u64 {
    let single = dir.join(file);
    if let Ok(m) = std::fs::metadata(&single) {
        return m.len();
    }
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn run_held_out(a: HeldOutArgs) -> anyhow::Result<()> {
    let corpus = Corpus::load(&a.corpus, a.held_out_every)?;
    // Documents spread evenly over the whole split (the corpus is ordered by source).
    let total: usize = corpus.held_out.iter().map(|d| d.len() + 1).sum();
    let stride = total.div_ceil(a.max_bytes.max(1)).max(1);
    let mut written = 0;
    for doc in corpus.held_out.iter().step_by(stride) {
        if written + doc.len() + 1 > a.max_bytes {
            break;
        }
        println!("{doc}");
        written += doc.len() + 1;
    }
    Ok(())
}

fn copy_if_present(from: &Path, to: &Path) -> anyhow::Result<()> {
    if from.exists() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

fn parse_ids(text: &str) -> anyhow::Result<Vec<u32>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("`{s}` is not a token id"))
        })
        .collect()
}

fn run_logits(a: LogitsArgs) -> anyhow::Result<()> {
    let (cfg, _, model) = folder::open_model(&a.model)?;
    let mut out = Vec::new();
    for text in &a.ids {
        let ids = parse_ids(text)?;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= cfg.vocab_size) {
            anyhow::bail!(
                "token id {bad} is outside the vocabulary (size {})",
                cfg.vocab_size
            );
        }
        let input =
            candle_core::Tensor::new(ids.as_slice(), &candle_core::Device::Cpu)?.unsqueeze(0)?;
        out.push(model.forward(&input)?.squeeze(0)?.to_vec2::<f32>()?);
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn run_sample(a: SampleArgs) -> anyhow::Result<()> {
    let (cfg, _, model) = folder::open_model(&a.model)?;
    let tok = tokenizer::load(&a.model.join("tokenizer.json"))?;
    let eos = cfg
        .eos_token_id
        .as_ref()
        .map(|e| e.to_vec())
        .unwrap_or_default();
    for (i, prompt) in a.prompt.iter().enumerate() {
        let mut ids = vec![cfg.bos_token_id.unwrap_or(tokenizer::BOS_ID)];
        ids.extend(tokenizer::encode(&tok, prompt)?);
        let new = sample::generate(
            &model,
            &ids,
            a.max_new_tokens,
            a.temperature,
            a.top_k,
            &eos,
            a.seed + i as u64,
        )?;
        println!("{prompt}{}", tokenizer::decode(&tok, &new)?);
    }
    Ok(())
}
