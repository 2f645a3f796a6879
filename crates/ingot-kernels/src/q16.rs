//! Block-quantized weight rows (Q4_0, Q4_1, Q8_0) dotted with an activation vector quantized per
//! block of 32 to 16-bit integers: the decode loop's fast path.
//!
//! Why 16 bits and not llama.cpp's 8: 8-bit activations move SmolLM2's logits by up to ~0.8 and
//! flip its greedy answer (see [`crate::qmatmul`]); a 16-bit block has 256 times finer steps
//! (relative error ≤ 2⁻¹⁶ of the block's largest value), below the weights' own 4-bit error.
//! The products are integer: weights widened to i16, multiplied and added pairwise into i32
//! (`vpmaddwd`, AVX-512BW or AVX2), one conversion to f32 and one FMA per block instead of the f32
//! path's two conversions, two scalings and two FMAs. Per block of weight scale dw (and minimum m,
//! or -8·dw for Q4_0) and activation scale dx:
//!   Σ wᵢxᵢ ≈ dw·dx · Σ qᵢ·xqᵢ + m · Σ xᵢ
//! with Σ xᵢ the exact f32 sum, computed once per input.
//!
//! Legend: k input features (a multiple of 32 for block formats); rows are weight rows, up to
//! [`ROWS`] of them against the same x at a time.

use crate::qmatmul::{available_isas, f16_at, Isa, QFormat, BLOCK};

/// An activation vector as the kernels read it: per block of 32, the values as i16 with their
/// scale, and the exact f32 sum (also what [`crate::qmatmul::QMatrix::matvec_rows`] reads).
#[derive(Clone, Debug, Default)]
pub struct Q16Input {
    q: Vec<i16>,
    scale: Vec<f32>,
    sums: Vec<f32>,
}

impl Q16Input {
    /// Buffers for vectors of up to `k` values (a partial last block is padded with zeros).
    pub fn new(k: usize) -> Self {
        let blocks = k.div_ceil(BLOCK);
        Self { q: vec![0; blocks * BLOCK], scale: vec![0.0; blocks], sums: vec![0.0; blocks] }
    }

    /// Take `x`: its block sums always, its 16-bit values when `quantize` (the fast path).
    pub fn set(&mut self, x: &[f32], quantize: bool) {
        let blocks = x.len().div_ceil(BLOCK);
        assert!(blocks <= self.scale.len(), "{} values do not fit a Q16Input of {} blocks", x.len(), self.scale.len());
        for b in 0..blocks {
            let xb = &x[b * BLOCK..x.len().min((b + 1) * BLOCK)];
            self.sums[b] = xb.iter().sum();
            if !quantize {
                continue;
            }
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / i16::MAX as f32;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let qb = &mut self.q[b * BLOCK..(b + 1) * BLOCK];
            for (i, q) in qb.iter_mut().enumerate() {
                *q = xb.get(i).map_or(0, |v| (v * inv).round() as i16);
            }
            self.scale[b] = d;
        }
    }

    /// Σ x per block.
    pub fn sums(&self) -> &[f32] {
        &self.sums
    }

    /// The quantized values (a multiple of 32) and their per-block scales.
    pub fn values(&self) -> (&[i16], &[f32]) {
        (&self.q, &self.scale)
    }
}

/// The dot product of one weight row (k/32 blocks of `format`) with `x`, on the fastest path.
#[inline]
pub fn dot_q16(format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
    debug_assert!(k.is_multiple_of(BLOCK) && x.q.len() >= k && wrow.len() >= k / BLOCK * format.block_bytes());
    match best() {
        // SAFETY: best() returns a path the CPU reported; the shapes are the caller's contract
        // (QMatrix::matvec_rows_q16 checks them).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::dot_avx512(format, wrow, x, k) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::dot_avx2(format, wrow, x, k) },
        _ => dot_q16_scalar(format, wrow, x, k),
    }
}

/// Rows at a time in [`dot_q16_rows`]: their loads overlap, and each block of x is read once.
pub const ROWS: usize = 4;

