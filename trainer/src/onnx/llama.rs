//! The Llama decoder as an ONNX graph in the Hugging Face / optimum decoder-with-past
//! convention (DESIGN.md, "The model folder").
//!
//! Inputs: `input_ids` int64 [batch, seq], `attention_mask` int64 [batch, past + seq],
//! `position_ids` int64 [batch, seq], `past_key_values.{i}.key|value`
//! [batch, kv_heads, past, head_dim], and the optional [`LOGITS_TO_KEEP`] (default 0: every
//! position). Outputs: `logits` f32 [batch, seq (or logits_to_keep), vocab],
//! `present.{i}.key|value` [batch, kv_heads, past + seq, head_dim].
//!
//! Every weight is consumed in its stored layout: the residual stream is kept 2-D
//! [batch * seq, hidden] so each projection is one `Gemm` with `transB = 1` over the
//! stored [out, in] matrix, the tied LM head included. Nothing transposes or casts a
//! weight, so weights supplied as non-constant-folded initializers cost nothing per step.
//! In f16 graphs RMSNorm and softmax run in f32, as transformers computes them.
//!
//! In a quantized folder (`quantization_config` in config.json) each quantized matrix is
//! multiplied by `com.microsoft.MatMulNBits` over its stored blocks, and a quantized
//! embedding is gathered as packed rows and dequantized in the graph (only the rows asked
//! for), so the tied LM head and the lookup read one copy of the weights.

use super::builder::{attr_float, attr_int, attr_ints, elem_type, Dim, GraphBuilder};
use super::proto::{data_type, ModelProto};
use crate::config::LlamaConfig;
use crate::model::Rope;
use crate::quantize::{is_quantized_weight, stored_tensors, QuantizationConfig};
use crate::weights::{FolderWeights, WeightDtype};

/// The default-domain opset the graph uses.
pub const OPSET: i64 = 17;

/// Model metadata key (value `"true"`) marking a graph whose `past_key_values.*` and
/// `present.*` are one shared buffer of the context's full length: runtimes bind both to
/// the same memory and pass the valid length through `attention_mask`.
pub const SHARED_KV_KEY: &str = "past_present_share_buffer";

/// Model metadata key (value `"true"`) marking a graph with the optional input
/// [`LOGITS_TO_KEEP`].
pub const LOGITS_TO_KEEP_KEY: &str = "rill_logits_to_keep";

/// Model metadata key of fused-attention graphs: the rows of their rotary tables (the
/// config's `max_position_embeddings` at export), the most positions they can run.
pub const ROTARY_POSITIONS_KEY: &str = "rill_rotary_positions";

/// An optional int64 scalar input (transformers' `logits_to_keep`): when positive, the
/// logits of only the last that many positions of each row are computed (`logits` is then
/// `[batch, min(n, seq), vocab]`); 0, its default, keeps every position. A prompt chunk
/// needs only its last position's logits, and the LM head over a large vocabulary is much
/// of a chunk's work: runtimes that know the input feed 1 there, others see the usual
/// graph.
pub const LOGITS_TO_KEEP: &str = "logits_to_keep";

/// How the exported graph computes attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Attention {
    /// Plain ONNX ops in the Hugging Face / optimum convention: `present = Concat(past,
    /// new)` (the whole cache copied every step); runs on any ONNX runtime.
    #[default]
    Hf,
    /// ONNX Runtime's fused `com.microsoft.GroupQueryAttention`, its rotary inside, past and
    /// present one shared `[batch, kv_heads, max_length, head_dim]` buffer: no cache copy
    /// per step. Needs ONNX Runtime (contrib ops).
    Gqa,
}

struct Ctx<'a> {
    g: GraphBuilder,
    cfg: &'a LlamaConfig,
    dtype: WeightDtype,
    attention: Attention,
    /// Float shapes of the weights by name (what a quantized matrix stands for).
    shapes: std::collections::HashMap<String, Vec<usize>>,
    quant: Option<QuantizationConfig>,
}

