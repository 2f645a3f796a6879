//! Helpers shared by the kernel tests.

use ingot_kernels::qmatmul::{QFormat, QMatrix, BLOCK};
use rand::rngs::StdRng;
use rand::Rng;

/// A random (n, k) matrix of `format` blocks with sane finite f16 scales (and Q4_1 minimums).
pub fn random_matrix(format: QFormat, n: usize, k: usize, rng: &mut StdRng) -> QMatrix {
    let mut data = Vec::new();
    for _ in 0..n * k / BLOCK {
        let mut block: Vec<u8> = (0..format.block_bytes()).map(|_| rng.random()).collect();
        // Scales (and Q4_1's minimum) as sane finite f16 values.
        let d = half::f16::from_f32(rng.random_range(-0.1..0.1)).to_le_bytes();
        block[..2].copy_from_slice(&d);
        if format == QFormat::Q4_1 {
            let m = half::f16::from_f32(rng.random_range(-0.5..0.5)).to_le_bytes();
            block[2..4].copy_from_slice(&m);
        }
        data.extend(block);
    }
    QMatrix::new(format, n, k, &data).unwrap()
}
