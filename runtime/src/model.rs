//! `Model`: a model folder opened once and shared, read-only, by any number of sessions on
//! any threads. It owns the ONNX Runtime session, the memory-mapped weights, the config,
//! the tokenizer and the folder's generation defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenizers::Tokenizer;

use crate::cache_memory::{CacheMemory, CudaMemory};
use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{Result, RillError};
use crate::graph::GraphInfo;
use crate::weights::MappedWeights;

/// Where ONNX Runtime gets the weights from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightSource {
    /// rill maps `model.safetensors` and hands every tensor to ONNX Runtime as an
    /// initializer over the mapped bytes (no copy by rill). The default.
    #[default]
    Mapped,
    /// ONNX Runtime loads the graph's external data (or embedded weights) itself.
    OrtExternalData,
}

/// Which of the folder's graphs ONNX Runtime runs. Both compute the same model from the
/// same weights; they differ in how attention reads and writes the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphChoice {
    /// The fused-attention graph ([`crate::graph::FUSED_GRAPH_FILE`], `model.gqa.onnx`)
    /// when the folder has one, else `model.onnx`. The fused graph gives way to
    /// `model.onnx` when its rotary tables hold fewer positions than config.json allows
    /// (config.json edited after the export) and, on CUDA, when it is f32 (the provider
    /// would run it half on the host). The default.
    #[default]
    Auto,
    /// `model.onnx`, the folder's Hugging Face / optimum graph, even when a fused one is
    /// beside it.
    Plain,
    /// `model.gqa.onnx`; [`RillError::NoFusedGraph`] when the folder has none.
    Fused,
}

/// Options for [`Model::open`].
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per core).
    pub intra_threads: usize,
    /// Where the weights come from.
    pub weights: WeightSource,
    /// Let ONNX Runtime pre-pack weight matrices into its own layout (faster matrix
    /// products; its copy replaces the mapped pages in resident memory, which rill
    /// releases after opening). Off keeps the mapped weights the only copy, but for the
    /// q, k and v matrices of a fused-attention export (`rill-train export --attention
    /// gqa`), which ONNX Runtime joins into one matrix of its own when it loads the graph.
    pub prepack: bool,
    /// Where the graph runs: the CPU (default), CUDA, or CUDA when usable else the CPU.
    pub provider: crate::Provider,
    /// Which of the folder's graphs runs ([`Model::graph_file`] tells which did).
    pub graph: GraphChoice,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            intra_threads: 0,
            weights: WeightSource::Mapped,
            prepack: true,
            provider: crate::Provider::Cpu,
            graph: GraphChoice::Auto,
        }
    }
}

/// An opened model folder. `Send + Sync`.
pub struct Model {
    // Field order matters: the ONNX Runtime session must drop before the weights map it
    // points into; `cache_memory` holds an allocator of the session, so it comes first.
    cache_memory: CacheMemory,
    session: ort::session::Session,
    weights: Option<MappedWeights>,
    config: ModelConfig,
    graph: GraphInfo,
    tokenizer: Tokenizer,
    /// The tokenizer's vocabulary size, added tokens included.
    tokenizer_vocab: usize,
    generation: GenerationConfig,
    chat: Option<crate::chat::ChatTemplate>,
    dir: PathBuf,
    graph_file: PathBuf,
    open_time: Duration,
    provider: crate::Provider,
    provider_note: Option<String>,
    logits_pool: crate::logits_pool::LogitsPool,
    /// Each token's bytes, made on first use.
    token_bytes: std::sync::OnceLock<Arc<crate::vocabulary::TokenBytes>>,
}

/// Parses `path` and counts its vocabulary, added tokens included (once: the tokenizers
/// crate counts by copying the vocabulary).
fn load_tokenizer(path: &Path) -> Result<(Tokenizer, usize)> {
    let tokenizer = Tokenizer::from_file(path)
        .map_err(|e| RillError::Tokenizer(format!("cannot load {}: {e}", path.display())))?;
    let vocab = tokenizer.get_vocab_size(true);
    Ok((tokenizer, vocab))
}

fn require(path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(RillError::MissingFile(path))
    }
}

