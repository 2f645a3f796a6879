//! y = x · Wᵀ with W stored in a GGML block format (Q4_0, Q4_1, Q8_0) and x in f32.
//!
//! Why our own: candle's CPU path quantizes the activations to 8 bits before the dot product (as
//! llama.cpp does) and its Q4_1 dot product is scalar. The 8-bit activations are not free in
//! accuracy: on SmolLM2-135M Q4_1 they flip the greedy answer to "What is the capital of
//! France?" from "The capital of France is Paris." (exact f32 activations, and an f64 numpy
//! reference) to "L'Étoile, ...". Here activations stay f32 and weights are expanded block by
//! block in registers, so the only error is the weights' own quantization.
//!
//! Per block of 32 weights with scale d (and minimum m for Q4_1, -8d for Q4_0):
//!   Σ wᵢxᵢ = d · Σ qᵢxᵢ + m · Σ xᵢ
//! so the inner loop is integer-to-float conversion and FMA; Σ xᵢ per block is computed once per
//! input row and shared by all output rows.
//!
//! Small batches (decode, m ≤ [`FUSED_MAX_BATCH`]) run the fused kernel, parallel over output rows;
//! larger ones (prefill) dequantize W to f32 in parallel and use candle's GEMM, where the cost of
//! expanding W once is repaid across many rows.
//!
//! Dimension legend: m input rows, k input features (a multiple of 32), n output features.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use half::f16;
use rayon::prelude::*;

/// Elements per block in every supported format.
pub const BLOCK: usize = 32;

/// Rows one pass of the fused kernel holds (one accumulator register each: 16 of AVX-512's 32;
/// the AVX2 path, with 16 registers in all, splits a pass in two); more are done in passes.
pub const FUSED_MAX_ROWS: usize = 16;

/// Batches up to this many rows use the fused kernel (in passes of at most [`FUSED_MAX_ROWS`]);
/// larger ones dequantize and GEMM. From `examples/qmatmul-batch` on SmolLM2-135M's shapes, 2
/// threads, ms per call: one layer's projections at 16 rows 1.3 fused against 1.6 expanded, the
/// tied 49k-row head 5.9 against 38 (expanding it is most of that); at 32 rows the layer is even
/// (2.1 / 2.1) and the head still gains (17 / 41); at 64 the layer loses (4.4 / 3.1).
pub const FUSED_MAX_BATCH: usize = 32;

/// Parallel tasks per thread in a matmul: enough to balance, few enough that dispatch stays cheap
/// next to a ~20-50 µs decode matmul (SmolLM2 decode measured 62, 65 and 70 tokens/s at 1, 2, 4).
const TASKS_PER_THREAD: usize = 4;

/// The block formats this kernel reads (ggml-common.h layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QFormat {
    /// f16 d, 16 bytes of 4-bit q: w = (q - 8)·d
    Q4_0,
    /// f16 d, f16 m, 16 bytes of 4-bit q: w = q·d + m
    Q4_1,
    /// f16 d, 32 i8 q: w = q·d
    Q8_0,
}

impl QFormat {
    pub fn block_bytes(self) -> usize {
        match self {
            QFormat::Q4_0 => 18,
            QFormat::Q4_1 => 20,
            QFormat::Q8_0 => 34,
        }
    }
}

/// A quantized (n, k) weight matrix, rows of blocks back to back.
#[derive(Clone, Debug)]
pub struct QMatrix {
    format: QFormat,
    n: usize,
    k: usize,
    data: std::sync::Arc<[u8]>,
}

impl QMatrix {
    /// Wrap raw GGML block bytes of an (n, k) matrix.
    pub fn new(format: QFormat, n: usize, k: usize, data: &[u8]) -> Result<Self> {
        if !k.is_multiple_of(BLOCK) {
            candle_core::bail!("quantized matrix width {k} is not a multiple of {BLOCK}")
        }
        let expected = n * (k / BLOCK) * format.block_bytes();
        if data.len() != expected {
            candle_core::bail!("{format:?} matrix ({n}, {k}) needs {expected} bytes, got {}", data.len())
        }
        Ok(Self { format, n, k, data: data.into() })
    }

