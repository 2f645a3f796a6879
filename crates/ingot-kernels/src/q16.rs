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
//! On CPUs with AVX-512 VNNI and VBMI the 4-bit formats go four blocks at a time through byte
//! products instead (`vpdpbusd`: u8 weights × i8 activations, four products per i32 lane): each
//! 16-bit value is split as xq = 256·xh + xl with xh, xl in i8 (hence the ±32639 range rather
//! than ±32767), so Σ q·xq = 256·Σ q·xh + Σ q·xl exactly, two byte products per weight in place of
//! the widening to 16 bits. One two-source byte permute (`vpermt2b`) gathers four blocks' nibbles
//! straight from the GGUF bytes into the lane order the activations were laid out in when they
//! were set ([`Q16Input::set`]): lanes alternate between two blocks, so each lane needs one scale.
//!
//! Legend: k input features (a multiple of 32 for block formats); rows are weight rows, up to
//! [`ROWS`] of them against the same x at a time; a group is four consecutive blocks (128
//! values), the byte path's unit.

use crate::qmatmul::{available_isas, f16_at, Isa, QFormat, BLOCK};

/// Blocks in a group of the byte path.
const GROUP: usize = 4;

/// The largest 16-bit value: 127·256 + 127, so that both bytes of the split fit i8.
const Q16_MAX: f32 = 32639.0;

/// An activation vector as the kernels read it: per block of 32, the values as i16 with their
/// scale, and the exact f32 sum (also what [`crate::qmatmul::QMatrix::matvec_rows`] reads); and
/// for the byte path, per group of four blocks, the values' high and low bytes in the lanes'
/// order and each lane's block scale.
#[derive(Clone, Debug, Default)]
pub struct Q16Input {
    q: Vec<i16>,
    /// Per block, padded with zeros to whole groups.
    scale: Vec<f32>,
    sums: Vec<f32>,
    /// Per group, 128 bytes each: the lanes' order for the weights' low nibbles (values 0-15 of
    /// each block), then for the high nibbles (16-31); see [`lane_source`].
    high: Vec<i8>,
    low: Vec<i8>,
    /// Per group, 16 lanes: the scale of the block each lane belongs to.
    lane_scale: Vec<f32>,
}

/// Where byte `p` (0..64) of a group's lane order comes from: (block in the group, value in the
/// block for the low-nibble half; add 16 for the high half). Dword lane L = p/4 holds four
/// consecutive values; lanes 0-7 alternate between blocks 0 and 1, lanes 8-15 between 2 and 3,
/// each pair of lanes stepping four values on.
const fn lane_source(p: usize) -> (usize, usize) {
    let (lane, t) = (p / 4, p % 4);
    let (pair, l) = (lane / 8, lane % 8);
    (2 * pair + l % 2, 4 * (l / 2) + t)
}

impl Q16Input {
    /// Buffers for vectors of up to `k` values (a partial last block is padded with zeros).
    pub fn new(k: usize) -> Self {
        let blocks = k.div_ceil(BLOCK);
        let groups = blocks.div_ceil(GROUP);
        Self {
            q: vec![0; blocks * BLOCK],
            scale: vec![0.0; groups * GROUP],
            sums: vec![0.0; groups * GROUP],
            high: vec![0; groups * GROUP * BLOCK],
            low: vec![0; groups * GROUP * BLOCK],
            lane_scale: vec![0.0; groups * 16],
        }
    }

    /// Take `x`: its block sums always, its 16-bit values when `quantize` (the fast path).
    pub fn set(&mut self, x: &[f32], quantize: bool) {
        let blocks = x.len().div_ceil(BLOCK);
        assert!(
            blocks * BLOCK <= self.q.len(),
            "{} values do not fit a Q16Input of {} blocks",
            x.len(),
            self.q.len() / BLOCK
        );
        for b in 0..blocks {
            let xb = &x[b * BLOCK..x.len().min((b + 1) * BLOCK)];
            self.sums[b] = xb.iter().sum();
            if !quantize {
                continue;
            }
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / Q16_MAX;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let qb = &mut self.q[b * BLOCK..(b + 1) * BLOCK];
            for (i, q) in qb.iter_mut().enumerate() {
                *q = xb.get(i).map_or(0, |v| (v * inv).round() as i16);
            }
            self.scale[b] = d;
        }
        if quantize {
            self.split(blocks);
        }
    }