impl Model {
    /// Opens the model folder `dir`: reads and checks `config.json`, `tokenizer.json`,
    /// the optional `generation_config.json`, maps and checks `model.safetensors` (when
    /// present and `options.weights` is [`WeightSource::Mapped`]), creates the ONNX
    /// Runtime session and checks the graph's inputs and outputs against the config.
    pub fn open(dir: impl AsRef<Path>, options: &ModelOptions) -> Result<Model> {
        let start = Instant::now();
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(RillError::MissingFile(dir));
        }
        let config = ModelConfig::load(&require(dir.join("config.json"))?)?;
        let tok_path = require(dir.join("tokenizer.json"))?;
        // The tokenizer parses on a thread of its own while ONNX Runtime builds the session
        // (inline if no thread can be started). A broken tokenizer.json is still the error
        // reported first.
        std::thread::scope(|scope| {
            let mut parsing = Some(
                std::thread::Builder::new()
                    .name("rill-tokenizer".into())
                    .spawn_scoped(scope, || load_tokenizer(&tok_path))
                    .ok(),
            );
            let mut tokenizer = || {
                parsing.take().map(|thread| match thread {
                    Some(thread) => thread.join().unwrap_or_else(|_| {
                        Err(RillError::Tokenizer(format!(
                            "parsing {} panicked",
                            tok_path.display()
                        )))
                    }),
                    None => load_tokenizer(&tok_path),
                })
            };
            match Self::open_parts(start, dir, config, options, &mut tokenizer) {
                Ok(model) => Ok(model),
                Err(e) => match tokenizer() {
                    Some(Err(broken)) => Err(broken),
                    _ => Err(e),
                },
            }
        })
    }

    /// [`Model::open`] after config.json: everything but the tokenizer, which
    /// `tokenizer` hands over (once) when the rest is ready.
    fn open_parts(
        start: Instant,
        dir: PathBuf,
        config: ModelConfig,
        options: &ModelOptions,
        tokenizer: &mut dyn FnMut() -> Option<Result<(Tokenizer, usize)>>,
    ) -> Result<Model> {
        let generation = GenerationConfig::load_optional(&dir.join("generation_config.json"))?
            .unwrap_or_default();
        let chat = crate::chat::ChatTemplate::load(&dir)?;
        let plain = dir.join(crate::graph::PLAIN_GRAPH_FILE);
        let fused = dir.join(crate::graph::FUSED_GRAPH_FILE);
        let graph_path = match options.graph {
            GraphChoice::Plain => require(plain.clone())?,
            GraphChoice::Fused if fused.exists() => fused,
            GraphChoice::Fused => return Err(RillError::NoFusedGraph(fused)),
            GraphChoice::Auto if fused.exists() => fused,
            GraphChoice::Auto => require(plain.clone())?,
        };
        let st_path = dir.join("model.safetensors");
        let weights = match options.weights {
            WeightSource::Mapped if st_path.exists() => {
                Some(MappedWeights::open(&st_path, &config)?)
            }
            _ => None,
        };

        let open_with = |graph_path: &Path, cuda: Option<i32>| -> Result<Opened> {
            let session = session_for(graph_path, weights.as_ref(), options, cuda)?;
            let graph = crate::graph::inspect(&session, &config, graph_path)?;
            Ok(Opened {
                session,
                graph,
                path: graph_path.to_path_buf(),
            })
        };
        let (opened, provider, provider_note) = match options.provider {
            crate::Provider::Cpu => (open_with(&graph_path, None)?, crate::Provider::Cpu, None),
            crate::Provider::Cuda { device } => (
                open_with(&graph_path, Some(device))?,
                options.provider,
                None,
            ),
            crate::Provider::CudaOrCpu { device } => match open_with(&graph_path, Some(device)) {
                Ok(s) => (s, crate::Provider::Cuda { device }, None),
                Err(e) => (
                    open_with(&graph_path, None)?,
                    crate::Provider::Cpu,
                    Some(format!("CUDA not used, running on the CPU: {e}")),
                ),
            },
        };
        // A graph the CUDA provider would run half on the CPU: the folder's plain graph
        // when the fused one was only preferred; else an error when CUDA was required, the
        // CPU when it was only preferred.
        let on_gpu = |opened: &Opened| match provider {
            crate::Provider::Cpu => None,
            _ => crate::provider::cuda_cannot_run(&opened.graph),
        };
        // The fused graph was only preferred: the plain one instead when the fused one has
        // fewer rotary positions than config.json allows, or CUDA would run it half on the
        // host.
        let opened = if options.graph == GraphChoice::Auto
            && opened.path != plain
            && plain.exists()
            && (rotary_limit(&opened.graph, &config).is_some() || on_gpu(&opened).is_some())
        {
            let cuda = match provider {
                crate::Provider::Cpu => None,
                crate::Provider::Cuda { device } | crate::Provider::CudaOrCpu { device } => {
                    Some(device)
                }
            };
            drop(opened);
            open_with(&plain, cuda)?
        } else {
            opened
        };
        let (opened, provider, provider_note) = match on_gpu(&opened) {
            None => (opened, provider, provider_note),
            Some(message) if !matches!(options.provider, crate::Provider::CudaOrCpu { .. }) => {
                return Err(RillError::Provider {
                    provider: provider.describe(),
                    message,
                });
            }
            Some(message) => {
                let path = opened.path.clone();
                drop(opened);
                let opened = open_with(&path, None)?;
                let note = format!("CUDA not used, running on the CPU: {message}");
                (opened, crate::Provider::Cpu, Some(note))
            }
        };
        let Opened {
            session,
            graph,
            path: graph_file,
        } = opened;
        let (cache_memory, provider_note) = match provider {
            crate::Provider::Cpu => (CacheMemory::Host, provider_note),
            crate::Provider::Cuda { device } | crate::Provider::CudaOrCpu { device } => {
                match CudaMemory::new(&session, device) {
                    Ok(m) => (CacheMemory::Cuda(std::sync::Arc::new(m)), provider_note),
                    Err(e) => (
                        CacheMemory::Host,
                        Some(format!("KV cache kept in host memory: {e}")),
                    ),
                }
            }
        };
        if options.prepack {
            // The matrices now live in ONNX Runtime's pre-packed copy; only a few tensors
            // (embedding rows, norms) are read from the map again, and fault back in.
            if let Some(w) = &weights {
                w.release_resident();
            }
        }
        let (tokenizer, tokenizer_vocab) = tokenizer().unwrap_or_else(|| {
            Err(RillError::Tokenizer(
                "the tokenizer was handed over twice".into(),
            ))
        })?;
        Ok(Model {
            cache_memory,
            session,
            weights,
            config,
            graph,
            tokenizer_vocab,
            tokenizer,
            generation,
            chat,
            dir,
            graph_file,
            open_time: start.elapsed(),
            provider,
            provider_note,
            logits_pool: Default::default(),
            token_bytes: Default::default(),
        })
    }

    /// Logits buffers the sessions of this model borrow while they evaluate a prompt chunk.
    /// The bytes each token of the graph's vocabulary adds to the text (made on first
    /// use), for samplers that constrain the text.
    pub fn token_bytes(&self) -> &Arc<crate::vocabulary::TokenBytes> {
        self.token_bytes.get_or_init(|| {
            Arc::new(crate::vocabulary::TokenBytes::of(
                &self.tokenizer,
                self.graph.vocab,
            ))
        })
    }

    pub(crate) fn logits_pool(&self) -> &crate::logits_pool::LogitsPool {
        &self.logits_pool
    }

    /// Where sessions of this model allocate their KV caches.
    pub(crate) fn cache_memory(&self) -> CacheMemory {
        self.cache_memory.clone()
    }

    /// Whether sessions keep their KV caches on the GPU the graph runs on (else in host
    /// memory; [`Model::provider_note`] says why when CUDA runs the graph).
    pub fn cache_on_device(&self) -> bool {
        self.cache_memory.on_device()
    }

    /// The execution provider the graph runs on (after any fallback).
    pub fn provider(&self) -> crate::Provider {
        self.provider
    }

    /// Why CUDA was not used when it was preferred ([`crate::Provider::CudaOrCpu`]).
    pub fn provider_note(&self) -> Option<&str> {
        self.provider_note.as_deref()
    }

    /// The folder's config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The graph's interface.
    pub fn graph(&self) -> &GraphInfo {
        &self.graph
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The folder's generation defaults (`generation_config.json`, or empty).
    pub fn generation_defaults(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The graph file ONNX Runtime runs: `model.onnx` or the fused `model.gqa.onnx`
    /// ([`GraphChoice`]).
    pub fn graph_file(&self) -> &Path {
        &self.graph_file
    }

    /// How long `open` took.
    pub fn open_time(&self) -> Duration {
        self.open_time
    }

    /// Size of the mapped weights file, when rill maps the weights.
    pub fn mapped_weight_bytes(&self) -> Option<usize> {
        self.weights.as_ref().map(MappedWeights::file_size)
    }

    /// The graph's inputs and outputs, described ("name: dtype [dims]").
    pub fn graph_io(&self) -> (Vec<String>, Vec<String>) {
        let d =
            |list: &[ort::value::Outlet]| list.iter().map(crate::graph::describe_outlet).collect();
        (d(self.session.inputs()), d(self.session.outputs()))
    }

    /// The mapped weights: (dtype, tensor count, bytes) per dtype; empty when ONNX Runtime
    /// loads the weights itself.
    pub fn weight_summary(&self) -> Vec<(String, usize, usize)> {
        let mut by: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for t in self.weights.iter().flat_map(|w| w.tensors.values()) {
            let e = by.entry(format!("{:?}", t.dtype)).or_default();
            e.0 += 1;
            e.1 += t.range.len();
        }
        by.into_iter().map(|(k, (n, b))| (k, n, b)).collect()
    }

    /// The ONNX Runtime session (crate-internal: sessions run it).
    pub(crate) fn ort_session(&self) -> &ort::session::Session {
        &self.session
    }

    /// Token ids of `text`, with the tokenizer's special tokens (BOS for Llama).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.encode(text, true)
    }

    /// Token ids of `text`; `add_special` adds the tokenizer's special tokens (BOS for
    /// Llama). Rendered chat templates and appended turns carry their own, so they are
    /// encoded without.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, add_special)
            .map_err(|e| RillError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Renders `messages` with the folder's chat template (`tokenizer_config.json`
    /// `chat_template`); with `add_generation_prompt` the text ends where the assistant's
    /// reply begins. An error when the folder has no template.
    pub fn apply_chat_template(
        &self,
        messages: &[crate::chat::ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.apply_chat_request(&messages.into(), add_generation_prompt)
    }

    /// As [`Model::apply_chat_template`], for a request with tools, documents or other
    /// template variables.
    pub fn apply_chat_request(
        &self,
        request: &crate::chat::ChatRequest,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self.chat.as_ref().ok_or_else(|| {
            RillError::ChatTemplate(format!(
                "{} has no chat template (neither chat_template.jinja nor a `chat_template` in tokenizer_config.json)",
                self.dir.display()
            ))
        })?;
        template.render_request(request, add_generation_prompt)
    }

    /// Whether the folder has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat.is_some()
    }

    /// Text of `ids`, special tokens dropped. Ids outside the vocabulary are an error.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String> {
        // Once: the tokenizers crate counts its vocabulary by copying it.
        let vocab = self.tokenizer_vocab;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(RillError::TokenOutOfRange { id, vocab });
        }
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| RillError::Tokenizer(e.to_string()))
    }

    /// End-of-sequence ids: the generation config's, else config.json's.
    pub fn eos_ids(&self, generation: &GenerationConfig) -> Vec<u32> {
        generation
            .eos_token_id
            .as_ref()
            .or(self.config.eos_token_id.as_ref())
            .map(|e| e.to_vec())
            .unwrap_or_default()
    }

    /// The longest context a session may ask for: config.json's
    /// `max_position_embeddings` (2,048 when absent), or fewer when the graph's rotary
    /// tables have fewer rows.
    pub fn max_context(&self) -> usize {
        self.rotary_limit()
            .unwrap_or_else(|| allowed_positions(&self.config))
    }

    /// The rows of the graph's rotary tables when they are fewer than config.json's
    /// positions (a fused graph exported before config.json was given more).
    pub fn rotary_limit(&self) -> Option<usize> {
        rotary_limit(&self.graph, &self.config)
    }
}