/// Builds the graph of `cfg` over the weights at `weights`' locations.
pub fn build(cfg: &LlamaConfig, weights: &FolderWeights, attention: Attention) -> ModelProto {
    let dtype = weights.dtype();
    let mut c = Ctx {
        g: GraphBuilder::default(),
        cfg,
        dtype,
        attention,
        shapes: crate::model::weight_shapes(cfg).into_iter().collect(),
        quant: weights.quantization().cloned(),
    };
    let stored = stored_tensors(cfg);
    for (name, loc) in &weights.locations {
        if stored.iter().any(|(n, _, _)| n == name) {
            c.g.external_initializer(name, loc);
        }
    }
    declare_io(&mut c);
    let g = &mut c.g;
    let (h, v) = (cfg.hidden_size as i64, cfg.vocab_size as i64);

    // Shapes shared by every layer.
    let ids_shape = g.op("Shape", &["input_ids"], vec![]);
    let att = match attention {
        Attention::Hf => {
            let past_len = g.op(
                "Shape",
                &["past_key_values.0.key"],
                vec![attr_int("start", 2), attr_int("end", 3)],
            );
            let total_len = g.op(
                "Shape",
                &["attention_mask"],
                vec![attr_int("start", 1), attr_int("end", 2)],
            );
            hf_attention_inputs(&mut c, &past_len, &total_len)
        }
        Attention::Gqa => gqa_attention_inputs(&mut c),
    };

    // Embedding lookup, then the residual stream as [batch * seq, hidden].
    let mut x = c.embed("model.embed_tokens", h);
    if let Some(scale) = cfg.embed_scale() {
        // Gemma scales the embedding rows (the scale in the weights' dtype, as
        // transformers multiplies them).
        let scale = c.g.const_float(&[scale], &[], dtype);
        x = c.g.op("Mul", &[&x, &scale], vec![]);
    }
    for i in 0..cfg.num_hidden_layers {
        x = c.layer(i, &x, &ids_shape, &att);
    }
    // The last `logits_to_keep` positions of each row (all when it is 0: Slice from -0).
    let g = &mut c.g;
    let h_dim = g.const_i64(&[h]);
    let rows_shape = g.op("Concat", &[&ids_shape, &h_dim], vec![attr_int("axis", 0)]);
    let rows = g.op("Reshape", &[&x, &rows_shape], vec![]);
    let axis0 = g.const_i64(&[0]);
    let keep = g.op("Unsqueeze", &[LOGITS_TO_KEEP, &axis0], vec![]);
    let start = g.op("Neg", &[&keep], vec![]);
    let (end, axis1) = (g.const_i64(&[i64::MAX]), g.const_i64(&[1]));
    let kept = g.op("Slice", &[&rows, &start, &end, &axis1], vec![]);
    let kept_shape = g.op(
        "Shape",
        &[&kept],
        vec![attr_int("start", 0), attr_int("end", 2)],
    );
    let flat = g.const_i64(&[-1, h]);
    let x = g.op("Reshape", &[&kept, &flat], vec![]);
    let x = c.rms_norm(&x, "model.norm.weight");
    let head = if cfg.tie_word_embeddings {
        "model.embed_tokens"
    } else {
        "lm_head"
    };
    let logits = c.linear(&x, head);
    let g = &mut c.g;
    let v_dim = g.const_i64(&[v]);
    let out_shape = g.op("Concat", &[&kept_shape, &v_dim], vec![attr_int("axis", 0)]);
    let to_f32 = vec![attr_int("to", data_type::FLOAT as i64)];
    match (dtype, cfg.final_softcap(), cfg.logits_divisor()) {
        (WeightDtype::F32, None, None) => {
            g.op_into("Reshape", &[&logits, &out_shape], vec![], &["logits"])
        }
        (_, None, None) => {
            let r = g.op("Reshape", &[&logits, &out_shape], vec![]);
            g.op_into("Cast", &[&r], to_f32, &["logits"]);
        }
        (_, cap, divisor) => {
            // In f32: Granite's logits_scaling divides them, Gemma's soft-capping
            // bounds them (cap * tanh(logits / cap)).
            let mut r = g.op("Reshape", &[&logits, &out_shape], vec![]);
            if dtype != WeightDtype::F32 {
                r = g.op("Cast", &[&r], to_f32);
            }
            if let Some(d) = divisor {
                let d = g.const_float(&[d as f32], &[], WeightDtype::F32);
                match cap {
                    Some(_) => r = g.op("Div", &[&r, &d], vec![]),
                    None => g.op_into("Div", &[&r, &d], vec![], &["logits"]),
                }
            }
            if let Some(cap) = cap {
                soft_cap(g, &r, cap, "logits");
            }
        }
    }
    let doc = match attention {
        Attention::Hf => "Llama decoder with past key/values (Hugging Face / optimum convention), exported by rill-train",
        Attention::Gqa => "Llama decoder with past key/values in one shared buffer per tensor (com.microsoft.GroupQueryAttention), exported by rill-train",
    };
    if attention == Attention::Gqa {
        c.g.metadata(SHARED_KV_KEY, "true");
        c.g.metadata(
            ROTARY_POSITIONS_KEY,
            &cfg.max_position_embeddings.to_string(),
        );
    }
    c.g.metadata(LOGITS_TO_KEEP_KEY, "true");
    c.g.finish("rill_llama", OPSET, doc)
}

/// The query, key and value projections `GroupQueryAttention` reads.
enum Qkv {
    /// Three tensors `[batch * seq, width]`.
    Separate([String; 3]),
    /// One tensor `[batch * seq, (heads + 2 * kv_heads) * head_dim]`: q, k, v side by side.
    Packed(String),
}

/// What each layer's attention reads besides its own weights.
enum AttentionInputs {
    /// cos/sin tables `[batch, 1, seq, head_dim]` and the boolean mask, for full layers
    /// and (Gemma 3) for sliding layers.
    Hf {
        full: Option<HfRotaryMask>,
        sliding: Option<HfRotaryMask>,
    },
    /// `seqlens_k` (int32 `[batch]`), `total_sequence_length` (int32 scalar) and the
    /// cos/sin caches `[max_positions, head_dim / 2]`, for full layers and (Gemma 3) for
    /// sliding layers.
    Gqa {
        seqlens: String,
        total: String,
        full: Option<[String; 2]>,
        sliding: Option<[String; 2]>,
    },
}

/// Rotary tables and the mask of one kind of layer in the plain graph.
struct HfRotaryMask {
    cos: String,
    sin: String,
    mask: String,
}

fn hf_attention_inputs(c: &mut Ctx, past_len: &str, total_len: &str) -> AttentionInputs {
    // Only the kinds of layer the model has (a Mistral's layers all slide).
    let (any_full, window) = c.cfg.layer_kinds();
    let full = any_full.then(|| {
        let rope = Rope::of_layers(c.cfg, false);
        hf_rotary_mask(c, &rope, past_len, total_len, None)
    });
    let sliding = window.map(|w| {
        let rope = Rope::of_layers(c.cfg, true);
        hf_rotary_mask(c, &rope, past_len, total_len, Some(w))
    });
    AttentionInputs::Hf { full, sliding }
}

