//! f32 → GGML block formats (Q4_0, Q4_1, Q8_0), the inverse of [`crate::qmatmul::dequantize_row`].
//!
//! Byte for byte ggml's reference quantizers (`quantize_row_q4_0_ref`, `quantize_row_q4_1_ref`,
//! `quantize_row_q8_0_ref` in ggml-quants.c), so a file Ingot exports holds what llama.cpp's
//! `convert_hf_to_gguf.py` / `llama-quantize` (no importance matrix) would write for the same
//! weights. The arithmetic order matters for that: every value is multiplied by the reciprocal of
//! the scale (`x * id`), not divided by the scale, exactly as ggml does.
//!
//! Per block of 32 values x₀..x₃₁, scales stored as f16 (round to nearest even, as
//! `GGML_FP32_TO_FP16`):
//! - Q4_0: `max` is the value of largest magnitude (the first one on ties), d = max / -8,
//!   qᵢ = min(15, trunc(xᵢ/d + 8.5)), so w = (q - 8)·d puts `max` exactly at q = 0.
//! - Q4_1: d = (max - min) / 15, m = min, qᵢ = min(15, trunc((xᵢ - min)/d + 0.5)).
//! - Q8_0: d = max|x| / 127, qᵢ = round(xᵢ/d) (half away from zero, as C's `roundf`).
//!
//! A zero scale (an all-zero block, or a constant block for Q4_1) gives 1/d = 0, so every q is the
//! format's zero point and the block dequantizes to exactly 0 (Q4_0, Q8_0) or to m (Q4_1).
//! 4-bit values are packed two to a byte: byte i holds element i in its low nibble and element
//! i + 16 in its high one.
//!
//! Dimension legend: n rows, k values per row (a multiple of 32).

use candle_core::Result;
use half::f16;
use rayon::prelude::*;

use crate::qmatmul::{QFormat, QMatrix, BLOCK};

/// Quantize `values` (any number of whole blocks of 32) into `format`'s block bytes.
///
/// Errors when `values.len()` is not a multiple of 32, or a value is NaN or infinite (a block
/// holding one has no meaningful scale; ggml would write an inf or NaN scale).
pub fn quantize_row(format: QFormat, values: &[f32]) -> Result<Vec<u8>> {
    if !values.len().is_multiple_of(BLOCK) {
        candle_core::bail!(
            "cannot quantize {} values to {format:?}: not a multiple of the block size {BLOCK}",
            values.len()
        )
    }
    check_finite(format, values)?;
    let mut out = vec![0u8; values.len() / BLOCK * format.block_bytes()];
    quantize_into(format, values, &mut out);
    Ok(out)
}

/// Quantize an (n, k) row-major matrix into a [`QMatrix`], rows in parallel.
pub fn quantize_matrix(format: QFormat, values: &[f32], n: usize, k: usize) -> Result<QMatrix> {
    if values.len() != n * k {
        candle_core::bail!("cannot quantize a ({n}, {k}) matrix from {} values", values.len())
    }
    if !k.is_multiple_of(BLOCK) {
        candle_core::bail!("cannot quantize a ({n}, {k}) matrix to {format:?}: width {k} is not a multiple of {BLOCK}")
    }
    check_finite(format, values)?;
    let row_bytes = k / BLOCK * format.block_bytes();
    let mut data = vec![0u8; n * row_bytes];
    if k > 0 {
        data.par_chunks_mut(row_bytes).zip(values.par_chunks(k)).for_each(|(dst, row)| quantize_into(format, row, dst));
    }
    QMatrix::new(format, n, k, &data)
}

fn check_finite(format: QFormat, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => candle_core::bail!("cannot quantize to {format:?}: value {i} is {}, not a finite number", values[i]),
        None => Ok(()),
    }
}

/// `values` (whole blocks) → `out` (exactly their block bytes); callers check the lengths.
fn quantize_into(format: QFormat, values: &[f32], out: &mut [u8]) {
    for (x, block) in values.chunks_exact(BLOCK).zip(out.chunks_exact_mut(format.block_bytes())) {
        match format {
            QFormat::Q4_0 => quantize_block_q4_0(x, block),
            QFormat::Q4_1 => quantize_block_q4_1(x, block),
            QFormat::Q8_0 => quantize_block_q8_0(x, block),
        }
    }
}

/// 1/d, or 0 for a zero scale (ggml: `d ? 1.0f/d : 0.0f`).
fn reciprocal(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Two 4-bit values per byte: element j low, element j + 16 high.
fn pack_nibbles(x: &[f32], qs: &mut [u8], q: impl Fn(f32) -> u8) {
    for j in 0..BLOCK / 2 {
        qs[j] = q(x[j]) | (q(x[j + BLOCK / 2]) << 4);
    }
}

/// `quantize_row_q4_0_ref`: f16 d, 16 bytes of nibbles.
fn quantize_block_q4_0(x: &[f32], block: &mut [u8]) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = reciprocal(d);
    block[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    // `as u8` saturates (ggml casts through int8_t; the two agree for every in-range value).
    pack_nibbles(x, &mut block[2..18], |v| 15u8.min((v * id + 8.5) as u8));
}

/// `quantize_row_q4_1_ref`: f16 d, f16 m, 16 bytes of nibbles.
fn quantize_block_q4_1(x: &[f32], block: &mut [u8]) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 15.0;
    let id = reciprocal(d);
    block[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    block[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
    pack_nibbles(x, &mut block[4..20], |v| 15u8.min(((v - min) * id + 0.5) as u8));
}

/// `quantize_row_q8_0_ref`: f16 d, 32 i8.
fn quantize_block_q8_0(x: &[f32], block: &mut [u8]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = reciprocal(d);
    block[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (q, &v) in block[2..34].iter_mut().zip(x) {
        *q = (v * id).round() as i8 as u8;
    }
}