    /// Stack matrices with the same format and width into one (Σn, k) matrix, so projections that
    /// read the same input (q, k, v; gate, up) run as one kernel call.
    pub fn concat_rows(parts: &[&QMatrix]) -> Option<QMatrix> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.format != first.format || p.k != first.k) {
            return None;
        }
        let data: Vec<u8> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Some(QMatrix { format: first.format, n: parts.iter().map(|p| p.n).sum(), k: first.k, data: data.into() })
    }

    pub fn format(&self) -> QFormat {
        self.format
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// The stored block bytes.
    pub fn raw(&self) -> &[u8] {
        &self.data
    }

    fn row(&self, j: usize) -> &[u8] {
        let row_bytes = (self.k / BLOCK) * self.format.block_bytes();
        &self.data[j * row_bytes..(j + 1) * row_bytes]
    }

    /// `out[i] = W[rows.start + i] · x` for one input row `x` (k values) with its per-block sums
    /// `xsum` ([`block_sums`]): a share of a matrix-vector product, for callers that split the
    /// rows among threads themselves (the decode loop).
    pub fn matvec_rows(&self, x: &[f32], xsum: &[f32], rows: std::ops::Range<usize>, out: &mut [f32]) {
        assert!(x.len() == self.k && xsum.len() == self.k / BLOCK, "input is not 1 x {}", self.k);
        assert!(rows.end <= self.n && out.len() == rows.len(), "rows {rows:?} of {}", self.n);
        for (o, j) in out.iter_mut().zip(rows) {
            dot_rows(self.format, self.row(j), x, xsum, self.k, std::slice::from_mut(o));
        }
    }

    /// [`QMatrix::matvec_rows`] with the input quantized per block to 16 bits
    /// ([`crate::q16`]): the decode loop's fast path.
    pub fn matvec_rows_q16(&self, x: &crate::q16::Q16Input, rows: std::ops::Range<usize>, out: &mut [f32]) {
        assert!(x.values().0.len() >= self.k, "input holds fewer than {} values", self.k);
        assert!(rows.end <= self.n && out.len() == rows.len(), "rows {rows:?} of {}", self.n);
        let row_bytes = (self.k / BLOCK) * self.format.block_bytes();
        for (c, chunk) in out.chunks_mut(crate::q16::ROWS).enumerate() {
            let first = rows.start + c * crate::q16::ROWS;
            let w = &self.data[first * row_bytes..(first + chunk.len()) * row_bytes];
            crate::q16::dot_q16_rows(self.format, w, row_bytes, x, self.k, chunk);
        }
    }

    /// Row `j` expanded to f32 into `out` (k values): an embedding lookup.
    pub fn dequantize_row_into(&self, j: usize, out: &mut [f32]) {
        assert!(j < self.n && out.len() == self.k);
        dequantize_row(self.format, self.row(j), out);
    }

    /// The naive reference: expand every weight to f32 (n·k values).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.n * self.k];
        out.par_chunks_mut(self.k).enumerate().for_each(|(j, dst)| dequantize_row(self.format, self.row(j), dst));
        out
    }

    /// y (m, n) = x (m, k) · Wᵀ, x row-major.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len(), m * k, "input is not ({m}, {k})");
        let mut y = vec![0f32; m * n];
        if m == 0 || n == 0 {
            return y;
        }
        // Σ xᵢ per (row, block), shared by every output row.
        let blocks = k / BLOCK;
        let xsum: Vec<f32> = x.chunks(BLOCK).map(|b| b.iter().sum()).collect();
        let chunk = n.div_ceil(TASKS_PER_THREAD * rayon::current_num_threads()).max(16);
        // Passes of near-equal size (9 rows: 5 + 4, not 8 + 1), since a pass costs the expansion
        // of W's row whatever its size.
        let passes = m.div_ceil(FUSED_MAX_ROWS);
        let row_tiles = |j: usize, out: &mut [f32]| {
            // out holds the m results of output row j.
            for p in 0..passes {
                let (r0, r1) = (p * m / passes, (p + 1) * m / passes);
                let rows = r1 - r0;
                let xs = &x[r0 * k..(r0 + rows) * k];
                dot_rows(
                    self.format,
                    self.row(j),
                    xs,
                    &xsum[r0 * blocks..(r0 + rows) * blocks],
                    k,
                    &mut out[r0..r0 + rows],
                );
            }
        };
        if m == 1 {
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, ys)| {
                for (i, yj) in ys.iter_mut().enumerate() {
                    row_tiles(c * chunk + i, std::slice::from_mut(yj));
                }
            });
        } else {
            // Compute Yᵀ (n, m) so each task owns a contiguous slice, then transpose.
            let mut yt = vec![0f32; n * m];
            yt.par_chunks_mut(chunk * m).enumerate().for_each(|(c, part)| {
                for (i, out) in part.chunks_mut(m).enumerate() {
                    row_tiles(c * chunk + i, out);
                }
            });
            y.par_chunks_mut(n).enumerate().for_each(|(r, yr)| {
                for (j, v) in yr.iter_mut().enumerate() {
                    *v = yt[j * m + r];
                }
            });
        }
        y
    }
}

