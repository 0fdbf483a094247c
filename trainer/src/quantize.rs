//! Block-wise integer quantization of weight matrices in the layout of ONNX Runtime's
//! `com.microsoft.MatMulNBits` operator (DESIGN.md, "Quantized weights").
//!
//! A matrix `W` of `rows × cols` (`[out, in]`, as Hugging Face stores linear weights) is
//! cut, row by row, into blocks of `block_size` consecutive values; the last block of a
//! row is padded with zeros when `cols` is not a multiple of the block size. Each block
//! gets one scale `s` and one integer zero point `z`, and each value `w` becomes the
//! integer `q = clamp(round(w / s) + z, 0, 2^bits - 1)`; it reads back as `(q - z) · s`.
//!
//! - asymmetric (the default): the block's range `[min(lo, 0), max(hi, 0)]` is spread over
//!   `0 ..= 2^bits - 1`: `s = (max - min) / (2^bits - 1)`, `z = round(-min / s)`;
//! - symmetric: `z = 2^(bits-1)` for every block (not stored) and
//!   `s = max|w| / (2^(bits-1) - 1)`.
//!
//! Either way every value reads back within `s / 2` of the original (up to f32 rounding),
//! and a block of zeros reads back as zeros (`s = 0`).
//!
//! Storage, as `MatMulNBits` takes it: `packed` is `[rows, blocks, block_size · bits / 8]`
//! bytes (4 bits: two values per byte, the first in the low nibble); `scales` is
//! `[rows, blocks]`; `zero_points` (asymmetric only) is `[rows, ceil(blocks · bits / 8)]`
//! bytes, packed the same way.

use serde::{Deserialize, Serialize};

use crate::config::LlamaConfig;
use crate::error::{Result, TrainerError};

/// Bit widths ONNX Runtime's `MatMulNBits` CPU kernel runs.
pub const SUPPORTED_BITS: [usize; 2] = [4, 8];
/// Block sizes ONNX Runtime's `MatMulNBits` CPU kernel runs (powers of two from 16).
pub const SUPPORTED_BLOCK_SIZES: [usize; 5] = [16, 32, 64, 128, 256];

/// How a matrix is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// Bits per value: 4 or 8.
    pub bits: usize,
    /// Values per block (per scale): a power of two from 16 to 256.
    pub block_size: usize,
    /// Zero point fixed at `2^(bits-1)` (no zero points stored).
    pub symmetric: bool,
}

impl Scheme {
    /// Checks that ONNX Runtime runs this combination.
    pub fn validate(&self) -> Result<()> {
        if !SUPPORTED_BITS.contains(&self.bits) {
            return Err(TrainerError::InvalidOption(format!(
                "--bits {}: ONNX Runtime's MatMulNBits runs 4- and 8-bit weights",
                self.bits
            )));
        }
        if !SUPPORTED_BLOCK_SIZES.contains(&self.block_size) {
            return Err(TrainerError::InvalidOption(format!(
                "--block-size {}: ONNX Runtime's MatMulNBits takes a power of two from 16 to 256 (32, 64 or 128 are usual)",
                self.block_size
            )));
        }
        Ok(())
    }

    /// Largest stored integer, `2^bits - 1`.
    fn max_q(&self) -> f32 {
        ((1usize << self.bits) - 1) as f32
    }

    /// The zero point every block has under symmetric quantization.
    pub fn symmetric_zero_point(&self) -> u8 {
        (1u32 << (self.bits - 1)) as u8
    }

    /// Blocks per row of `cols` values.
    pub fn blocks(&self, cols: usize) -> usize {
        cols.div_ceil(self.block_size)
    }

    /// Bytes of one packed block.
    pub fn block_bytes(&self) -> usize {
        self.block_size * self.bits / 8
    }

    /// Bytes of one row's packed zero points.
    pub fn zero_point_row_bytes(&self, cols: usize) -> usize {
        (self.blocks(cols) * self.bits).div_ceil(8)
    }
}