/// Rotary tables `[batch, 1, seq, rotary_dim]` of `rope` from `position_ids` (in f32 as
/// HF computes them) and the attention mask, limited to the last `window` positions
/// when given.
fn hf_rotary_mask(
    c: &mut Ctx,
    rope: &Rope,
    past_len: &str,
    total_len: &str,
    window: Option<usize>,
) -> HfRotaryMask {
    let g = &mut c.g;
    let n = rope.inv_freq.len() as i64;
    let mut inv = g.const_float(&rope.inv_freq, &[n], WeightDtype::F32);
    if let Some((long, original)) = &rope.long {
        // LongRoPE, as transformers: the long factors where the highest position plus
        // one exceeds the pretraining context.
        let long = g.const_float(long, &[n], WeightDtype::F32);
        let highest = g.op(
            "ReduceMax",
            &["position_ids"],
            vec![attr_int("keepdims", 0)],
        );
        let last_short = g.const_i64(&[*original as i64 - 1]);
        let beyond = g.op("Greater", &[&highest, &last_short], vec![]);
        inv = g.op("Where", &[&beyond, &long, &inv], vec![]);
    }
    let pos = g.op(
        "Cast",
        &["position_ids"],
        vec![attr_int("to", data_type::FLOAT as i64)],
    );
    let axis2 = g.const_i64(&[2]);
    let pos = g.op("Unsqueeze", &[&pos, &axis2], vec![]);
    let freqs = g.op("Mul", &[&pos, &inv], vec![]);
    let emb = g.op("Concat", &[&freqs, &freqs], vec![attr_int("axis", -1)]);
    let axis1 = g.const_i64(&[1]);
    let (mut cos, mut sin) = (g.op("Cos", &[&emb], vec![]), g.op("Sin", &[&emb], vec![]));
    if rope.attention_factor != 1.0 {
        // YaRN and LongRoPE scale the tables.
        let a = g.const_float(&[rope.attention_factor], &[], WeightDtype::F32);
        cos = g.op("Mul", &[&cos, &a], vec![]);
        sin = g.op("Mul", &[&sin, &a], vec![]);
    }
    let cos = g.op("Unsqueeze", &[&cos, &axis1], vec![]);
    let sin = g.op("Unsqueeze", &[&sin, &axis1], vec![]);
    let (cos, sin) = (c.cast_to_model_dtype(&cos), c.cast_to_model_dtype(&sin));
    // Attention mask [batch, 1, 1, seq, total]: key j is visible to the query at cache
    // position past + i when j <= past + i and attention_mask[b, j] is 1.
    let mask = attention_mask(&mut c.g, past_len, total_len, window);
    HfRotaryMask { cos, sin, mask }
}

fn gqa_attention_inputs(c: &mut Ctx) -> AttentionInputs {
    // seqlens_k = sum(attention_mask, axis 1) - 1; total = attention_mask's length.
    let g = &mut c.g;
    let axis1 = g.const_i64(&[1]);
    let one = g.const_i64(&[1]);
    let int32 = data_type::INT32 as i64;
    let sum = g.op(
        "ReduceSum",
        &["attention_mask", &axis1],
        vec![attr_int("keepdims", 0)],
    );
    let last = g.op("Sub", &[&sum, &one], vec![]);
    let seqlens = g.op("Cast", &[&last], vec![attr_int("to", int32)]);
    let len = g.op(
        "Shape",
        &["attention_mask"],
        vec![attr_int("start", 1), attr_int("end", 2)],
    );
    let zero = g.const_i64(&[0]);
    let len = g.op("Squeeze", &[&len, &zero], vec![]);
    let total = g.op("Cast", &[&len], vec![attr_int("to", int32)]);
    let (any_full, window) = c.cfg.layer_kinds();
    let full = any_full.then(|| rotary_caches(c, &Rope::of_layers(c.cfg, false)));
    let sliding = window.map(|_| rotary_caches(c, &Rope::of_layers(c.cfg, true)));
    AttentionInputs::Gqa {
        seqlens,
        total,
        full,
        sliding,
    }
}

/// cos/sin caches `[max_positions, rotary_dim / 2]` of `rope`, computed as HF does
/// (f32), stored in the model dtype. LongRoPE has a pair for each set of factors: an `If`
/// picks the long pair where the sequence (the attention mask's length) exceeds the
/// pretraining context, cut to that length (GroupQueryAttention reads rows up to it), so
/// a step copies rows in use rather than the whole table.
fn rotary_caches(c: &mut Ctx, rope: &Rope) -> [String; 2] {
    let Some((long, original)) = &rope.long else {
        return rotary_cache_pair(c, &rope.inv_freq, rope.attention_factor);
    };
    let short = rotary_cache_pair(c, &rope.inv_freq, rope.attention_factor);
    let long = rotary_cache_pair(c, long, rope.attention_factor);
    let g = &mut c.g;
    let len = g.op(
        "Shape",
        &["attention_mask"],
        vec![attr_int("start", 1), attr_int("end", 2)],
    );
    let original = g.const_i64(&[*original as i64]);
    let beyond = g.op("Greater", &[&len, &original], vec![]);
    let (elem, half) = (elem_type(c.dtype), rope.inv_freq.len());
    let mut branch = |name: &str, [cos, sin]: &[String; 2]| {
        g.subgraph(name, |b| {
            let zero = b.const_i64(&[0]);
            [cos, sin]
                .map(|table| {
                    let rows = b.op("Slice", &[table, &zero, &len], vec![]);
                    let dims = vec![Dim::Named("total_sequence_length"), Dim::Fixed(half)];
                    (rows, elem, dims)
                })
                .into()
        })
    };
    let (then_branch, else_branch) = (branch("long_rope", &long), branch("short_rope", &short));
    let picked = g.op_if(&beyond, then_branch, else_branch, 2);
    [picked[0].clone(), picked[1].clone()]
}

/// cos/sin caches `[max_positions, inv.len()]` of the inverse frequencies `inv`,
/// multiplied by `attention_factor`: computed by constant nodes ONNX Runtime folds when
/// it loads the graph (positions times frequencies in f32, as HF computes them), so the
/// file holds a few numbers rather than two tables of every position.
fn rotary_cache_pair(c: &mut Ctx, inv: &[f32], attention_factor: f32) -> [String; 2] {
    let positions = c.cfg.max_position_embeddings as f32;
    let g = &mut c.g;
    let scalar = |g: &mut GraphBuilder, v: f32| g.const_float(&[v], &[], WeightDtype::F32);
    let (start, end, step) = (scalar(g, 0.0), scalar(g, positions), scalar(g, 1.0));
    let rows = g.op("Range", &[&start, &end, &step], vec![]);
    let axis1 = g.const_i64(&[1]);
    let rows = g.op("Unsqueeze", &[&rows, &axis1], vec![]);
    let inv = g.const_float(inv, &[1, inv.len() as i64], WeightDtype::F32);
    let angles = g.op("Mul", &[&rows, &inv], vec![]);
    ["Cos", "Sin"].map(|op| {
        let mut table = c.g.op(op, &[&angles], vec![]);
        if attention_factor != 1.0 {
            let a = c.g.const_float(&[attention_factor], &[], WeightDtype::F32);
            table = c.g.op("Mul", &[&table, &a], vec![]);
        }
        c.cast_to_model_dtype(&table)
    })
}