/// Σ x over each block of 32 (`out.len()` = x.len() / 32), which [`QMatrix::matvec_rows`] needs.
pub fn block_sums(x: &[f32], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(x.chunks_exact(BLOCK)) {
        *o = b.iter().sum();
    }
}

pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Expand one row of blocks to f32, straight from the format description.
pub fn dequantize_row(format: QFormat, row: &[u8], out: &mut [f32]) {
    let bb = format.block_bytes();
    for (block, dst) in row.chunks_exact(bb).zip(out.chunks_exact_mut(BLOCK)) {
        match format {
            QFormat::Q4_0 | QFormat::Q4_1 => {
                let d = f16_at(block, 0);
                let (min, qs) = match format {
                    QFormat::Q4_0 => (-8.0 * d, &block[2..18]),
                    _ => (f16_at(block, 2), &block[4..20]),
                };
                for i in 0..16 {
                    dst[i] = (qs[i] & 0x0F) as f32 * d + min;
                    dst[i + 16] = (qs[i] >> 4) as f32 * d + min;
                }
            }
            QFormat::Q8_0 => {
                let d = f16_at(block, 0);
                for i in 0..BLOCK {
                    dst[i] = block[2 + i] as i8 as f32 * d;
                }
            }
        }
    }
}

/// Instruction sets the fused kernel has a path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

/// The paths this CPU can run, fastest first.
pub fn available_isas() -> Vec<Isa> {
    let mut isas = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2);
        }
    }
    isas.push(Isa::Scalar);
    isas
}

#[inline]
fn best_isa() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| available_isas()[0])
}

/// Dot products of one weight row with up to FUSED_MAX_ROWS input rows, on the fastest path.
/// The hot loop: callers (`QMatrix::matmul`) guarantee the shapes, so no checks here beyond
/// debug assertions.
#[inline]
fn dot_rows(format: QFormat, wrow: &[u8], x: &[f32], xsum: &[f32], k: usize, out: &mut [f32]) {
    debug_assert!(out.len() <= FUSED_MAX_ROWS && x.len() >= out.len() * k);
    match best_isa() {
        // SAFETY: best_isa() only returns an ISA the CPU reported; shapes as documented on
        // dot_rows_isa, guaranteed by QMatrix::matmul.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::dot_rows(format, wrow, x, xsum, k, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::dot_rows(format, wrow, x, xsum, k, out) },
        _ => dot_rows_scalar(format, wrow, x, xsum, k, out),
    }
}

/// Dot products of one weight row (k/32 blocks) with `out.len()` ≤ FUSED_MAX_ROWS input rows of
/// x, given Σ x per block in `xsum`, on the named path (tests run every path the CPU has).
///
/// Panics if `isa` is not in [`available_isas`] or the slices are too short.
pub fn dot_rows_isa(isa: Isa, format: QFormat, wrow: &[u8], x: &[f32], xsum: &[f32], k: usize, out: &mut [f32]) {
    let rows = out.len();
    assert!(rows <= FUSED_MAX_ROWS && k.is_multiple_of(BLOCK));
    assert!(wrow.len() >= k / BLOCK * format.block_bytes() && x.len() >= rows * k && xsum.len() >= rows * (k / BLOCK));
    assert!(available_isas().contains(&isa), "{isa:?} is not supported by this CPU");
    match isa {
        // SAFETY: the CPU supports the instruction set (asserted above) and the slices hold the
        // blocks and rows the kernels read (asserted above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::dot_rows(format, wrow, x, xsum, k, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::dot_rows(format, wrow, x, xsum, k, out) },
        _ => dot_rows_scalar(format, wrow, x, xsum, k, out),
    }
}

