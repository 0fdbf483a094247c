//! The Llama decoder in candle, exactly as Hugging Face's `LlamaForCausalLM` computes it.
//!
//! Reference: `transformers/models/llama/modeling_llama.py` (RMSNorm computed in f32,
//! rotary positions in the rotate-half layout, SwiGLU MLP, grouped-query attention by
//! repeating key/value heads, optional tied LM head), with the variants of the Llama
//! family it imports: projection biases (Qwen2), per-head query/key norms (Qwen3,
//! `modeling_qwen3.py`), Gemma 3's text model (`modeling_gemma3.py`) and SmolLM3's layers
//! without rotary positions (`modeling_smollm3.py`). Every op used here has a backward
//! pass in candle 0.11: RMSNorm, softmax and rotary positions are written out from
//! primitives because candle-nn's fused versions drop gradients silently.
//!
//! This module owns the forward pass over whole sequences (training, and the reference
//! logits that export parity is checked against); it knows nothing of files or ONNX.

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::Linear;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{LlamaConfig, RotaryScaling};
use crate::error::Result;

/// The weights of one decoder layer.
struct Layer {
    /// The norm before attention (none in OLMo 2).
    input_norm: Option<Tensor>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// RMSNorm scales of queries and keys: Qwen3's and Gemma 3's per head
    /// (`[head_dim]`), OLMo 2's over the whole projection.
    qk_norm: Option<(Tensor, Tensor)>,
    /// Llama: the norm before the MLP; Gemma, OLMo 2: the norm of the attention's output.
    post_norm: Tensor,
    /// Gemma's norm before the MLP.
    pre_ffn_norm: Option<Tensor>,
    /// Gemma's and OLMo 2's norm of the MLP's output.
    post_ffn_norm: Option<Tensor>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama model over named tensors (trainable [`Var`]s or loaded weights).
pub struct Llama {
    cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
}

/// The Hugging Face names and shapes of every weight of `cfg`, in a stable order.
pub fn weight_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let (h, d) = (cfg.hidden_size, cfg.head_dim());
    let (nh, kv, ff) = (
        cfg.num_attention_heads,
        cfg.kv_heads(),
        cfg.intermediate_size,
    );
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
    )];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        if cfg.has_input_norm() {
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
        }
        let projections: &[(&str, [usize; 2])] = if cfg.fuses_projections() {
            &[
                ("self_attn.qkv_proj", [(nh + 2 * kv) * d, h]),
                ("self_attn.o_proj", [h, nh * d]),
                ("mlp.gate_up_proj", [2 * ff, h]),
                ("mlp.down_proj", [h, ff]),
            ]
        } else {
            &[
                ("self_attn.q_proj", [nh * d, h]),
                ("self_attn.k_proj", [kv * d, h]),
                ("self_attn.v_proj", [kv * d, h]),
                ("self_attn.o_proj", [h, nh * d]),
                ("mlp.gate_proj", [ff, h]),
                ("mlp.up_proj", [ff, h]),
                ("mlp.down_proj", [h, ff]),
            ]
        };
        for &(leaf, [rows, cols]) in projections {
            if leaf.starts_with("mlp.gate") {
                if cfg.has_qk_norm() {
                    out.push((format!("{p}.self_attn.q_norm.weight"), vec![d]));
                    out.push((format!("{p}.self_attn.k_norm.weight"), vec![d]));
                }
                if cfg.has_full_qk_norm() {
                    out.push((format!("{p}.self_attn.q_norm.weight"), vec![nh * d]));
                    out.push((format!("{p}.self_attn.k_norm.weight"), vec![kv * d]));
                }
                out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
                if cfg.is_gemma() {
                    out.push((format!("{p}.pre_feedforward_layernorm.weight"), vec![h]));
                }
            }
            out.push((format!("{p}.{leaf}.weight"), vec![rows, cols]));
            if cfg.has_bias(leaf) {
                out.push((format!("{p}.{leaf}.bias"), vec![rows]));
            }
        }
        if cfg.norms_sublayer_outputs() {
            out.push((format!("{p}.post_feedforward_layernorm.weight"), vec![h]));
        }
    }
    out.push(("model.norm.weight".into(), vec![h]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![cfg.vocab_size, h]));
    }
    out
}