    /// The byte path's layout of the first `blocks` blocks (the rest of the last group zero).
    fn split(&mut self, blocks: usize) {
        for g in 0..blocks.div_ceil(GROUP) {
            for p in 0..64 {
                let (block, i) = lane_source(p);
                let b = g * GROUP + block;
                for (half, offset) in [(0, 0), (64, 16)] {
                    let v = if b < blocks { self.q[b * BLOCK + i + offset] as i32 } else { 0 };
                    // v = 256·h + l with l in [-128, 127]; |v| ≤ 32639 keeps h there too.
                    let l = ((v + 128) & 0xFF) - 128;
                    self.high[g * 128 + half + p] = ((v - l) >> 8) as i8;
                    self.low[g * 128 + half + p] = l as i8;
                }
            }
            for lane in 0..16 {
                let b = g * GROUP + lane_source(lane * 4).0;
                self.lane_scale[g * 16 + lane] = if b < blocks { self.scale[b] } else { 0.0 };
            }
        }
        // Blocks past the input in its last group count nothing.
        let end = blocks.div_ceil(GROUP) * GROUP;
        self.scale[blocks..end].iter_mut().for_each(|s| *s = 0.0);
        self.sums[blocks..end].iter_mut().for_each(|s| *s = 0.0);
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

/// The paths of this kernel, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q16Path {
    /// AVX-512 VNNI + VBMI byte products, four blocks at a time (Q4_0, Q4_1; Q8_0 takes
    /// [`Q16Path::Avx512`]).
    Vnni,
    /// AVX-512BW: 16-bit products, a block at a time.
    Avx512,
    Avx2,
    Scalar,
}

/// The dot product of one weight row (k/32 blocks of `format`) with `x`, on the fastest path.
#[inline]
pub fn dot_q16(format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
    debug_assert!(k.is_multiple_of(BLOCK) && x.q.len() >= k && wrow.len() >= k / BLOCK * format.block_bytes());
    // SAFETY: best() returns a path the CPU reported; the shapes are the caller's contract
    // (QMatrix::matvec_rows_q16 checks them).
    unsafe { dot_on(best(), format, wrow, x, k) }
}

/// [`dot_q16`] on `path`. Safety: the CPU has `path`, and `wrow` and `x` hold k values.
#[inline]
unsafe fn dot_on(path: Q16Path, format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
    match path {
        #[cfg(target_arch = "x86_64")]
        Q16Path::Vnni if format != QFormat::Q8_0 => {
            let mut out = [0f32];
            x86::rows_vnni::<1>(format, wrow, 0, x, k, &mut out);
            out[0]
        }
        #[cfg(target_arch = "x86_64")]
        Q16Path::Vnni | Q16Path::Avx512 => x86::dot_avx512(format, wrow, x, k),
        #[cfg(target_arch = "x86_64")]
        Q16Path::Avx2 => x86::dot_avx2(format, wrow, x, k),
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
    // The row count is a const parameter of the kernels: 1 to ROWS.
    #[cfg(target_arch = "x86_64")]
    macro_rules! by_rows {
        ($kernel:ident) => {
            match out.len() {
                4 => x86::$kernel::<4>(format, wrows, row_bytes, x, k, out),
                3 => x86::$kernel::<3>(format, wrows, row_bytes, x, k, out),
                2 => x86::$kernel::<2>(format, wrows, row_bytes, x, k, out),
                1 => x86::$kernel::<1>(format, wrows, row_bytes, x, k, out),
                _ => {}
            }
        };
    }
    match best() {
        // SAFETY: as dot_q16; the rows lie inside `wrows` (the caller's contract).
        #[cfg(target_arch = "x86_64")]
        Q16Path::Vnni if format != QFormat::Q8_0 => unsafe { by_rows!(rows_vnni) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Q16Path::Vnni | Q16Path::Avx512 => unsafe { by_rows!(rows_avx512) },
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = dot_q16(format, &wrows[i * row_bytes..(i + 1) * row_bytes], x, k);
            }
        }
    }
}

/// [`dot_q16`] on a named path (tests run each path the CPU has). Panics if the CPU lacks it
/// or the slices are short.
pub fn dot_q16_isa(path: Q16Path, format: QFormat, wrow: &[u8], x: &Q16Input, k: usize) -> f32 {
    assert!(k.is_multiple_of(BLOCK) && x.q.len() >= k && wrow.len() >= k / BLOCK * format.block_bytes());
    assert!(q16_isas().contains(&path), "{path:?} is not supported by this CPU");
    // SAFETY: the CPU has the path and the slices hold k values (asserted above).
    unsafe { dot_on(path, format, wrow, x, k) }
}

/// The paths of this kernel the CPU can run, fastest first (AVX-512 here needs BW as well).
pub fn q16_isas() -> Vec<Q16Path> {
    let mut paths = Vec::new();
    for isa in available_isas() {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                let bw = std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("f16c");
                let bytes = std::is_x86_feature_detected!("avx512vnni")
                    && std::is_x86_feature_detected!("avx512vbmi")
                    && std::is_x86_feature_detected!("avx512vl");
                if bw && bytes {
                    paths.push(Q16Path::Vnni);
                }
                if bw {
                    paths.push(Q16Path::Avx512);
                }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if std::is_x86_feature_detected!("f16c") => paths.push(Q16Path::Avx2),
            Isa::Scalar => paths.push(Q16Path::Scalar),
            _ => {}
        }
    }
    paths
}