/// The `quant_method` of folders `rill-train quantize` writes.
pub const QUANT_METHOD: &str = "matmul_nbits";

/// `quantization_config` in `config.json`, in the Hugging Face manner: how the folder's
/// weights are quantized. Tensor names in `model.safetensors`: a quantized matrix `X.weight`
/// is stored as `X.qweight` (u8 `[N, blocks, block_size · bits / 8]`), `X.scales` (the model
/// dtype, `[N, blocks]`) and, unless `sym`, `X.qzeros` (u8 `[N, ceil(blocks · bits / 8)]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizationConfig {
    /// Always [`QUANT_METHOD`].
    pub quant_method: String,
    /// Bits per weight (4 or 8).
    pub bits: usize,
    /// Weights per scale (the block size).
    pub group_size: usize,
    /// Symmetric: every zero point is `2^(bits-1)` and none is stored.
    pub sym: bool,
    /// `MatMulNBits`' `accuracy_level`: 0 computes in f32, 4 lets the CPU quantize the
    /// activations to int8 per block and use integer dot products.
    pub accuracy_level: i64,
    /// Whether the embedding (and the LM head) are quantized too.
    pub quantize_embeddings: bool,
}

impl QuantizationConfig {
    /// The config for `scheme`.
    pub fn new(scheme: Scheme, accuracy_level: i64, quantize_embeddings: bool) -> Self {
        QuantizationConfig {
            quant_method: QUANT_METHOD.into(),
            bits: scheme.bits,
            group_size: scheme.block_size,
            sym: scheme.symmetric,
            accuracy_level,
            quantize_embeddings,
        }
    }

    /// The block scheme.
    pub fn scheme(&self) -> Scheme {
        Scheme {
            bits: self.bits,
            block_size: self.group_size,
            symmetric: self.sym,
        }
    }

    /// Checks the method and that ONNX Runtime runs the scheme.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.quant_method != QUANT_METHOD {
            return Err(format!(
                "quantization_config.quant_method `{}` is not supported (rill reads `{QUANT_METHOD}` folders from `rill-train quantize`)",
                self.quant_method
            ));
        }
        if ![0, 1, 2, 3, 4].contains(&self.accuracy_level) {
            return Err(format!(
                "quantization_config.accuracy_level {} is not one of 0-4",
                self.accuracy_level
            ));
        }
        self.scheme().validate().map_err(|e| e.to_string())
    }

    /// A short description, e.g. `4-bit, block 32, asymmetric`.
    pub fn describe(&self) -> String {
        format!(
            "{}-bit, block {}, {}",
            self.bits,
            self.group_size,
            if self.sym { "symmetric" } else { "asymmetric" }
        )
    }
}

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// The model's float dtype (f32 or f16).
    Float,
    /// Packed integers or zero points.
    U8,
}

/// Whether the float weight `name` is stored quantized under `q`.
pub fn is_quantized_weight(name: &str, shape: &[usize], q: &QuantizationConfig) -> bool {
    let embedding = name == "model.embed_tokens.weight" || name == "lm_head.weight";
    shape.len() == 2 && (!embedding || q.quantize_embeddings)
}

/// `X.weight` → `X`.
pub fn stem(name: &str) -> &str {
    name.strip_suffix(".weight").unwrap_or(name)
}