/// The positions config.json allows (2,048 when it does not say).
fn allowed_positions(config: &ModelConfig) -> usize {
    config.max_position_embeddings.unwrap_or(2048)
}

/// See [`Model::rotary_limit`].
fn rotary_limit(graph: &GraphInfo, config: &ModelConfig) -> Option<usize> {
    graph
        .max_positions
        .filter(|&rows| rows < allowed_positions(config))
}

/// A session over one of the folder's graphs, with that graph's interface.
struct Opened {
    session: ort::session::Session,
    graph: GraphInfo,
    path: PathBuf,
}

/// An ONNX Runtime session over `graph` with rill's options, the weights from the map
/// (when given) and CUDA on GPU `cuda` (when given).
fn session_for(
    graph: &Path,
    weights: Option<&MappedWeights>,
    options: &ModelOptions,
    cuda: Option<i32>,
) -> Result<ort::session::Session> {
    let env = crate::ort_env::environment()?;
    let ort_err =
        |e: ort::Error<ort::session::builder::SessionBuilder>| RillError::Ort(e.to_string());
    let mut builder = ort::session::Session::builder(env)?;
    if let Some(device) = cuda {
        builder = crate::provider::register_cuda(builder, device).map_err(|message| {
            RillError::Provider {
                provider: format!("cuda:{device}"),
                message,
            }
        })?;
    }
    if !options.prepack {
        builder = builder.with_prepacking(false).map_err(ort_err)?;
    }
    if options.intra_threads > 0 {
        builder = builder
            .with_intra_threads(options.intra_threads)
            .map_err(ort_err)?;
    }
    if let Some(w) = weights {
        for (name, value) in w.ort_values()? {
            builder = builder.with_initializer(name, value).map_err(ort_err)?;
        }
    }
    builder.commit_from_file(graph).map_err(|e| match cuda {
        Some(device) => RillError::Provider {
            provider: format!("cuda:{device}"),
            message: format!("ONNX Runtime could not create the session on the GPU: {e}"),
        },
        None => e.into(),
    })
}