/// The fastest path, or the one `INGOT_Q16_PATH` names (vnni, avx512, avx2, scalar) when the CPU
/// has it: for side-by-side measurements of the paths. A name it cannot run is warned about once
/// and the fastest path taken.
fn best() -> Q16Path {
    static BEST: std::sync::OnceLock<Q16Path> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        let paths = q16_isas();
        let Ok(name) = std::env::var("INGOT_Q16_PATH") else { return paths[0] };
        match paths.iter().find(|p| format!("{p:?}").eq_ignore_ascii_case(&name)) {
            Some(&p) => p,
            None => {
                eprintln!("warning: INGOT_Q16_PATH={name}: not a path this CPU runs ({paths:?}); using {:?}", paths[0]);
                paths[0]
            }
        }
    })
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
    use super::{lane_source, Q16Input, QFormat, BLOCK, GROUP};
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

    /// Byte indices, into a group's first 128 bytes (two registers; bit 6 picks the second), of
    /// the nibble bytes in the lanes' order, for blocks of `bb` bytes whose 16 nibble bytes start
    /// at `qoff`.
    const fn nibble_index(bb: usize, qoff: usize) -> [u8; 64] {
        let mut idx = [0u8; 64];
        let mut p = 0;
        while p < 64 {
            let (block, i) = lane_source(p);
            idx[p] = (block * bb + qoff + i) as u8;
            p += 1;
        }
        idx
    }

    /// Word indices of the four blocks' scales, then their minimums (at `min_at` bytes into the
    /// block; Q4_0 has none and repeats the scales), in the low 8 of 32 words.
    const fn scale_index(bb: usize, min_at: usize) -> [u16; 32] {
        let mut idx = [0u16; 32];
        let mut b = 0;
        while b < GROUP {
            idx[b] = (b * bb / 2) as u16;
            idx[GROUP + b] = ((b * bb + min_at) / 2) as u16;
            b += 1;
        }
        idx
    }

    const Q4_0_NIBBLES: [u8; 64] = nibble_index(18, 2);
    const Q4_1_NIBBLES: [u8; 64] = nibble_index(20, 4);
    const Q4_0_SCALES: [u16; 32] = scale_index(18, 0);
    const Q4_1_SCALES: [u16; 32] = scale_index(20, 2);

    /// R consecutive rows of a 4-bit format against the same x, a group of four blocks at a time
    /// by byte products (module docs); x's group is loaded once for the R rows. The last group of
    /// a row may be partial: masked loads stop at the row's end, and the missing blocks read as
    /// zero (zero scales, zero nibbles, and x is zero there).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
    pub unsafe fn rows_vnni<const R: usize>(
        format: QFormat,
        wrows: &[u8],
        row_bytes: usize,
        x: &Q16Input,
        k: usize,
        out: &mut [f32],
    ) {
        debug_assert!(out.len() == R && wrows.len() >= R * row_bytes && format != QFormat::Q8_0);
        let bb = format.block_bytes();
        let blocks = k / BLOCK;
        let (nibbles, scales) = match format {
            QFormat::Q4_0 => (&Q4_0_NIBBLES, &Q4_0_SCALES),
            _ => (&Q4_1_NIBBLES, &Q4_1_SCALES),
        };
        let nibbles = _mm512_loadu_si512(nibbles.as_ptr() as *const _);
        let scales = _mm512_loadu_si512(scales.as_ptr() as *const _);
        let lanes = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
        let mask = _mm512_set1_epi8(0x0F);
        let (w, high, low) = (wrows.as_ptr(), x.high.as_ptr(), x.low.as_ptr());
        let mut acc = [_mm512_setzero_ps(); R];
        let mut mins = [_mm256_setzero_ps(); R];
        for g in 0..blocks.div_ceil(GROUP) {
            let bytes = (blocks - g * GROUP).min(GROUP) * bb;
            let (mask_a, mask_b) =
                if bytes >= 64 { (u64::MAX, (1u64 << (bytes - 64)) - 1) } else { ((1u64 << bytes) - 1, 0) };
            let at = g * 128;
            let (h_lo, h_hi) =
                (_mm512_loadu_si512(high.add(at) as *const _), _mm512_loadu_si512(high.add(at + 64) as *const _));
            let (l_lo, l_hi) =
                (_mm512_loadu_si512(low.add(at) as *const _), _mm512_loadu_si512(low.add(at + 64) as *const _));
            let dx = _mm512_loadu_ps(x.lane_scale.as_ptr().add(g * 16));
            let sx = _mm_loadu_ps(x.sums.as_ptr().add(g * GROUP));
            // Against [scales, minimums]: Q4_1 adds m·Σx, Q4_0 (minimum −8·d) −8·d·Σx.
            let sx = match format {
                QFormat::Q4_0 => _mm256_zextps128_ps256(_mm_mul_ps(sx, _mm_set1_ps(-8.0))),
                _ => _mm256_insertf128_ps(_mm256_setzero_ps(), sx, 1),
            };
            for r in 0..R {
                let group = w.add(r * row_bytes + g * GROUP * bb);
                _mm_prefetch(group.wrapping_add(PREFETCH) as *const i8, _MM_HINT_T0); // never faults
                let a = if mask_a == u64::MAX {
                    _mm512_loadu_si512(group as *const _)
                } else {
                    _mm512_maskz_loadu_epi8(mask_a, group as *const i8)
                };
                let b = _mm512_maskz_loadu_epi8(mask_b, group.add(64) as *const i8);
                let q = _mm512_permutex2var_epi8(a, nibbles, b);
                let lo = _mm512_and_si512(q, mask);
                let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
                let mut t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, h_lo);
                t = _mm512_dpbusd_epi32(t, hi, h_hi);
                t = _mm512_slli_epi32(t, 8);
                t = _mm512_dpbusd_epi32(t, lo, l_lo);
                t = _mm512_dpbusd_epi32(t, hi, l_hi);
                let dm = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi16(scales, a)));
                let d = _mm512_permutexvar_ps(lanes, _mm512_castps256_ps512(dm));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(d, dx), acc[r]);
                mins[r] = _mm256_fmadd_ps(dm, sx, mins[r]);
            }
        }
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]) + hsum(mins[r]);
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
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512vbmi") {
            assert_eq!(q16_isas()[0], Q16Path::Vnni, "a CPU with VNNI and VBMI runs the byte path");
        }
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

    /// The byte layout holds every 16-bit value exactly once, as 256·high + low, in the lane
    /// order; the last group's missing blocks are zero.
    #[test]
    fn byte_split_rebuilds_every_value_in_lane_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let k = 6 * BLOCK; // a whole group and half of one
        let mut xv = random(&mut rng, k, 5.0);
        xv[7] = 5.0; // the block's largest: 32639 = 127·256 + 127
        xv[8] = -5.0;
        let mut x = Q16Input::new(k);
        x.set(&xv, true);
        assert_eq!(x.q[7], 32639);
        assert_eq!(x.q[8], -32639);
        let mut seen = vec![0; 2 * GROUP * BLOCK];
        for g in 0..2 {
            for half in [0, 64] {
                for p in 0..64 {
                    let (block, i) = lane_source(p);
                    let b = g * GROUP + block;
                    let at = g * 128 + half + p;
                    let v = 256 * x.high[at] as i32 + x.low[at] as i32;
                    let want = if b < 6 { x.q[b * BLOCK + i + half / 4] as i32 } else { 0 };
                    assert_eq!(v, want, "group {g}, byte {}", half + p);
                    seen[b * BLOCK + i + half / 4] += 1;
                }
            }
            for lane in 0..16 {
                let b = g * GROUP + lane_source(4 * lane).0;
                assert_eq!(x.lane_scale[g * 16 + lane], if b < 6 { x.scale[b] } else { 0.0 });
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "every value once");
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