/// Portable version of the fused kernel (also checked against the reference in tests).
pub fn dot_rows_scalar(format: QFormat, wrow: &[u8], x: &[f32], xsum: &[f32], k: usize, out: &mut [f32]) {
    let bb = format.block_bytes();
    let blocks = k / BLOCK;
    for (r, o) in out.iter_mut().enumerate() {
        let xr = &x[r * k..(r + 1) * k];
        let mut total = 0f32;
        for (b, block) in wrow.chunks_exact(bb).enumerate() {
            let xb = &xr[b * BLOCK..(b + 1) * BLOCK];
            let d = f16_at(block, 0);
            let (q_dot, min) = match format {
                QFormat::Q4_0 | QFormat::Q4_1 => {
                    let (min, qs) = match format {
                        QFormat::Q4_0 => (-8.0 * d, &block[2..18]),
                        _ => (f16_at(block, 2), &block[4..20]),
                    };
                    let mut s = 0f32;
                    for i in 0..16 {
                        s += (qs[i] & 0x0F) as f32 * xb[i] + (qs[i] >> 4) as f32 * xb[i + 16];
                    }
                    (s, min)
                }
                QFormat::Q8_0 => {
                    let s: f32 = (0..BLOCK).map(|i| block[2 + i] as i8 as f32 * xb[i]).sum();
                    (s, 0.0)
                }
            };
            total += d * q_dot + min * xsum[r * blocks + b];
        }
        *o = total;
    }
}