/// `out[i] = row i · x` for `out.len()` ≤ [`ROWS`] consecutive weight rows of `row_bytes` each,
/// starting at `wrows`, on the fastest path.
#[inline]
pub fn dot_q16_rows(format: QFormat, wrows: &[u8], row_bytes: usize, x: &Q16Input, k: usize, out: &mut [f32]) {
    debug_assert!(out.len() <= ROWS && wrows.len() >= out.len() * row_bytes);
    match best() {
        // SAFETY: as dot_q16; the rows lie inside `wrows` (the caller's contract).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe {
            match out.len() {
                4 => x86::rows_avx512::<4>(format, wrows, row_bytes, x, k, out),
                3 => x86::rows_avx512::<3>(format, wrows, row_bytes, x, k, out),
                2 => x86::rows_avx512::<2>(format, wrows, row_bytes, x, k, out),
                1 => x86::rows_avx512::<1>(format, wrows, row_bytes, x, k, out),
                _ => {}
            }
        },
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = dot_q16(format, &wrows[i * row_bytes..(i + 1) * row_bytes], x, k);
            }
        }
    }
}

/// [`dot_q16`] on a named path (tests run each path the CPU has). Panics if the CPU lacks it
/// or the slices are short.
pub fn dot_q16_isa(isa: Isa, format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
    assert!(k.is_multiple_of(BLOCK) && x.q.len() >= k && wrow.len() >= k / BLOCK * format.block_bytes());
    assert!(q16_isas().contains(&isa), "{isa:?} is not supported by this CPU");
    match isa {
        // SAFETY: the CPU has the path and the slices hold k values (asserted above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::dot_avx512(format, wrow, x, k) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::dot_avx2(format, wrow, x, k) },
        _ => dot_q16_scalar(format, wrow, x, k),
    }
}

/// The paths of this kernel the CPU can run, fastest first (AVX-512 here needs BW as well).
pub fn q16_isas() -> Vec<Isa> {
    let mut isas = available_isas();
    #[cfg(target_arch = "x86_64")]
    {
        let f16c = std::is_x86_feature_detected!("f16c");
        let bw = std::is_x86_feature_detected!("avx512bw") && f16c;
        isas.retain(|&i| match i {
            Isa::Avx512 => bw,
            Isa::Avx2 => f16c,
            Isa::Scalar => true,
        });
    }
    isas
}

fn best() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| q16_isas()[0])
}

