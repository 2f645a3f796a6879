//! Dot products of f32 activations with dense weight rows stored as f32 or f16, for the decode
//! loop's matrix-vector products over unquantized weights (F16 / F32 GGUF files, tied heads kept
//! in f16). AVX-512 (F16C for f16) with four accumulators, and a scalar reference.

use half::f16;

/// Σ aᵢ bᵢ.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512F (checked); the slices have equal lengths (asserted).
        return unsafe { x86::dot_f32(a, b) };
    }
    dot_f32_scalar(a, b)
}

/// Σ aᵢ bᵢ with `a` stored as f16 (little-endian bytes, 2 per element).
pub fn dot_f16(a: &[u8], b: &[f32]) -> f32 {
    assert_eq!(a.len(), 2 * b.len());
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512F (checked), which implies the 512-bit f16 conversion; the
        // lengths match (asserted).
        return unsafe { x86::dot_f16(a, b) };
    }
    dot_f16_scalar(a, b)
}

pub fn dot_f32_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn dot_f16_scalar(a: &[u8], b: &[f32]) -> f32 {
    a.chunks_exact(2).zip(b).map(|(h, y)| f16::from_le_bytes([h[0], h[1]]).to_f32() * y).sum()
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, acc) in acc.iter_mut().enumerate() {
                let o = i + 16 * u;
                *acc = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(o)), _mm512_loadu_ps(pb.add(o)), *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc[0]);
            i += 16;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        let mut total = _mm512_reduce_add_ps(sum);
        while i < n {
            total += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        total
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f16(a: &[u8], b: &[f32]) -> f32 {
        let n = b.len();
        let (pa, pb) = (a.as_ptr() as *const __m256i, b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, acc) in acc.iter_mut().enumerate() {
                let o = i + 16 * u;
                let w = _mm512_cvtph_ps(_mm256_loadu_si256(pa.add(o / 16)));
                *acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(pb.add(o)), *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let w = _mm512_cvtph_ps(_mm256_loadu_si256(pa.add(i / 16)));
            acc[0] = _mm512_fmadd_ps(w, _mm512_loadu_ps(pb.add(i)), acc[0]);
            i += 16;
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        let mut total = _mm512_reduce_add_ps(sum);
        while i < n {
            let h = half::f16::from_le_bytes([a[2 * i], a[2 * i + 1]]);
            total += h.to_f32() * *pb.add(i);
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_dots_match_the_scalar_reference_at_odd_lengths() {
        for n in [0usize, 1, 15, 16, 17, 63, 64, 65, 200, 577] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0).collect();
            let (fast, slow) = (dot_f32(&a, &b), dot_f32_scalar(&a, &b));
            assert!((fast - slow).abs() <= 1e-4 * (1.0 + slow.abs()), "n {n}: {fast} vs {slow}");
            let h: Vec<u8> = a.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect();
            let (fast, slow) = (dot_f16(&h, &b), dot_f16_scalar(&h, &b));
            assert!((fast - slow).abs() <= 1e-4 * (1.0 + slow.abs()), "f16 n {n}: {fast} vs {slow}");
        }
    }
}