/// Gemma's soft-capping `cap * tanh(x / cap)` of the f32 tensor `x`, into `out`.
fn soft_cap(g: &mut GraphBuilder, x: &str, cap: f64, out: &str) {
    let cap = g.const_float(&[cap as f32], &[], WeightDtype::F32);
    let scaled = g.op("Div", &[x, &cap], vec![]);
    let t = g.op("Tanh", &[&scaled], vec![]);
    g.op_into("Mul", &[&t, &cap], vec![], &[out]);
}

fn declare_io(c: &mut Ctx) {
    let (kv, d) = (c.cfg.kv_heads(), c.cfg.head_dim());
    let (past_len, present_len) = match c.attention {
        Attention::Hf => ("past_sequence_length", "total_sequence_length"),
        Attention::Gqa => ("max_sequence_length", "max_sequence_length"),
    };
    let elem = elem_type(c.dtype);
    use Dim::{Fixed, Named};
    let g = &mut c.g;
    g.input(
        "input_ids",
        data_type::INT64,
        &[Named("batch_size"), Named("sequence_length")],
    );
    g.input(
        "attention_mask",
        data_type::INT64,
        &[Named("batch_size"), Named("total_sequence_length")],
    );
    g.input(
        "position_ids",
        data_type::INT64,
        &[Named("batch_size"), Named("sequence_length")],
    );
    for i in 0..c.cfg.num_hidden_layers {
        for kind in ["key", "value"] {
            let dims = [Named("batch_size"), Fixed(kv), Named(past_len), Fixed(d)];
            g.input(&format!("past_key_values.{i}.{kind}"), elem, &dims);
        }
    }
    g.optional_scalar_input(LOGITS_TO_KEEP, 0);
    g.output(
        "logits",
        data_type::FLOAT,
        &[
            Named("batch_size"),
            Named("logits_length"),
            Fixed(c.cfg.vocab_size),
        ],
    );
    for i in 0..c.cfg.num_hidden_layers {
        for kind in ["key", "value"] {
            let dims = [Named("batch_size"), Fixed(kv), Named(present_len), Fixed(d)];
            g.output(&format!("present.{i}.{kind}"), elem, &dims);
        }
    }
}

/// Packed quantized values (as f32 `[..., bytes]`) unpacked to `[..., values]`: bytes as
/// they are for 8 bits; for 4 bits each byte `b` becomes `b mod 16, b div 16` (the first
/// value sits in the low nibble).
fn unpack_nibbles(g: &mut GraphBuilder, packed: &str, bits: usize) -> String {
    if bits == 8 {
        return packed.to_string();
    }
    let sixteen = g.const_float(&[16.0], &[], WeightDtype::F32);
    let div = g.op("Div", &[packed, &sixteen], vec![]);
    let high = g.op("Floor", &[&div], vec![]);
    let high16 = g.op("Mul", &[&high, &sixteen], vec![]);
    let low = g.op("Sub", &[packed, &high16], vec![]);
    let last = g.const_i64(&[-1]);
    let low = g.op("Unsqueeze", &[&low, &last], vec![]);
    let high = g.op("Unsqueeze", &[&high, &last], vec![]);
    g.op("Concat", &[&low, &high], vec![attr_int("axis", -1)])
}

/// The first `n` columns of the 2-D or 3-D `x` along axis 1.
fn slice_columns(g: &mut GraphBuilder, x: &str, n: i64) -> String {
    let (start, end, axis) = (g.const_i64(&[0]), g.const_i64(&[n]), g.const_i64(&[1]));
    g.op("Slice", &[x, &start, &end, &axis], vec![])
}

fn attention_mask(
    g: &mut GraphBuilder,
    past_len: &str,
    total_len: &str,
    window: Option<usize>,
) -> String {
    let zero = g.const_i64(&[0]);
    let one = g.const_i64(&[1]);
    let scalar = |g: &mut GraphBuilder, t: &str| g.op("Squeeze", &[t, &zero], vec![]);
    let (past, total) = (scalar(g, past_len), scalar(g, total_len));
    let (zero_s, one_s) = (scalar(g, &zero), scalar(g, &one));
    let queries = g.op("Range", &[&past, &total, &one_s], vec![]);
    let keys = g.op("Range", &[&zero_s, &total, &one_s], vec![]);
    let queries = g.op("Unsqueeze", &[&queries, &one], vec![]);
    let keys = g.op("Unsqueeze", &[&keys, &zero], vec![]);
    let mut causal = g.op("LessOrEqual", &[&keys, &queries], vec![]);
    if let Some(w) = window {
        // A sliding layer sees the last `w` positions: query - key < w.
        let distance = g.op("Sub", &[&queries, &keys], vec![]);
        let w = g.const_i64(&[w.min(i64::MAX as usize) as i64]);
        let near = g.op("Less", &[&distance, &w], vec![]);
        causal = g.op("And", &[&causal, &near], vec![]);
    }
    let pad = g.op(
        "Cast",
        &["attention_mask"],
        vec![attr_int("to", data_type::BOOL as i64)],
    );
    let axes = g.const_i64(&[1, 2, 3]);
    let pad = g.op("Unsqueeze", &[&pad, &axes], vec![]);
    g.op("And", &[&causal, &pad], vec![])
}