/// `match rows { 1 => f::<1>(args), ..., _ => f::<MAX>(args) }`: each SIMD path's kernel takes
/// its row count as a constant, so its accumulators stay in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! const_rows {
    ($rows:expr, $f:ident::<$max:tt> $args:tt, $($n:literal)*) => {
        match $rows {
            $($n => $f::<$n> $args,)*
            _ => $f::<$max> $args,
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{f16_at, QFormat, BLOCK};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// 8 bytes → 8 f32 (unsigned for 4-bit, signed for Q8_0).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn u8x8(v: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn i8x8(p: *const u8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }

    /// The row count as a constant, so the accumulators live in registers: at most 8 (of 16
    /// registers), so more rows run as two halves.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows(format: QFormat, wrow: &[u8], x: &[f32], xsum: &[f32], k: usize, out: &mut [f32]) {
        if out.len() > 8 {
            let half = out.len() / 2;
            let blocks = k / BLOCK;
            let (a, b) = out.split_at_mut(half);
            dot_rows(format, wrow, x, xsum, k, a);
            dot_rows(format, wrow, &x[half * k..], &xsum[half * blocks..], k, b);
            return;
        }
        const_rows!(out.len(), dot_rows_n::<8>(format, wrow, x, xsum, k, out), 1 2 3 4 5 6 7)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_rows_n<const R: usize>(
        format: QFormat,
        wrow: &[u8],
        x: &[f32],
        xsum: &[f32],
        k: usize,
        out: &mut [f32],
    ) {
        debug_assert!(out.len() == R && R <= 8);
        let bb = format.block_bytes();
        let blocks = k / BLOCK;
        let mut acc = [_mm256_setzero_ps(); R];
        let mut min_acc = [0f32; R];
        let mask = _mm_set1_epi8(0x0F);
        for b in 0..blocks {
            let block = &wrow[b * bb..(b + 1) * bb];
            let d = _mm256_set1_ps(f16_at(block, 0));
            // The block's 32 weights as 4 vectors of 8 f32 integers (before scaling).
            let q: [__m256; 4] = match format {
                QFormat::Q4_0 | QFormat::Q4_1 => {
                    let off = if format == QFormat::Q4_0 { 2 } else { 4 };
                    let raw = _mm_loadu_si128(block.as_ptr().add(off) as *const __m128i);
                    let lo = _mm_and_si128(raw, mask);
                    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
                    [u8x8(lo), u8x8(_mm_srli_si128(lo, 8)), u8x8(hi), u8x8(_mm_srli_si128(hi, 8))]
                }
                QFormat::Q8_0 => {
                    let p = block.as_ptr().add(2);
                    [i8x8(p), i8x8(p.add(8)), i8x8(p.add(16)), i8x8(p.add(24))]
                }
            };
            // Scaled once per block, shared by every row.
            let q = [_mm256_mul_ps(q[0], d), _mm256_mul_ps(q[1], d), _mm256_mul_ps(q[2], d), _mm256_mul_ps(q[3], d)];
            let min = match format {
                QFormat::Q4_0 => -8.0 * f16_at(block, 0),
                QFormat::Q4_1 => f16_at(block, 2),
                QFormat::Q8_0 => 0.0,
            };
            for r in 0..R {
                let xp = x.as_ptr().add(r * k + b * BLOCK);
                let mut a = _mm256_fmadd_ps(q[0], _mm256_loadu_ps(xp), acc[r]);
                a = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xp.add(8)), a);
                a = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xp.add(16)), a);
                acc[r] = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xp.add(24)), a);
                min_acc[r] += min * xsum[r * blocks + b];
            }
        }
        for r in 0..R {
            out[r] = hsum(acc[r]) + min_acc[r];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{dot_f32, f16_at, QFormat, BLOCK, FUSED_MAX_ROWS};
    use std::arch::x86_64::*;

    /// 16 lanes: a block is two vectors, so half the conversions and FMAs of the AVX2 path. The
    /// row count as a constant, so the accumulators live in registers.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_rows(format: QFormat, wrow: &[u8], x: &[f32], xsum: &[f32], k: usize, out: &mut [f32]) {
        const_rows!(out.len(), dot_rows_n::<{ FUSED_MAX_ROWS }>(format, wrow, x, xsum, k, out), 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    }

    /// Blocks whose minima are gathered before their Σ min · Σx term is added, as one dot product
    /// per row, out of the inner loop, for passes of more than [`FEW_ROWS`] rows; fewer rows keep
    /// a scalar FMA per row and block (at 1 row the gathered form timed slower in
    /// `examples/qmatmul-batch`, though this machine's noise is near the difference).
    const MIN_CHUNK: usize = 64;
    const FEW_ROWS: usize = 4;

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_rows_n<const R: usize>(
        format: QFormat,
        wrow: &[u8],
        x: &[f32],
        xsum: &[f32],
        k: usize,
        out: &mut [f32],
    ) {
        debug_assert!(out.len() == R && R <= FUSED_MAX_ROWS);
        let bb = format.block_bytes();
        let blocks = k / BLOCK;
        let mut acc = [_mm512_setzero_ps(); R];
        let mut min_acc = [0f32; R];
        let mut mins = [0f32; MIN_CHUNK];
        let mask = _mm_set1_epi8(0x0F);
        for c0 in (0..blocks).step_by(MIN_CHUNK) {
            let c1 = (c0 + MIN_CHUNK).min(blocks);
            for b in c0..c1 {
                let block = &wrow[b * bb..(b + 1) * bb];
                let d = _mm512_set1_ps(f16_at(block, 0));
                let (q0, q1, min) = match format {
                    QFormat::Q4_0 | QFormat::Q4_1 => {
                        let off = if format == QFormat::Q4_0 { 2 } else { 4 };
                        let raw = _mm_loadu_si128(block.as_ptr().add(off) as *const __m128i);
                        let lo = _mm_and_si128(raw, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
                        let min = if format == QFormat::Q4_0 { -8.0 * f16_at(block, 0) } else { f16_at(block, 2) };
                        (
                            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)),
                            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)),
                            min,
                        )
                    }
                    QFormat::Q8_0 => {
                        let p = block.as_ptr().add(2);
                        let a = _mm_loadu_si128(p as *const __m128i);
                        let c = _mm_loadu_si128(p.add(16) as *const __m128i);
                        (_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(a)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)), 0.0)
                    }
                };
                mins[b - c0] = min;
                // Scaled once per block, shared by every row.
                let (q0, q1) = (_mm512_mul_ps(q0, d), _mm512_mul_ps(q1, d));
                for r in 0..R {
                    let xp = x.as_ptr().add(r * k + b * BLOCK);
                    let a = _mm512_fmadd_ps(q0, _mm512_loadu_ps(xp), acc[r]);
                    acc[r] = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xp.add(16)), a);
                    if R <= FEW_ROWS {
                        min_acc[r] += min * xsum[r * blocks + b];
                    }
                }
            }
            if R > FEW_ROWS && format != QFormat::Q8_0 {
                for r in 0..R {
                    min_acc[r] += dot_f32(&mins[..c1 - c0], &xsum[r * blocks + c0..r * blocks + c1]);
                }
            }
        }
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]) + min_acc[r];
        }
    }
}