/// True for the weights that are RMSNorm scales (initialised to one, never decayed).
pub fn is_norm(name: &str) -> bool {
    name.ends_with("norm.weight")
}

/// Creates freshly initialised trainable weights: N(0, initializer_range) for matrices
/// and embeddings, ones for norms (as `LlamaPreTrainedModel._init_weights`; zeros where
/// the norm multiplies by `1 + weight`, as Gemma's).
/// Deterministic for a given `seed`.
pub fn init_vars(cfg: &LlamaConfig, seed: u64, device: &Device) -> Result<Vec<(String, Var)>> {
    let mut rng = StdRng::seed_from_u64(seed);
    weight_shapes(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let t = if is_norm(&name) && cfg.norm_adds_one() {
                Tensor::zeros(shape, DType::F32, device)?
            } else if is_norm(&name) {
                Tensor::ones(shape, DType::F32, device)?
            } else {
                let n: usize = shape.iter().product();
                let values = normal_samples(&mut rng, n, cfg.initializer_range as f32);
                Tensor::from_vec(values, shape, device)?
            };
            Ok((name, Var::from_tensor(&t)?))
        })
        .collect()
}

/// `n` draws from N(0, std) by the Box-Muller transform.
fn normal_samples(rng: &mut StdRng, n: usize, std: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1 = rng.random::<f32>().max(f32::MIN_POSITIVE);
            let u2 = rng.random::<f32>();
            std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
        })
        .collect()
}

