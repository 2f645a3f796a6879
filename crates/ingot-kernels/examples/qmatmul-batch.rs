//! Where the fused quantized kernel stops paying: time `QMatrix::matmul` (fused, tiles of
//! `FUSED_MAX_ROWS` rows, whatever m) against expanding W to f32 and one candle GEMM, for m input rows on
//! SmolLM2-135M's projection shapes (q/k/v stacked, o, gate/up stacked, down, the tied head).
//!
//!   cargo run --release -p ingot-kernels --example qmatmul-batch [THREADS]
//!
//! Prints milliseconds per call, summed over one layer's projections (and the head apart).

use candle_core::{Device, Tensor};
use ingot_kernels::qmatmul::{QFormat, QMatrix, BLOCK};
use std::time::Instant;

fn matrix(n: usize, k: usize, seed: u64) -> QMatrix {
    let bytes = n * (k / BLOCK) * QFormat::Q4_1.block_bytes();
    let mut state = seed;
    let mut data: Vec<u8> = (0..bytes)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    // Sane f16 scales and minima (0.01 and -0.05) at the head of every block.
    for block in data.chunks_mut(QFormat::Q4_1.block_bytes()) {
        block[0..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(-0.05).to_le_bytes());
    }
    QMatrix::new(QFormat::Q4_1, n, k, &data).expect("sizes match")
}

fn dense(w: &QMatrix, x: &[f32], m: usize) -> Vec<f32> {
    let (n, k) = w.shape();
    let wt = Tensor::from_vec(w.dequantize(), (n, k), &Device::Cpu).unwrap();
    let xt = Tensor::from_slice(x, (m, k), &Device::Cpu).unwrap();
    xt.matmul(&wt.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Fastest milliseconds per call over 15 rounds of enough calls to fill ~20 ms each (the least
/// disturbed round: this shared machine drifts by tens of percent).
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let reps = ((0.02 / t.elapsed().as_secs_f64().max(1e-6)) as usize).clamp(1, 1000);
    let mut rounds: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / reps as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[0]
}

fn main() {
    if let Some(t) = std::env::args().nth(1) {
        let threads = t.parse().expect("THREADS is a number");
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    }
    let layer = [matrix(960, 576, 1), matrix(576, 576, 2), matrix(3072, 576, 3), matrix(576, 1536, 4)];
    let head = matrix(49152, 576, 5);
    println!("| m | layer fused ms | layer dequant+GEMM ms | head fused ms | head dequant+GEMM ms |");
    println!("|---|---|---|---|---|");
    for m in [1, 4, 8, 9, 16, 32, 64, 128, 256] {
        let xs: Vec<Vec<f32>> =
            layer.iter().map(|w| (0..m * w.shape().1).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect()).collect();
        let fused = time(|| layer.iter().zip(&xs).for_each(|(w, x)| drop(w.matmul(x, m))));
        let gemm = time(|| layer.iter().zip(&xs).for_each(|(w, x)| drop(dense(w, x, m))));
        let xh: Vec<f32> = (0..m * 576).map(|i| ((i % 89) as f32 - 44.0) / 50.0).collect();
        let hf = time(|| drop(head.matmul(&xh, m)));
        let hg = time(|| drop(dense(&head, &xh, m)));
        println!("| {m} | {fused:.2} | {gemm:.2} | {hf:.2} | {hg:.2} |");
    }
}
