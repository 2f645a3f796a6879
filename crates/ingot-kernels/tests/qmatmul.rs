//! The fused quantized matmul against its naive reference (dequantize, then f32 matmul in f64
//! accumulation), on random blocks and odd sizes, for every format and both code paths.

use ingot_kernels::qmatmul::{
    available_isas, dequantize_row, dot_rows_isa, QFormat, QMatrix, BLOCK, FUSED_MAX_BATCH, FUSED_MAX_ROWS,
};
mod common;

use common::random_matrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn reference(w: &QMatrix, x: &[f32], m: usize) -> Vec<f64> {
    let (n, k) = w.shape();
    let dense = w.dequantize();
    let mut y = vec![0f64; m * n];
    for r in 0..m {
        for j in 0..n {
            y[r * n + j] = (0..k).map(|i| x[r * k + i] as f64 * dense[j * k + i] as f64).sum();
        }
    }
    y
}

/// f32 accumulation over k terms: error grows like sqrt(k)·eps·Σ|wx|; 1e-5 relative to the
/// row's Σ|w·x| is ~40x that bound at k = 1184 and still catches any wrong weight.
fn check(w: &QMatrix, x: &[f32], m: usize, got: &[f32]) {
    let (n, k) = w.shape();
    let want = reference(w, x, m);
    let dense = w.dequantize();
    for r in 0..m {
        for j in 0..n {
            let scale: f64 = (0..k).map(|i| (x[r * k + i] as f64 * dense[j * k + i] as f64).abs()).sum::<f64>() + 1e-6;
            let err = (got[r * n + j] as f64 - want[r * n + j]).abs() / scale;
            assert!(
                err < 1e-5,
                "{:?} ({n}x{k}) row {r} col {j}: got {} want {} (rel {err})",
                w.format(),
                got[r * n + j],
                want[r * n + j]
            );
        }
    }
}

#[test]
fn dequantize_follows_the_block_layout() {
    // One Q4_1 block by hand: d = 0.5, m = -1, q = 0..15 in low nibbles, 15..0 in high ones.
    let mut block = Vec::new();
    block.extend(half::f16::from_f32(0.5).to_le_bytes());
    block.extend(half::f16::from_f32(-1.0).to_le_bytes());
    block.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
    let mut out = [0f32; 32];
    dequantize_row(QFormat::Q4_1, &block, &mut out);
    for i in 0..16 {
        assert_eq!(out[i], i as f32 * 0.5 - 1.0);
        assert_eq!(out[i + 16], (15 - i) as f32 * 0.5 - 1.0);
    }
    // Q4_0: w = (q - 8)·d; Q8_0: w = q·d with q signed.
    let mut b0 = half::f16::from_f32(2.0).to_le_bytes().to_vec();
    b0.extend((0..16u8).map(|i| i | (i << 4)));
    dequantize_row(QFormat::Q4_0, &b0, &mut out);
    assert_eq!(out[0], -16.0);
    assert_eq!(out[31], 14.0);
    let mut b8 = half::f16::from_f32(0.25).to_le_bytes().to_vec();
    b8.extend((0..32).map(|i| (i as i8 - 16) as u8));
    dequantize_row(QFormat::Q8_0, &b8, &mut out);
    assert_eq!(out[0], -4.0);
    assert_eq!(out[31], 3.75);
}

#[test]
fn fused_and_gemm_paths_match_reference() {
    let mut rng = StdRng::seed_from_u64(7);
    for format in [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0] {
        // Odd output counts (not multiples of the 16-row task chunk), k of 1 and 37 blocks.
        for &(n, k) in &[(1, 32), (7, 64), (33, 1184), (50, 96)] {
            let w = random_matrix(format, n, k, &mut rng);
            // One pass, passes of equal and unequal size, the op's last fused batch and its first GEMM.
            for m in [1, 3, FUSED_MAX_ROWS, FUSED_MAX_ROWS + 1, 13, FUSED_MAX_BATCH, FUSED_MAX_BATCH + 1] {
                let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0..2.0)).collect();
                check(&w, &x, m, &w.matmul(&x, m));
                let xt = candle_core::Tensor::from_slice(&x, (m, k), &candle_core::Device::Cpu).unwrap();
                let op = ingot_kernels::qmatmul(&xt, &w).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                check(&w, &x, m, &op);
            }
        }
    }
}

/// Every instruction-set path this CPU has (AVX-512, AVX2, scalar) against the reference.
#[test]
fn every_isa_path_matches_reference() {
    let mut rng = StdRng::seed_from_u64(9);
    for isa in available_isas() {
        for format in [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0] {
            for m in [1, 3, FUSED_MAX_ROWS] {
                let (n, k) = (5, 160);
                let w = random_matrix(format, n, k, &mut rng);
                let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0..2.0)).collect();
                let xsum: Vec<f32> = x.chunks(BLOCK).map(|b| b.iter().sum()).collect();
                let bytes_per_row = k / BLOCK * format.block_bytes();
                let mut got = vec![0f32; m * n];
                for j in 0..n {
                    let mut out = vec![0f32; m];
                    dot_rows_isa(
                        isa,
                        format,
                        &w.raw()[j * bytes_per_row..(j + 1) * bytes_per_row],
                        &x,
                        &xsum,
                        k,
                        &mut out,
                    );
                    for r in 0..m {
                        got[r * n + j] = out[r];
                    }
                }
                eprintln!("checked {isa:?} {format:?} m={m}");
                check(&w, &x, m, &got);
            }
        }
    }
}

#[test]
fn custom_op_keeps_leading_dims_and_rejects_bad_input() {
    let mut rng = StdRng::seed_from_u64(3);
    let w = random_matrix(QFormat::Q4_1, 6, 64, &mut rng);
    let dev = candle_core::Device::Cpu;
    let x = candle_core::Tensor::randn(0f32, 1.0, (2, 3, 64), &dev).unwrap();
    let y = ingot_kernels::qmatmul(&x, &w).unwrap();
    assert_eq!(y.dims(), &[2, 3, 6]);
    let bad = candle_core::Tensor::zeros((2, 63), candle_core::DType::F32, &dev).unwrap();
    assert!(ingot_kernels::qmatmul(&bad, &w).is_err());
    assert!(QMatrix::new(QFormat::Q4_1, 6, 64, &[0u8; 10]).is_err());
    assert!(QMatrix::new(QFormat::Q4_1, 1, 48, &[0u8; 30]).is_err());
}