impl Llama {
    /// Builds the model from a lookup of weights by HF name (shapes already checked).
    pub fn new(cfg: &LlamaConfig, mut get: impl FnMut(&str) -> Result<Tensor>) -> Result<Self> {
        let mut w = |name: String| get(&name);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut linear = |leaf: &str| -> Result<Linear> {
                let weight = w(format!("{p}.{leaf}.weight"))?;
                let bias = if cfg.has_bias(leaf) {
                    Some(w(format!("{p}.{leaf}.bias"))?)
                } else {
                    None
                };
                Ok(Linear::new(weight, bias))
            };
            let ([q, k, v], o, [gate, up], down) = if cfg.fuses_projections() {
                // Phi-3: rows of the fused matrices, in transformers' order.
                let (nh, kv, d) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
                let qkv = linear("self_attn.qkv_proj")?;
                let gate_up = linear("mlp.gate_up_proj")?;
                let ff = cfg.intermediate_size;
                (
                    rows_of(&qkv, &[nh * d, kv * d, kv * d])?
                        .try_into()
                        .expect("three parts"),
                    linear("self_attn.o_proj")?,
                    rows_of(&gate_up, &[ff, ff])?.try_into().expect("two parts"),
                    linear("mlp.down_proj")?,
                )
            } else {
                (
                    [
                        linear("self_attn.q_proj")?,
                        linear("self_attn.k_proj")?,
                        linear("self_attn.v_proj")?,
                    ],
                    linear("self_attn.o_proj")?,
                    [linear("mlp.gate_proj")?, linear("mlp.up_proj")?],
                    linear("mlp.down_proj")?,
                )
            };
            // Two weights of the layer, where the architecture has them.
            let mut pair = |present: bool, [a, b]: [&str; 2]| -> Result<Option<(Tensor, Tensor)>> {
                if !present {
                    return Ok(None);
                }
                Ok(Some((
                    w(format!("{p}.{a}.weight"))?,
                    w(format!("{p}.{b}.weight"))?,
                )))
            };
            let qk_norm = pair(
                cfg.normalizes_queries(),
                ["self_attn.q_norm", "self_attn.k_norm"],
            )?;
            let mut norm = |present: bool, leaf: &str| -> Result<Option<Tensor>> {
                present.then(|| w(format!("{p}.{leaf}.weight"))).transpose()
            };
            let input_norm = norm(cfg.has_input_norm(), "input_layernorm")?;
            let pre_ffn_norm = norm(cfg.is_gemma(), "pre_feedforward_layernorm")?;
            let post_ffn_norm = norm(cfg.norms_sublayer_outputs(), "post_feedforward_layernorm")?;
            layers.push(Layer {
                input_norm,
                q,
                k,
                v,
                o,
                qk_norm,
                post_norm: w(format!("{p}.post_attention_layernorm.weight"))?,
                pre_ffn_norm,
                post_ffn_norm,
                gate,
                up,
                down,
            });
        }
        let embed = w("model.embed_tokens.weight".into())?;
        let norm = w("model.norm.weight".into())?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            w("lm_head.weight".into())?
        };
        Ok(Llama {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    /// Builds the model over trainable variables.
    pub fn from_vars(cfg: &LlamaConfig, vars: &[(String, Var)]) -> Result<Self> {
        Self::new(cfg, |name| {
            let var = vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_tensor().clone());
            var.ok_or_else(|| candle_core::Error::Msg(format!("missing weight {name}")).into())
        })
    }

    /// The config the model was built with.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Logits `[batch, seq, vocab]` (f32) for token ids `[batch, seq]` (u32) at positions
    /// 0..seq, with causal attention and no padding.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let device = ids.device();
        let global = Rope::of_layers(&self.cfg, false).tables(t, device)?;
        let local = Rope::of_layers(&self.cfg, true).tables(t, device)?;
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, ()))?;
        x = x.to_dtype(DType::F32)?;
        if let Some(scale) = self.cfg.embed_scale() {
            x = (x * scale as f64)?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let window = self.cfg.window_of_layer(i);
            let (cos, sin) = if window.is_some() { &local } else { &global };
            let mask = causal_mask(t, window, device)?;
            let h = match &layer.input_norm {
                Some(weight) => self.norm(&x, weight)?,
                None => x.clone(),
            };
            let rotary = self.cfg.layer_uses_rope(i).then_some((cos, sin));
            let attn = self.attention(layer, &h, rotary, &mask)?;
            match &layer.post_ffn_norm {
                // Gemma, OLMo 2: the attention's output and the MLP's are normalised.
                Some(post) => {
                    x = (x + self.norm(&attn, &layer.post_norm)?)?;
                    let h = match &layer.pre_ffn_norm {
                        Some(pre) => self.norm(&x, pre)?,
                        None => x.clone(),
                    };
                    x = (x + self.norm(&self.mlp(layer, &h)?, post)?)?;
                }
                None => {
                    // Granite scales what joins the residual stream.
                    let r = self.cfg.residual_scale().unwrap_or(1.0);
                    x = (x + (attn * r)?)?;
                    let h = self.norm(&x, &layer.post_norm)?;
                    x = (x + (self.mlp(layer, &h)? * r)?)?;
                }
            }
        }
        let x = self.norm(&x, &self.norm)?;
        let mut logits = x.broadcast_matmul(&self.lm_head.t()?)?;
        if let Some(divisor) = self.cfg.logits_divisor() {
            logits = (logits / divisor)?;
        }
        match self.cfg.final_softcap() {
            Some(cap) => softcap(&logits, cap),
            None => Ok(logits),
        }
    }

    /// RMSNorm with the config's convention for the scale (`weight` or `1 + weight`).
    fn norm(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        if self.cfg.norm_adds_one() {
            rms_norm(x, &(weight + 1.0)?, self.cfg.rms_norm_eps)
        } else {
            rms_norm(x, weight, self.cfg.rms_norm_eps)
        }
    }

    /// `down(act(gate(x)) * up(x))`: SiLU, or Gemma's tanh-approximated GELU.
    fn mlp(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let gate = layer.gate.forward(x)?;
        let act = if self.cfg.is_gemma() {
            gelu_tanh(&gate)?
        } else {
            gate.silu()?
        };
        Ok(layer.down.forward(&(act * layer.up.forward(x)?)?)?)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        rotary: Option<(&Tensor, &Tensor)>,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (nh, kv, d) = (
            self.cfg.num_attention_heads,
            self.cfg.kv_heads(),
            self.cfg.head_dim(),
        );
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?)
        };
        let (mut q, mut k) = (layer.q.forward(x)?, layer.k.forward(x)?);
        let full = self.cfg.has_full_qk_norm();
        if let (Some((q_norm, k_norm)), true) = (&layer.qk_norm, full) {
            // OLMo 2: over the whole projection, before the heads are split.
            q = self.norm(&q, q_norm)?;
            k = self.norm(&k, k_norm)?;
        }
        (q, k) = (heads(q, nh)?, heads(k, kv)?);
        if let (Some((q_norm, k_norm)), false) = (&layer.qk_norm, full) {
            q = self.norm(&q, q_norm)?;
            k = self.norm(&k, k_norm)?;
        }
        if let Some((cos, sin)) = rotary {
            (q, k) = (rotate(&q, cos, sin)?, rotate(&k, cos, sin)?);
        }
        let v = heads(layer.v.forward(x)?, kv)?;
        let (k, v) = (repeat_kv(k, nh / kv)?, repeat_kv(v, nh / kv)?);
        let mut scores = (q.matmul(&k.t()?)? * self.cfg.attention_scale())?;
        if let Some(cap) = self.cfg.attention_softcap() {
            scores = softcap(&scores, cap)?;
        }
        let scores = scores.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, nh * d))?;
        Ok(layer.o.forward(&out)?)
    }
}