/// Every tensor a folder of `cfg` stores, with its shape and kind: the float weights of
/// [`crate::model::weight_shapes`], each quantized matrix replaced by its
/// `qweight` / `scales` / `qzeros` when `cfg` has a `quantization_config`.
pub fn stored_tensors(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>, StoredKind)> {
    let mut out = Vec::new();
    for (name, shape) in crate::model::weight_shapes(cfg) {
        match &cfg.quantization_config {
            Some(q) if is_quantized_weight(&name, &shape, q) => {
                let (s, stem) = (q.scheme(), stem(&name));
                let (rows, cols) = (shape[0], shape[1]);
                let blocks = s.blocks(cols);
                out.push((
                    format!("{stem}.qweight"),
                    vec![rows, blocks, s.block_bytes()],
                    StoredKind::U8,
                ));
                out.push((
                    format!("{stem}.scales"),
                    vec![rows, blocks],
                    StoredKind::Float,
                ));
                if !s.symmetric {
                    out.push((
                        format!("{stem}.qzeros"),
                        vec![rows, s.zero_point_row_bytes(cols)],
                        StoredKind::U8,
                    ));
                }
            }
            _ => out.push((name, shape, StoredKind::Float)),
        }
    }
    out
}

/// A quantized matrix (see the module documentation for the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    /// Rows (`N`, output features).
    pub rows: usize,
    /// Columns (`K`, input features).
    pub cols: usize,
    /// The scheme it was quantized with.
    pub scheme: Scheme,
    /// `[rows, blocks, block_bytes]` packed integers.
    pub packed: Vec<u8>,
    /// `[rows, blocks]` scales.
    pub scales: Vec<f32>,
    /// `[rows, zero_point_row_bytes]` packed zero points; `None` when symmetric.
    pub zero_points: Option<Vec<u8>>,
}

/// Writes `values` (each `< 2^bits`) as packed bytes: bytes as they are for 8 bits, two
/// per byte (first value in the low nibble) for 4 bits.
fn pack(values: &[u8], bits: usize, out: &mut Vec<u8>) {
    match bits {
        8 => out.extend_from_slice(values),
        _ => out.extend(
            values
                .chunks(2)
                .map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)),
        ),
    }
}

/// The `index`-th value of a packed row.
fn unpack(bytes: &[u8], bits: usize, index: usize) -> u8 {
    match bits {
        8 => bytes[index],
        _ => (bytes[index / 2] >> (4 * (index % 2))) & 0x0f,
    }
}

/// Scale and zero point of one block.
fn block_params(block: &[f32], scheme: &Scheme) -> (f32, u8) {
    if scheme.symmetric {
        let z = scheme.symmetric_zero_point();
        let absmax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        return (absmax / (z as f32 - 1.0), z);
    }
    let lo = block.iter().fold(0f32, |m, &v| m.min(v));
    let hi = block.iter().fold(0f32, |m, &v| m.max(v));
    let scale = (hi - lo) / scheme.max_q();
    if scale == 0.0 {
        return (0.0, 0);
    }
    let z = (-lo / scale).round().clamp(0.0, scheme.max_q());
    (scale, z as u8)
}

/// Quantizes the row-major matrix `values` of `rows × cols`.
pub fn quantize(
    values: &[f32],
    rows: usize,
    cols: usize,
    scheme: Scheme,
) -> Result<QuantizedMatrix> {
    scheme.validate()?;
    if rows == 0 || cols == 0 || values.len() != rows * cols {
        return Err(TrainerError::InvalidOption(format!(
            "cannot quantize a {rows} × {cols} matrix from {} values",
            values.len()
        )));
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(TrainerError::InvalidOption(format!(
            "cannot quantize a weight holding {v}"
        )));
    }
    let (blocks, bs) = (scheme.blocks(cols), scheme.block_size);
    let mut packed = Vec::with_capacity(rows * blocks * scheme.block_bytes());
    let mut scales = Vec::with_capacity(rows * blocks);
    let mut zero_points = Vec::with_capacity(rows * scheme.zero_point_row_bytes(cols));
    let mut block = vec![0f32; bs];
    let mut q = vec![0u8; bs];
    let mut row_zeros = Vec::with_capacity(blocks);
    for row in values.chunks_exact(cols) {
        row_zeros.clear();
        for b in 0..blocks {
            let real = &row[b * bs..((b + 1) * bs).min(cols)];
            block.fill(0.0);
            block[..real.len()].copy_from_slice(real);
            let (scale, z) = block_params(&block, &scheme);
            for (qi, &w) in q.iter_mut().zip(&block) {
                let level = if scale == 0.0 {
                    z as f32
                } else {
                    (w / scale).round() + z as f32
                };
                *qi = level.clamp(0.0, scheme.max_q()) as u8;
            }
            pack(&q, scheme.bits, &mut packed);
            scales.push(scale);
            row_zeros.push(z);
        }
        pack(&row_zeros, scheme.bits, &mut zero_points);
    }
    Ok(QuantizedMatrix {
        rows,
        cols,
        scheme,
        packed,
        scales,
        zero_points: (!scheme.symmetric).then_some(zero_points),
    })
}