impl Ctx<'_> {
    fn cast_to_model_dtype(&mut self, x: &str) -> String {
        match self.dtype {
            WeightDtype::F32 => x.to_string(),
            WeightDtype::F16 => self.g.op(
                "Cast",
                &[x],
                vec![attr_int("to", data_type::FLOAT16 as i64)],
            ),
        }
    }

    fn cast_to_f32(&mut self, x: &str) -> String {
        match self.dtype {
            WeightDtype::F32 => x.to_string(),
            WeightDtype::F16 => {
                self.g
                    .op("Cast", &[x], vec![attr_int("to", data_type::FLOAT as i64)])
            }
        }
    }

    /// `weight * (x / sqrt(mean(x^2) + eps))` (`1 + weight` for Gemma), the statistics in
    /// f32.
    fn rms_norm(&mut self, x: &str, weight: &str) -> String {
        let xf = self.cast_to_f32(x);
        let eps = self
            .g
            .const_float(&[self.cfg.rms_norm_eps as f32], &[], WeightDtype::F32);
        let two = self.g.const_float(&[2.0], &[], WeightDtype::F32);
        let g = &mut self.g;
        // Pow (not Mul(x, x)): the pattern ONNX Runtime fuses into SimplifiedLayerNormalization.
        let sq = g.op("Pow", &[&xf, &two], vec![]);
        let mean = g.op(
            "ReduceMean",
            &[&sq],
            vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
        );
        let var = g.op("Add", &[&mean, &eps], vec![]);
        let rms = g.op("Sqrt", &[&var], vec![]);
        let normed = g.op("Div", &[&xf, &rms], vec![]);
        if !self.cfg.norm_adds_one() {
            let normed = self.cast_to_model_dtype(&normed);
            return self.g.op("Mul", &[&normed, weight], vec![]);
        }
        // Gemma: `normed * (1 + weight)` in f32, then the model's dtype.
        let weight = self.cast_to_f32(weight);
        let one = self.g.const_float(&[1.0], &[], WeightDtype::F32);
        let scale = self.g.op("Add", &[&weight, &one], vec![]);
        let out = self.g.op("Mul", &[&normed, &scale], vec![]);
        self.cast_to_model_dtype(&out)
    }

    /// RMSNorm of each head of `x` `[batch * seq, heads * head_dim]` over its `head_dim`
    /// values with the scales `weight` `[head_dim]` (Qwen3's `q_norm` / `k_norm`); the
    /// result has `x`'s shape.
    fn head_norm(&mut self, x: &str, weight: &str) -> String {
        let d = self.cfg.head_dim() as i64;
        let rows = self.g.const_i64(&[-1, d]);
        let shape = self.g.op("Shape", &[x], vec![]);
        let per_head = self.g.op("Reshape", &[x, &rows], vec![]);
        let normed = self.rms_norm(&per_head, weight);
        self.g.op("Reshape", &[&normed, &shape], vec![])
    }

    /// The quantization of weight `stem.weight`, if it is stored quantized.
    fn quantized(&self, stem: &str) -> Option<(QuantizationConfig, usize, usize)> {
        let name = format!("{stem}.weight");
        let shape = &self.shapes[&name];
        let q = self.quant.as_ref()?;
        is_quantized_weight(&name, shape, q).then(|| (q.clone(), shape[0], shape[1]))
    }

    /// `x · [W₁; W₂; …]ᵀ` for float weights `stem.weight` `[out_i, in]`: one `Gemm` over
    /// their concatenation along the output axis, a constant subgraph ONNX Runtime folds
    /// into one matrix when it loads the graph.
    fn fused_linear(&mut self, x: &str, stems: &[String]) -> String {
        let concat = |g: &mut GraphBuilder, suffix: &str| {
            let names: Vec<String> = stems.iter().map(|s| format!("{s}.{suffix}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            g.op("Concat", &refs, vec![attr_int("axis", 0)])
        };
        let weight = concat(&mut self.g, "weight");
        let mut inputs = vec![x.to_string(), weight];
        if stems.iter().all(|s| self.has_bias(s)) {
            inputs.push(concat(&mut self.g, "bias"));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.g.op("Gemm", &refs, vec![attr_int("transB", 1)])
    }

    /// Whether the projection `stem` (`model.layers.N.LEAF`) has a bias.
    fn has_bias(&self, stem: &str) -> bool {
        let leaf = stem.splitn(4, '.').nth(3).unwrap_or_default();
        stem.starts_with("model.layers.") && self.cfg.has_bias(leaf)
    }

    /// `x · Wᵀ` for the weight `stem.weight` `[out, in]`: a `Gemm` with `transB = 1` over
    /// the stored matrix, or `MatMulNBits` over its quantized blocks.
    fn linear(&mut self, x: &str, stem: &str) -> String {
        let bias = self.has_bias(stem).then(|| format!("{stem}.bias"));
        let Some((q, n, k)) = self.quantized(stem) else {
            let weight = format!("{stem}.weight");
            let mut inputs = vec![x, weight.as_str()];
            inputs.extend(bias.as_deref());
            return self.g.op("Gemm", &inputs, vec![attr_int("transB", 1)]);
        };
        let (qweight, scales, qzeros) = (
            format!("{stem}.qweight"),
            format!("{stem}.scales"),
            format!("{stem}.qzeros"),
        );
        let mut inputs = vec![x, qweight.as_str(), scales.as_str()];
        if !q.sym {
            inputs.push(&qzeros);
        }
        let out = self.g.fresh("matmulnbits");
        self.g.op_domain_into(
            "com.microsoft",
            "MatMulNBits",
            &inputs,
            vec![
                attr_int("K", k as i64),
                attr_int("N", n as i64),
                attr_int("bits", q.bits as i64),
                attr_int("block_size", q.group_size as i64),
                attr_int("accuracy_level", q.accuracy_level),
            ],
            &[&out],
        );
        match bias {
            Some(bias) => self.g.op("Add", &[&out, &bias], vec![]),
            None => out,
        }
    }

    /// Rows `input_ids` of the embedding `stem.weight` `[vocab, width]` as
    /// `[batch * seq, width]`. A quantized embedding is gathered as packed bytes and
    /// dequantized here with plain ONNX ops (only the gathered rows), so the tied LM head's
    /// `MatMulNBits` and the lookup share one copy of the weights.
    fn embed(&mut self, stem: &str, width: i64) -> String {
        let Some((q, _, k)) = self.quantized(stem) else {
            let weight = format!("{stem}.weight");
            let g = &mut self.g;
            let x = g.op("Gather", &[&weight, "input_ids"], vec![attr_int("axis", 0)]);
            let flat = g.const_i64(&[-1, width]);
            return g.op("Reshape", &[&x, &flat], vec![]);
        };
        let s = q.scheme();
        let blocks = s.blocks(k) as i64;
        let gather = |g: &mut GraphBuilder, t: &str| {
            let rows = g.op("Gather", &[t, "input_ids"], vec![attr_int("axis", 0)]);
            g.op(
                "Cast",
                &[&rows],
                vec![attr_int("to", data_type::FLOAT as i64)],
            )
        };
        let g = &mut self.g;
        let packed = gather(g, &format!("{stem}.qweight"));
        let values = unpack_nibbles(g, &packed, q.bits);
        let shape = g.const_i64(&[-1, blocks, s.block_size as i64]);
        let values = g.op("Reshape", &[&values, &shape], vec![]);
        let zero = if q.sym {
            g.const_float(&[s.symmetric_zero_point() as f32], &[], WeightDtype::F32)
        } else {
            let zp = gather(g, &format!("{stem}.qzeros"));
            let zp = unpack_nibbles(g, &zp, q.bits);
            let flat = g.const_i64(&[-1, (s.zero_point_row_bytes(k) * 8 / q.bits) as i64]);
            let zp = g.op("Reshape", &[&zp, &flat], vec![]);
            let zp = slice_columns(g, &zp, blocks);
            let last = g.const_i64(&[-1]);
            g.op("Unsqueeze", &[&zp, &last], vec![])
        };
        let scales = self.g.op(
            "Gather",
            &[&format!("{stem}.scales"), "input_ids"],
            vec![attr_int("axis", 0)],
        );
        let scales = self.cast_to_f32(&scales);
        let g = &mut self.g;
        let shape = g.const_i64(&[-1, blocks, 1]);
        let scales = g.op("Reshape", &[&scales, &shape], vec![]);
        let centred = g.op("Sub", &[&values, &zero], vec![]);
        let x = g.op("Mul", &[&centred, &scales], vec![]);
        let flat = g.const_i64(&[-1, blocks * s.block_size as i64]);
        let x = g.op("Reshape", &[&x, &flat], vec![]);
        let x = if blocks * s.block_size as i64 == width {
            x
        } else {
            slice_columns(g, &x, width)
        };
        self.cast_to_model_dtype(&x)
    }

    /// `x * cos + rotate_half(x) * sin` for x [batch, heads, seq, head_dim], over the
    /// first `rotary_dim` dimensions of each head (the rest pass unchanged).
    fn rotary(&mut self, x: &str, cos: &str, sin: &str) -> String {
        let (d, rot) = (self.cfg.head_dim(), self.cfg.rotary_dim());
        let g = &mut self.g;
        let parts = (rot < d).then(|| {
            let widths = g.const_i64(&[rot as i64, (d - rot) as i64]);
            g.op_n("Split", &[x, &widths], vec![attr_int("axis", -1)], 2)
        });
        let xr = parts.as_ref().map_or(x, |p| &p[0]);
        let halves = g.op_n("Split", &[xr], vec![attr_int("axis", -1)], 2);
        let neg = g.op("Neg", &[&halves[1]], vec![]);
        let rotated = g.op("Concat", &[&neg, &halves[0]], vec![attr_int("axis", -1)]);
        let a = g.op("Mul", &[xr, cos], vec![]);
        let b = g.op("Mul", &[&rotated, sin], vec![]);
        let out = g.op("Add", &[&a, &b], vec![]);
        match parts {
            Some(p) => g.op("Concat", &[&out, &p[1]], vec![attr_int("axis", -1)]),
            None => out,
        }
    }

    /// [batch * seq, heads * head_dim] -> [batch, heads, seq, head_dim].
    fn split_heads(&mut self, x: &str, ids_shape: &str, heads: usize) -> String {
        let g = &mut self.g;
        let tail = g.const_i64(&[heads as i64, self.cfg.head_dim() as i64]);
        let shape = g.op("Concat", &[ids_shape, &tail], vec![attr_int("axis", 0)]);
        let x = g.op("Reshape", &[x, &shape], vec![]);
        g.op("Transpose", &[&x], vec![attr_ints("perm", &[0, 2, 1, 3])])
    }

    fn layer(&mut self, i: usize, x: &str, ids_shape: &str, att: &AttentionInputs) -> String {
        let p = format!("model.layers.{i}");
        let hn = if self.cfg.has_input_norm() {
            self.rms_norm(x, &format!("{p}.input_layernorm.weight"))
        } else {
            x.to_string() // OLMo 2
        };
        let stems = ["q_proj", "k_proj", "v_proj"].map(|m| format!("{p}.self_attn.{m}"));
        let sliding = self.cfg.window_of_layer(i);
        let ctx = match att {
            AttentionInputs::Gqa {
                seqlens,
                total,
                full,
                sliding: local,
            } => {
                let [cos, sin] = match sliding {
                    Some(_) => local,
                    None => full,
                }
                .as_ref()
                .expect("rotary caches exist for each kind of layer the model has");
                let qkv = if self.cfg.fuses_projections() {
                    // Phi-3's stored q, k, v matrix: one product, fed packed.
                    Qkv::Packed(self.linear(&hn, &format!("{p}.self_attn.qkv_proj")))
                } else if stems.iter().all(|s| self.quantized(s).is_none())
                    && !self.cfg.normalizes_queries()
                {
                    // One product for q, k and v (their weights concatenated, a constant
                    // ONNX Runtime folds at load), fed packed to GroupQueryAttention.
                    let qkv = self.fused_linear(&hn, &stems);
                    Qkv::Packed(qkv)
                } else {
                    Qkv::Separate(self.projections(&hn, &p, &stems))
                };
                self.gqa_attention(i, qkv, ids_shape, [seqlens, total, cos, sin], sliding)
            }
            AttentionInputs::Hf {
                full,
                sliding: local,
            } => {
                let rm = match sliding {
                    Some(_) => local,
                    None => full,
                }
                .as_ref()
                .expect("rotary tables exist for each kind of layer the model has");
                let [q, k, v] = self.projections(&hn, &p, &stems);
                self.hf_attention(i, [&q, &k, &v], ids_shape, rm)
            }
        };
        let attn = self.linear(&ctx, &format!("{p}.self_attn.o_proj"));
        if !self.cfg.norms_sublayer_outputs() {
            let attn = self.residual_scaled(&attn);
            let x = self.g.op("Add", &[x, &attn], vec![]);
            let hn = self.rms_norm(&x, &format!("{p}.post_attention_layernorm.weight"));
            let down = self.mlp(&hn, &p);
            let down = self.residual_scaled(&down);
            return self.g.op("Add", &[&x, &down], vec![]);
        }
        // Gemma, OLMo 2: the attention's output and the MLP's are normalised before they
        // are added to the residual stream (Gemma normalises the MLP's input too).
        let attn = self.rms_norm(&attn, &format!("{p}.post_attention_layernorm.weight"));
        let x = self.g.op("Add", &[x, &attn], vec![]);
        let hn = if self.cfg.is_gemma() {
            self.rms_norm(&x, &format!("{p}.pre_feedforward_layernorm.weight"))
        } else {
            x.clone()
        };
        let down = self.mlp(&hn, &p);
        let down = self.rms_norm(&down, &format!("{p}.post_feedforward_layernorm.weight"));
        self.g.op("Add", &[&x, &down], vec![])
    }

    /// `x` times Granite's `residual_multiplier` (in the model dtype, as transformers
    /// multiplies), or `x` itself.
    fn residual_scaled(&mut self, x: &str) -> String {
        match self.cfg.residual_scale() {
            Some(r) => {
                let r = self.g.const_float(&[r as f32], &[], self.dtype);
                self.g.op("Mul", &[x, &r], vec![])
            }
            None => x.to_string(),
        }
    }

    /// The q, k and v projections of layer `p`, queries and keys normalised per head
    /// where the model does so.
    fn projections(&mut self, hn: &str, p: &str, stems: &[String; 3]) -> [String; 3] {
        if self.cfg.fuses_projections() {
            let (nh, kv, d) = (
                self.cfg.num_attention_heads,
                self.cfg.kv_heads(),
                self.cfg.head_dim(),
            );
            let qkv = self.linear(hn, &format!("{p}.self_attn.qkv_proj"));
            let parts = self.split_columns(&qkv, &[nh * d, kv * d, kv * d]);
            return parts.try_into().expect("three parts");
        }
        let [mut q, mut k, v] = stems.clone().map(|s| self.linear(hn, &s));
        if self.cfg.has_qk_norm() {
            q = self.head_norm(&q, &format!("{p}.self_attn.q_norm.weight"));
            k = self.head_norm(&k, &format!("{p}.self_attn.k_norm.weight"));
        }
        if self.cfg.has_full_qk_norm() {
            // OLMo 2: over the whole projection, [rows, heads * head_dim].
            q = self.rms_norm(&q, &format!("{p}.self_attn.q_norm.weight"));
            k = self.rms_norm(&k, &format!("{p}.self_attn.k_norm.weight"));
        }
        [q, k, v]
    }

    /// `down(act(gate(x)) * up(x))` of layer `p`: SiLU, or Gemma's tanh-approximated
    /// GELU.
    fn mlp(&mut self, hn: &str, p: &str) -> String {
        let [gate, up] = if self.cfg.fuses_projections() {
            // Phi-3's stored gate and up matrix, gate first.
            let ff = self.cfg.intermediate_size;
            let gate_up = self.linear(hn, &format!("{p}.mlp.gate_up_proj"));
            let parts = self.split_columns(&gate_up, &[ff, ff]);
            parts.try_into().expect("two parts")
        } else {
            [
                self.linear(hn, &format!("{p}.mlp.gate_proj")),
                self.linear(hn, &format!("{p}.mlp.up_proj")),
            ]
        };
        let act = if self.cfg.is_gemma() {
            self.gelu_tanh(&gate)
        } else {
            let g = &mut self.g;
            let sig = g.op("Sigmoid", &[&gate], vec![]);
            g.op("Mul", &[&gate, &sig], vec![])
        };
        let act = self.g.op("Mul", &[&act, &up], vec![]);
        self.linear(&act, &format!("{p}.mlp.down_proj"))
    }

    /// `x` `[rows, sum(widths)]` split into consecutive column groups of `widths`.
    fn split_columns(&mut self, x: &str, widths: &[usize]) -> Vec<String> {
        let sizes: Vec<i64> = widths.iter().map(|&w| w as i64).collect();
        let sizes = self.g.const_i64(&sizes);
        self.g.op_n(
            "Split",
            &[x, &sizes],
            vec![attr_int("axis", 1)],
            widths.len(),
        )
    }

    /// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (transformers'
    /// `gelu_pytorch_tanh`), in the model's dtype.
    fn gelu_tanh(&mut self, x: &str) -> String {
        let dtype = self.dtype;
        let g = &mut self.g;
        let [half, one, cubic, root] = [0.5, 1.0, 0.044_715, (2.0 / std::f32::consts::PI).sqrt()]
            .map(|v| g.const_float(&[v], &[], dtype));
        let sq = g.op("Mul", &[x, x], vec![]);
        let cube = g.op("Mul", &[&sq, x], vec![]);
        let cube = g.op("Mul", &[&cube, &cubic], vec![]);
        let inner = g.op("Add", &[x, &cube], vec![]);
        let inner = g.op("Mul", &[&inner, &root], vec![]);
        let t = g.op("Tanh", &[&inner], vec![]);
        let t = g.op("Add", &[&t, &one], vec![]);
        let hx = g.op("Mul", &[x, &half], vec![]);
        g.op("Mul", &[&hx, &t], vec![])
    }

    /// Attention in plain ONNX ops over `[batch * seq, *]` projections; returns the context
    /// `[batch * seq, heads * head_dim]` and writes `present.{i}.*`.
    fn hf_attention(
        &mut self,
        i: usize,
        [q, k, v]: [&str; 3],
        ids_shape: &str,
        HfRotaryMask { cos, sin, mask }: &HfRotaryMask,
    ) -> String {
        let (nh, kv, d) = (
            self.cfg.num_attention_heads,
            self.cfg.kv_heads(),
            self.cfg.head_dim(),
        );
        let rep = nh / kv;
        let q = self.split_heads(q, ids_shape, nh);
        let k = self.split_heads(k, ids_shape, kv);
        let v = self.split_heads(v, ids_shape, kv);
        let (q, k) = if self.cfg.layer_uses_rope(i) {
            (self.rotary(&q, cos, sin), self.rotary(&k, cos, sin))
        } else {
            (q, k) // SmolLM3's NoPE layers
        };

        // The cache: present = Concat(past, new). ONNX Runtime copies the whole past here
        // every step; that copy is inherent to this graph convention.
        let (pk, pv) = (format!("present.{i}.key"), format!("present.{i}.value"));
        let g = &mut self.g;
        g.op_into(
            "Concat",
            &[&format!("past_key_values.{i}.key"), &k],
            vec![attr_int("axis", 2)],
            &[&pk],
        );
        g.op_into(
            "Concat",
            &[&format!("past_key_values.{i}.value"), &v],
            vec![attr_int("axis", 2)],
            &[&pv],
        );
        // Grouped-query attention without repeating the cache: queries as
        // [batch, kv_heads, rep, seq, d] against keys [batch, kv_heads, 1, d, total].
        let q5_shape = g.const_i64(&[0, kv as i64, rep as i64, -1, d as i64]);
        let q5 = g.op("Reshape", &[&q, &q5_shape], vec![]);
        let axis2 = g.const_i64(&[2]);
        let k5 = g.op("Unsqueeze", &[&pk, &axis2], vec![]);
        let kt = g.op(
            "Transpose",
            &[&k5],
            vec![attr_ints("perm", &[0, 1, 2, 4, 3])],
        );
        let v5 = g.op("Unsqueeze", &[&pv, &axis2], vec![]);
        let scores = g.op("MatMul", &[&q5, &kt], vec![]);
        let scores = self.cast_to_f32(&scores);
        let scale = self
            .g
            .const_float(&[self.cfg.attention_scale() as f32], &[], WeightDtype::F32);
        let lowest = self.g.const_float(&[f32::MIN], &[], WeightDtype::F32);
        let g = &mut self.g;
        let mut scores = g.op("Mul", &[&scores, &scale], vec![]);
        if let Some(cap) = self.cfg.attention_softcap() {
            // Gemma's soft-capping, before the mask.
            let capped = g.fresh("softcap");
            soft_cap(g, &scores, cap, &capped);
            scores = capped;
        }
        let scores = g.op("Where", &[mask, &scores, &lowest], vec![]);
        let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
        let probs = self.cast_to_model_dtype(&probs);
        let g = &mut self.g;
        let ctx = g.op("MatMul", &[&probs, &v5], vec![]);
        let heads_shape = g.const_i64(&[0, nh as i64, -1, d as i64]);
        let ctx = g.op("Reshape", &[&ctx, &heads_shape], vec![]);
        let ctx = g.op("Transpose", &[&ctx], vec![attr_ints("perm", &[0, 2, 1, 3])]);
        let flat = g.const_i64(&[-1, (nh * d) as i64]);
        g.op("Reshape", &[&ctx, &flat], vec![])
    }

    /// Attention by ONNX Runtime's fused `GroupQueryAttention` (rotary inside, rotate-half
    /// layout), past and present one shared buffer; returns the context
    /// `[batch * seq, heads * head_dim]`.
    fn gqa_attention(
        &mut self,
        i: usize,
        qkv: Qkv,
        ids_shape: &str,
        [seqlens, total, cos, sin]: [&String; 4],
        window: Option<usize>,
    ) -> String {
        let (nh, kv, d) = (
            self.cfg.num_attention_heads,
            self.cfg.kv_heads(),
            self.cfg.head_dim(),
        );
        let g = &mut self.g;
        let bsh = |g: &mut GraphBuilder, x: &str, width: usize| {
            let tail = g.const_i64(&[width as i64]);
            let shape = g.op("Concat", &[ids_shape, &tail], vec![attr_int("axis", 0)]);
            g.op("Reshape", &[x, &shape], vec![])
        };
        // Packed: key and value stay empty, GroupQueryAttention splits the query input.
        let (q, k, v) = match qkv {
            Qkv::Separate([q, k, v]) => {
                (bsh(g, &q, nh * d), bsh(g, &k, kv * d), bsh(g, &v, kv * d))
            }
            Qkv::Packed(qkv) => (
                bsh(g, &qkv, (nh + 2 * kv) * d),
                String::new(),
                String::new(),
            ),
        };
        // SmolLM3's NoPE layers: no rotary, no cos/sin caches.
        let rope = self.cfg.layer_uses_rope(i);
        let (cos, sin) = if rope {
            (cos.as_str(), sin.as_str())
        } else {
            ("", "")
        };
        let mut attrs = vec![
            attr_int("num_heads", nh as i64),
            attr_int("kv_num_heads", kv as i64),
            attr_int("do_rotary", i64::from(rope)),
            attr_int("rotary_interleaved", 0),
        ];
        if self.cfg.scales_attention() {
            attrs.push(attr_float("scale", self.cfg.attention_scale() as f32));
        }
        if let Some(cap) = self.cfg.attention_softcap() {
            attrs.push(attr_float("softcap", cap as f32));
        }
        if let Some(w) = window {
            attrs.push(attr_int(
                "local_window_size",
                w.min(i32::MAX as usize) as i64,
            ));
        }
        let out = format!("/gqa_{i}");
        g.op_domain_into(
            "com.microsoft",
            "GroupQueryAttention",
            &[
                &q,
                &k,
                &v,
                &format!("past_key_values.{i}.key"),
                &format!("past_key_values.{i}.value"),
                seqlens,
                total,
                cos,
                sin,
            ],
            attrs,
            &[
                &out,
                &format!("present.{i}.key"),
                &format!("present.{i}.value"),
            ],
        );
        let flat = g.const_i64(&[-1, (nh * d) as i64]);
        g.op("Reshape", &[&out, &flat], vec![])
    }
}