/// Gemma's soft-capping: `cap * tanh(x / cap)`.
fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    Ok(((x / cap)?.tanh()? * cap)?)
}

/// A fused projection split into consecutive groups of `sizes` output rows (no biases).
fn rows_of(fused: &Linear, sizes: &[usize]) -> Result<Vec<Linear>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let part = fused.weight().narrow(0, start, n)?.contiguous()?;
            start += n;
            Ok(Linear::new(part, None))
        })
        .collect()
}

/// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`: transformers' `gelu_pytorch_tanh`.
fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    let cube = (x.sqr()? * x)?;
    let inner = ((x + (cube * 0.044_715)?)? * (2.0 / std::f64::consts::PI).sqrt())?;
    Ok(((x * 0.5)? * (inner.tanh()? + 1.0)?)?)
}

/// `x / sqrt(mean(x^2) + eps) * weight`, over the last axis.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(normed.broadcast_mul(weight)?)
}

/// Rotary inverse frequencies `1 / theta^(2i/d)` for i in 0..d/2 (`d` the rotated
/// dimensions of a head), scaled as the config's `rope_scaling` says, as transformers
/// computes them (`modeling_rope_utils`); LongRoPE's within the pretraining context. The
/// config was validated when it was loaded.
pub fn inv_freq(cfg: &LlamaConfig) -> Vec<f32> {
    let d = cfg.rotary_dim();
    let plain = plain_inv_freq(cfg.rope_theta, d);
    let scaling = cfg.rotary_scaling().unwrap_or(RotaryScaling::None);
    // YaRN's ramp between the dimensions it extrapolates and those it interpolates.
    let yarn_ramp = |beta_fast: f64, beta_slow: f64, original: f64| {
        let dim = d as f64;
        let correction = |rotations: f64| {
            dim * (original / (rotations * 2.0 * std::f64::consts::PI)).ln()
                / (2.0 * cfg.rope_theta.ln())
        };
        let low = correction(beta_fast).floor().max(0.0);
        let high = correction(beta_slow).ceil().min(dim - 1.0);
        let high = if high == low { high + 0.001 } else { high };
        move |i: usize| ((i as f64 - low) / (high - low)).clamp(0.0, 1.0)
    };
    plain
        .enumerate()
        .map(|(i, f)| match scaling {
            RotaryScaling::None => f,
            RotaryScaling::Linear { factor } => f / factor,
            RotaryScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: original,
            } => {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < original / high {
                    f
                } else if wavelen > original / low {
                    f / factor
                } else {
                    let smooth = (original / wavelen - low) / (high - low);
                    (1.0 - smooth) * f / factor + smooth * f
                }
            }
            RotaryScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                beta_fast,
                beta_slow,
                ..
            } => {
                let extrapolated = 1.0 - yarn_ramp(beta_fast, beta_slow, original)(i);
                f / factor * (1.0 - extrapolated) + f * extrapolated
            }
            RotaryScaling::LongRope {
                ref short_factor, ..
            } => f / short_factor[i],
        } as f32)
        .collect()
}

/// LongRoPE's inverse frequencies for sequences longer than the pretraining context
/// (`long_factor`), with that context's length; `None` for other scalings.
fn long_inv_freq(cfg: &LlamaConfig) -> Option<(Vec<f32>, usize)> {
    let Ok(RotaryScaling::LongRope {
        long_factor,
        original_max_position_embeddings,
        ..
    }) = cfg.rotary_scaling()
    else {
        return None;
    };
    let long = plain_inv_freq(cfg.rope_theta, cfg.rotary_dim())
        .zip(long_factor)
        .map(|(f, factor)| (f / factor) as f32)
        .collect();
    Some((long, original_max_position_embeddings))
}