impl QuantizedMatrix {
    /// The matrix the stored integers stand for, `rows × cols` row-major (what
    /// `MatMulNBits` multiplies by).
    pub fn dequantize(&self) -> Vec<f32> {
        let s = &self.scheme;
        let (blocks, bs) = (s.blocks(self.cols), s.block_size);
        let (row_bytes, zp_row) = (blocks * s.block_bytes(), s.zero_point_row_bytes(self.cols));
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            let row = &self.packed[r * row_bytes..(r + 1) * row_bytes];
            for c in 0..self.cols {
                let b = c / bs;
                let z = match &self.zero_points {
                    Some(zp) => unpack(&zp[r * zp_row..(r + 1) * zp_row], s.bits, b),
                    None => s.symmetric_zero_point(),
                };
                let q = unpack(row, s.bits, c) as f32;
                out.push((q - z as f32) * self.scales[r * blocks + b]);
            }
        }
        out
    }

    /// The largest error [`QuantizedMatrix::dequantize`] may show on each value of block
    /// `b` of row `r`: half a step, `scale / 2`.
    pub fn error_bound(&self, r: usize, b: usize) -> f32 {
        self.scales[r * self.scheme.blocks(self.cols) + b] / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn scheme(bits: usize, block_size: usize, symmetric: bool) -> Scheme {
        Scheme {
            bits,
            block_size,
            symmetric,
        }
    }

    fn schemes() -> Vec<Scheme> {
        let mut out = Vec::new();
        for bits in SUPPORTED_BITS {
            for bs in [16, 32, 128] {
                for sym in [false, true] {
                    out.push(scheme(bits, bs, sym));
                }
            }
        }
        out
    }

    /// Every value is within its block's bound (plus f32 rounding of the product).
    fn assert_round_trip(values: &[f32], rows: usize, cols: usize, s: Scheme) -> QuantizedMatrix {
        let q = quantize(values, rows, cols, s).unwrap();
        let back = q.dequantize();
        assert_eq!(back.len(), values.len());
        for r in 0..rows {
            for c in 0..cols {
                let (w, d) = (values[r * cols + c], back[r * cols + c]);
                let bound = q.error_bound(r, c / s.block_size);
                let slack = 1e-6 * w.abs().max(bound) + f32::MIN_POSITIVE;
                assert!(
                    (w - d).abs() <= bound + slack,
                    "{s:?} [{r},{c}]: {w} read back as {d}, bound {bound}"
                );
            }
        }
        q
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| rng.random_range(-1.0f32..1.0) * 0.05)
            .collect()
    }

    #[test]
    fn random_matrices_round_trip_within_half_a_step() {
        for s in schemes() {
            assert_round_trip(&random(7 * 256, 1), 7, 256, s);
        }
    }

    #[test]
    fn half_a_step_is_tight_for_4_bits() {
        // The bound is not loose: with 16 levels over a spread range, some value of a
        // random block errs by more than a quarter step.
        let s = scheme(4, 32, false);
        let values = random(64 * 32, 2);
        let q = assert_round_trip(&values, 64, 32, s);
        let back = q.dequantize();
        let worst = (0..64)
            .map(|r| {
                (0..32)
                    .map(|c| (values[r * 32 + c] - back[r * 32 + c]).abs() / q.error_bound(r, 0))
                    .fold(0f32, f32::max)
            })
            .fold(0f32, f32::max);
        assert!(worst > 0.5, "worst error only {worst} of the bound");
    }

    #[test]
    fn rows_not_a_multiple_of_the_block_size() {
        for s in schemes() {
            for cols in [s.block_size - 1, s.block_size + 3, 3 * s.block_size + 5, 5] {
                let q = assert_round_trip(&random(3 * cols, cols as u64), 3, cols, s);
                let blocks = cols.div_ceil(s.block_size);
                assert_eq!(q.scales.len(), 3 * blocks);
                assert_eq!(q.packed.len(), 3 * blocks * s.block_bytes());
                if let Some(zp) = &q.zero_points {
                    assert_eq!(zp.len(), 3 * (blocks * s.bits).div_ceil(8));
                }
            }
        }
    }

    #[test]
    fn blocks_of_zeros_read_back_as_zeros() {
        for s in schemes() {
            let mut values = random(2 * 64, 4);
            values[..64].fill(0.0);
            let q = assert_round_trip(&values, 2, 64, s);
            assert!(q.dequantize()[..64].iter().all(|&v| v == 0.0), "{s:?}");
        }
    }

    #[test]
    fn a_single_outlier_costs_only_its_own_block() {
        for s in schemes() {
            let cols = 4 * s.block_size;
            let mut values = random(cols, 5);
            values[1] = 40.0;
            let q = assert_round_trip(&values, 1, cols, s);
            // Its block's step grows with the outlier; the other blocks keep a fine one.
            assert!(q.scales[0] > 100.0 * q.scales[1], "{s:?}: {:?}", q.scales);
            // The outlier itself reads back within half a step.
            assert!((q.dequantize()[1] - 40.0).abs() <= q.error_bound(0, 0) * 1.0001);
        }
    }

    #[test]
    fn constant_blocks_are_exact_when_asymmetric() {
        let s = scheme(4, 16, false);
        let values = vec![0.3f32; 32];
        let q = quantize(&values, 1, 32, s).unwrap();
        for v in q.dequantize() {
            assert!((v - 0.3).abs() < 1e-6, "{v}");
        }
    }

    #[test]
    fn packing_puts_the_first_value_in_the_low_nibble() {
        // Symmetric 4-bit with scale 1: w = q - 8, so the bytes are predictable.
        let s = scheme(4, 16, true);
        let mut values: Vec<f32> = (0..16).map(|i| (i % 15) as f32 - 7.0).collect();
        values[0] = -7.0;
        values[15] = 7.0; // absmax 7 → scale 1
        let q = quantize(&values, 1, 16, s).unwrap();
        assert_eq!(q.scales, vec![1.0]);
        assert_eq!(q.packed[0], 1 | (2 << 4)); // -7 + 8 = 1, -6 + 8 = 2
        assert_eq!(q.packed[7] >> 4, 15);
    }

    #[test]
    fn unsupported_schemes_and_shapes_are_refused() {
        let v = random(64, 6);
        for (bits, bs) in [(3, 32), (2, 32), (4, 48), (4, 8), (8, 512)] {
            let e = quantize(&v, 2, 32, scheme(bits, bs, false)).unwrap_err();
            assert!(e.to_string().contains("MatMulNBits"), "{e}");
        }
        let e = quantize(&v, 3, 32, scheme(4, 32, false)).unwrap_err();
        assert!(e.to_string().contains("3 × 32"), "{e}");
        let e = quantize(&[], 0, 32, scheme(4, 32, false)).unwrap_err();
        assert!(e.to_string().contains("0 × 32"), "{e}");
        let mut nan = v.clone();
        nan[3] = f32::NAN;
        let e = quantize(&nan, 2, 32, scheme(4, 32, false)).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }
}