/// Σ aᵢbᵢ over 16 independent partial sums (a single running sum is a chain the compiler may
/// not reorder, and stays scalar); inlined into the SIMD paths, where it vectorizes.
#[inline(always)]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let split = a.len().min(b.len()) / LANES * LANES;
    let mut acc = [0f32; LANES];
    for (x, y) in a[..split].chunks_exact(LANES).zip(b[..split].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a[split..].iter().zip(&b[split..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// candle custom op: x (..., k) f32 → (..., n). The weights are frozen (quantized storage is
/// not trainable), but gradients flow to the input: grad_x = grad_y · W, with W expanded to f32
/// for the one GEMM (QLoRA trains adapters on layers above and below a quantized one).
#[derive(Clone, Debug)]
pub struct QMatMulOp(pub QMatrix);

/// grad_x (..., k) = grad_y (..., n) · w (n, k): the input gradient of y = x · wᵀ.
fn input_grad(arg: &Tensor, grad_y: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let rows = grad_y.elem_count() / n.max(1);
    let g = grad_y.to_dtype(DType::F32)?.contiguous()?.reshape((rows, n))?;
    g.matmul(w)?.reshape(arg.shape())?.to_dtype(arg.dtype()).map(|t| {
        debug_assert_eq!(t.dims().last(), Some(&k));
        t
    })
}

impl CustomOp1 for QMatMulOp {
    fn name(&self) -> &'static str {
        "ingot-qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = self.0.shape();
        let dims = layout.shape().dims();
        if dims.last() != Some(&k) {
            candle_core::bail!("qmatmul: input {:?} does not end in {k}", dims)
        }
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(data), Some((a, b))) => &data[a..b],
            (CpuStorage::F32(_), None) => candle_core::bail!("qmatmul: input must be contiguous"),
            _ => candle_core::bail!("qmatmul: input must be f32"),
        };
        let m = x.len() / k.max(1);
        let y = if m <= FUSED_MAX_BATCH {
            self.0.matmul(x, m)
        } else {
            // Prefill: expand W once, then one GEMM.
            let w = Tensor::from_vec(self.0.dequantize(), (n, k), &candle_core::Device::Cpu)?;
            let xt = Tensor::from_slice(x, (m, k), &candle_core::Device::Cpu)?;
            xt.matmul(&w.t()?)?.flatten_all()?.to_vec1::<f32>()?
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("checked non-empty above") = n;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (n, k) = self.0.shape();
        let w = Tensor::from_vec(self.0.dequantize(), (n, k), grad_res.device())?;
        input_grad(arg, grad_res, &w).map(Some)
    }
}

/// Apply a quantized matrix to x (..., k). Differentiable with respect to x.
pub fn qmatmul(x: &Tensor, w: &QMatrix) -> Result<Tensor> {
    let x = if x.dtype() == DType::F32 { x.contiguous()? } else { x.to_dtype(DType::F32)?.contiguous()? };
    if x.track_op() {
        x.apply_op1(QMatMulOp(w.clone()))
    } else {
        x.apply_op1_no_bwd(&QMatMulOp(w.clone()))
    }
}

/// candle's own quantized matmul (every GGML format: the K-quants, Q5_x, ...) with the input
/// gradient added: candle's `QMatMul` has none, so gradients stopped at it silently.
#[derive(Clone, Debug)]
pub struct CandleQMatMulOp(pub std::sync::Arc<candle_core::quantized::QTensor>);

impl CustomOp1 for CandleQMatMulOp {
    fn name(&self) -> &'static str {
        "ingot-candle-qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(data), Some((a, b))) => &data[a..b],
            (CpuStorage::F32(_), None) => candle_core::bail!("quantized matmul: input must be contiguous"),
            _ => candle_core::bail!("quantized matmul: input must be f32"),
        };
        let xt = Tensor::from_slice(x, layout.shape(), &candle_core::Device::Cpu)?;
        let y = candle_core::quantized::QMatMul::from_arc(self.0.clone())?.forward(&xt)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let w = self.0.dequantize(grad_res.device())?;
        input_grad(arg, grad_res, &w).map(Some)
    }
}

/// y = x · Wᵀ through candle's quantized matmul, differentiable with respect to x.
pub fn candle_qmatmul(x: &Tensor, w: &std::sync::Arc<candle_core::quantized::QTensor>) -> Result<Tensor> {
    let x = if x.dtype() == DType::F32 { x.contiguous()? } else { x.to_dtype(DType::F32)?.contiguous()? };
    x.apply_op1(CandleQMatMulOp(w.clone()))
}