/// `1 / theta^(2i/d)` for i in 0..d/2.
fn plain_inv_freq(theta: f64, d: usize) -> impl Iterator<Item = f64> {
    (0..d / 2).map(move |i| 1.0 / theta.powf((2 * i) as f64 / d as f64))
}

/// The rotary positions one kind of layer applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// Inverse frequencies, one per rotated pair of dimensions.
    pub inv_freq: Vec<f32>,
    /// LongRoPE: the frequencies for sequences longer than the pretraining context, and
    /// that context's length.
    pub long: Option<(Vec<f32>, usize)>,
    /// What cos and sin are multiplied by (YaRN's and LongRoPE's attention factor).
    pub attention_factor: f32,
}

impl Rope {
    /// The rotary positions of the model's sliding layers (`sliding`) or of its other
    /// layers: Gemma 3's sliding layers use `rope_local_base_freq`, unscaled; every other
    /// layer the config's `rope_theta` and `rope_scaling`.
    pub fn of_layers(cfg: &LlamaConfig, sliding: bool) -> Self {
        if sliding && cfg.is_gemma3() {
            let inv_freq = plain_inv_freq(cfg.local_rope_theta(), cfg.head_dim())
                .map(|f| f as f32)
                .collect();
            return Rope {
                inv_freq,
                long: None,
                attention_factor: 1.0,
            };
        }
        Rope {
            inv_freq: inv_freq(cfg),
            long: long_inv_freq(cfg),
            attention_factor: cfg.rotary_scaling().map_or(1.0, |s| s.attention_factor()) as f32,
        }
    }

    /// The frequencies for a sequence of `seq_len` positions (transformers: the highest
    /// position plus one).
    pub fn inv_freq_at(&self, seq_len: usize) -> &[f32] {
        match &self.long {
            Some((long, original)) if seq_len > *original => long,
            _ => &self.inv_freq,
        }
    }

    /// cos and sin tables `[seq, rotary_dim]` for positions 0..seq (frequencies repeated
    /// twice), multiplied by the attention factor.
    fn tables(&self, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let inv = Tensor::new(self.inv_freq_at(t), device)?;
        let pos = Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F32)?;
        let freqs = pos.unsqueeze(1)?.broadcast_mul(&inv.unsqueeze(0)?)?;
        let emb = Tensor::cat(&[&freqs, &freqs], 1)?;
        if self.attention_factor == 1.0 {
            return Ok((emb.cos()?, emb.sin()?));
        }
        let a = self.attention_factor as f64;
        Ok(((emb.cos()? * a)?, (emb.sin()? * a)?))
    }
}

/// `x * cos + rotate_half(x) * sin` for `x` of shape `[b, heads, seq, d]`, over the
/// first `cos.dim(1)` dimensions of each head (all of them but with a partial rotary
/// factor); the rest pass unchanged.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (d, rot) = (x.dim(D::Minus1)?, cos.dim(D::Minus1)?);
    let xr = x.narrow(D::Minus1, 0, rot)?;
    let half = rot / 2;
    let x1 = xr.narrow(D::Minus1, 0, half)?;
    let x2 = xr.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let out = (xr.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?;
    if rot == d {
        return Ok(out);
    }
    Ok(Tensor::cat(
        &[&out, &x.narrow(D::Minus1, rot, d - rot)?],
        D::Minus1,
    )?)
}

/// Repeats each key/value head `n` times: `[b, kv, t, d]` -> `[b, kv * n, t, d]`.
fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, kv, n, t, d))?
        .reshape((b, kv * n, t, d))?)
}

/// Additive causal mask `[seq, seq]`: 0 where query i sees key j (j <= i, and i - j <
/// `window` when given), -inf elsewhere.
fn causal_mask(t: usize, window: Option<usize>, device: &Device) -> Result<Tensor> {
    let window = window.unwrap_or(usize::MAX);
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..t).map(move |j| {
                if j > i || i - j >= window {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (t, t), device)?)
}