/// The portable version, straight from the formula above (integer products, f32 per block).
pub fn dot_q16_scalar(format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
    let bb = format.block_bytes();
    let mut total = 0f32;
    for (b, block) in wrow.chunks_exact(bb).take(k / BLOCK).enumerate() {
        let xq = &x.q[b * BLOCK..(b + 1) * BLOCK];
        let dw = f16_at(block, 0);
        let (dot, min) = match format {
            QFormat::Q4_0 | QFormat::Q4_1 => {
                let (min, qs) = match format {
                    QFormat::Q4_0 => (-8.0 * dw, &block[2..18]),
                    _ => (f16_at(block, 2), &block[4..20]),
                };
                let mut s = 0i32;
                for i in 0..16 {
                    s += (qs[i] & 0x0F) as i32 * xq[i] as i32 + (qs[i] >> 4) as i32 * xq[i + 16] as i32;
                }
                (s, min)
            }
            QFormat::Q8_0 => ((0..BLOCK).map(|i| block[2 + i] as i8 as i32 * xq[i] as i32).sum(), 0.0),
        };
        total += dw * x.scale[b] * dot as f32 + min * x.sums[b];
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Q16Input, QFormat, BLOCK};
    use std::arch::x86_64::*;

    /// Weight scale (and minimum) of a block, by F16C.
    #[inline]
    #[target_feature(enable = "f16c")]
    unsafe fn scales(format: QFormat, block: *const u8) -> (f32, f32) {
        // Both f16 values of the block's head (Q4_1: d, m) in one conversion.
        let both = _mm_cvtph_ps(_mm_cvtsi32_si128((block as *const i32).read_unaligned()));
        let d = _mm_cvtss_f32(both);
        let min = match format {
            QFormat::Q4_0 => -8.0 * d,
            QFormat::Q4_1 => _mm_cvtss_f32(_mm_shuffle_ps(both, both, 1)),
            QFormat::Q8_0 => 0.0,
        };
        (d, min)
    }

    /// Distance in bytes of the software prefetch ahead of the block being read.
    const PREFETCH: usize = 512;

    /// One row: [`rows_avx512`] with R = 1.
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub unsafe fn dot_avx512(format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
        let mut out = [0f32];
        rows_avx512::<1>(format, wrow, 0, x, k, &mut out);
        out[0]
    }

    /// R consecutive rows against the same x: R independent accumulators, x's block loaded once.
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub unsafe fn rows_avx512<const R: usize>(
        format: QFormat,
        wrows: &[u8],
        row_bytes: usize,
        x: &Q16Input,
        k: usize,
        out: &mut [f32],
    ) {
        debug_assert!(out.len() == R && wrows.len() >= R * row_bytes);
        let bb = format.block_bytes();
        let blocks = k / BLOCK;
        let mask = _mm_set1_epi8(0x0F);
        let (w, xq, xs, xsum) = (wrows.as_ptr(), x.q.as_ptr(), x.scale.as_ptr(), x.sums.as_ptr());
        let mut acc = [_mm512_setzero_ps(); R];
        let mut mins = [0f32; R];
        for b in 0..blocks {
            let xv = _mm512_loadu_si512(xq.add(b * BLOCK) as *const _);
            let (dx, sx) = (*xs.add(b), *xsum.add(b));
            for r in 0..R {
                let block = w.add(r * row_bytes + b * bb);
                _mm_prefetch(block.wrapping_add(PREFETCH) as *const i8, _MM_HINT_T0); // never faults
                let (dw, min) = scales(format, block);
                let q = match format {
                    QFormat::Q4_0 | QFormat::Q4_1 => {
                        let off = if format == QFormat::Q4_0 { 2 } else { 4 };
                        let raw = _mm_loadu_si128(block.add(off) as *const __m128i);
                        let lo = _mm_and_si128(raw, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
                        _mm512_cvtepu8_epi16(_mm256_set_m128i(hi, lo))
                    }
                    QFormat::Q8_0 => _mm512_cvtepi8_epi16(_mm256_loadu_si256(block.add(2) as *const __m256i)),
                };
                let dot = _mm512_cvtepi32_ps(_mm512_madd_epi16(q, xv));
                acc[r] = _mm512_fmadd_ps(dot, _mm512_set1_ps(dw * dx), acc[r]);
                mins[r] += min * sx;
            }
        }
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]) + mins[r];
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// The same on 256-bit vectors: a block is two halves of 16 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_avx2(format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
        let bb = format.block_bytes();
        let blocks = k / BLOCK;
        let mask = _mm_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        let (w, xq, xs, xsum) = (wrow.as_ptr(), x.q.as_ptr(), x.scale.as_ptr(), x.sums.as_ptr());
        for b in 0..blocks {
            let block = w.add(b * bb);
            let (dw, min) = scales(format, block);
            let (q0, q1) = match format {
                QFormat::Q4_0 | QFormat::Q4_1 => {
                    let off = if format == QFormat::Q4_0 { 2 } else { 4 };
                    let raw = _mm_loadu_si128(block.add(off) as *const __m128i);
                    let lo = _mm_and_si128(raw, mask);
                    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
                    (_mm256_cvtepu8_epi16(lo), _mm256_cvtepu8_epi16(hi))
                }
                QFormat::Q8_0 => {
                    let p = block.add(2);
                    (
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i)),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(16) as *const __m128i)),
                    )
                }
            };
            let xp = xq.add(b * BLOCK);
            let p0 = _mm256_madd_epi16(q0, _mm256_loadu_si256(xp as *const __m256i));
            let p1 = _mm256_madd_epi16(q1, _mm256_loadu_si256(xp.add(16) as *const __m256i));
            let dot = _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1));
            acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(dw * *xs.add(b)), acc);
            mins += min * *xsum.add(b);
        }
        hsum(acc) + mins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qmatmul::{dequantize_row, QMatrix};
    use crate::quantize::quantize_row;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand::rngs::StdRng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0) * scale).collect()
    }

    /// Every path against the scalar reference, and all of them against the exact f32 dot
    /// product of the dequantized weights within the 16-bit activations' error bound.
    #[test]
    fn every_path_matches_the_reference_and_the_exact_product() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for format in [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0] {
            for (n, k) in [(1, 32), (3, 96), (7, 576), (5, 1536), (2, 4064)] {
                let w = random(&mut rng, n * k, 0.7);
                let bytes: Vec<u8> = w.chunks(k).flat_map(|r| quantize_row(format, r).unwrap()).collect();
                let m = QMatrix::new(format, n, k, &bytes).unwrap();
                // Blocks of very different magnitude, one all zero.
                let mut xv = random(&mut rng, k, 3.0);
                xv[..BLOCK].iter_mut().for_each(|v| *v *= 1e-3);
                if k > BLOCK {
                    xv[BLOCK..2 * BLOCK].iter_mut().for_each(|v| *v = 0.0);
                }
                let mut x = Q16Input::new(k + 7);
                x.set(&xv, true);
                let row_bytes = k / BLOCK * format.block_bytes();
                for j in 0..n {
                    let wrow = &m.raw()[j * row_bytes..(j + 1) * row_bytes];
                    let mut deq = vec![0f32; k];
                    dequantize_row(format, wrow, &mut deq);
                    let exact: f64 = deq.iter().zip(&xv).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let magnitude: f64 = deq.iter().zip(&xv).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                    let reference = dot_q16_scalar(format, wrow, &x, k);
                    // 16-bit steps: each |x| off by at most half a step of its block's largest.
                    assert!(
                        ((reference as f64) - exact).abs() <= 1e-4 * magnitude + 1e-5,
                        "{format:?} ({n}, {k}) row {j}: {reference} vs exact {exact}"
                    );
                    for isa in q16_isas() {
                        let got = dot_q16_isa(isa, format, wrow, &x, k);
                        assert!(
                            (got - reference).abs() <= 1e-5 * (magnitude as f32) + 1e-6,
                            "{isa:?} {format:?} ({n}, {k}) row {j}: {got} vs {reference}"
                        );
                    }
                }
            }
        }
    }

    /// Several rows at once give each row's own dot product.
    #[test]
    fn rows_at_a_time_match_one_at_a_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for format in [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0] {
            let (n, k) = (7, 352);
            let w = random(&mut rng, n * k, 0.5);
            let bytes: Vec<u8> = w.chunks(k).flat_map(|r| quantize_row(format, r).unwrap()).collect();
            let mut x = Q16Input::new(k);
            x.set(&random(&mut rng, k, 2.0), true);
            let row_bytes = k / BLOCK * format.block_bytes();
            for start in 0..n {
                for count in 1..=ROWS.min(n - start) {
                    let mut out = vec![0f32; count];
                    dot_q16_rows(format, &bytes[start * row_bytes..], row_bytes, &x, k, &mut out);
                    for (i, o) in out.iter().enumerate() {
                        let wrow = &bytes[(start + i) * row_bytes..(start + i + 1) * row_bytes];
                        let one = dot_q16_scalar(format, wrow, &x, k);
                        assert!(
                            (o - one).abs() <= 1e-4 * (1.0 + one.abs()),
                            "{format:?} rows {start}+{count}: {o} vs {one}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sums_are_kept_without_quantizing_and_partial_blocks_pad() {
        let x: Vec<f32> = (0..40).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut q = Q16Input::new(40);
        q.set(&x, false);
        assert_eq!(q.sums()[0], x[..32].iter().sum::<f32>());
        assert_eq!(q.sums()[1], x[32..].iter().sum::<f32>());
        q.set(&x, true);
        let (values, scales) = q.values();
        assert_eq!(values.len(), 64);
        assert!(values[40..].iter().all(|&v| v == 0));
        for (i, v) in x.iter().enumerate() {
            let back = values[i] as f32 * scales[i / 32];
            assert!((back - v).abs() <= scales[i / 32] * 0.5 + 1e-6, "value {i}: {back} vs {v}");
        }
    }
}
