//! The decode-step attention kernel against a naive f64 reference written from the formula, on
//! odd sizes, grouped heads, and caches read through views of larger buffers.

use candle_core::{Device, Tensor};
use ingot_kernels::decode_attention;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], rng: &mut StdRng) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// out[h][b] = Σ_j softmax_j(scale · q[h][b]·k[b][g][j]) v[b][g][j], g = h / (H / K), in f64.
fn reference(q: &Tensor, kv: &[(Tensor, Tensor)], scale: f64) -> Vec<f64> {
    let (_, h, b, d) = q.dims4().unwrap();
    let q: Vec<Vec<Vec<f32>>> = q.squeeze(0).unwrap().to_vec3().unwrap();
    let mut out = Vec::new();
    for head in 0..h {
        for seq in 0..b {
            let k: Vec<Vec<Vec<f32>>> = kv[seq].0.squeeze(0).unwrap().to_vec3().unwrap();
            let v: Vec<Vec<Vec<f32>>> = kv[seq].1.squeeze(0).unwrap().to_vec3().unwrap();
            let g = head / (h / k.len());
            let s: Vec<f64> = k[g]
                .iter()
                .map(|kj| scale * kj.iter().zip(&q[head][seq]).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>())
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let total: f64 = e.iter().sum();
            for i in 0..d {
                out.push(e.iter().zip(&v[g]).map(|(p, vj)| p / total * vj[i] as f64).sum());
            }
        }
    }
    out
}

#[test]
fn matches_the_reference_on_odd_sizes_and_views() {
    let mut rng = StdRng::seed_from_u64(5);
    // (query heads, key/value heads, head dim, cached positions per sequence)
    for (h, kh, d, lens) in
        [(1, 1, 1, vec![1]), (6, 2, 8, vec![1, 37, 5]), (9, 3, 64, vec![12, 1, 64, 3]), (4, 4, 5, vec![7, 7])]
    {
        let q = random(&[1, h, lens.len(), d], &mut rng);
        // Each cache a view of the first S positions of a larger (capacity 64 + 3) buffer.
        let kv: Vec<(Tensor, Tensor)> = lens
            .iter()
            .map(|&s| {
                let k = random(&[1, kh, 67, d], &mut rng).narrow(2, 0, s).unwrap();
                let v = random(&[1, kh, 67, d], &mut rng).narrow(2, 0, s).unwrap();
                (k, v)
            })
            .collect();
        let scale = 1.0 / (d as f64).sqrt();
        let got: Vec<f32> = decode_attention(&q, &kv, scale as f32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = reference(&q, &kv, scale);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "h {h} k {kh} d {d} lens {lens:?}: element {i} {g} vs {w}"
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let mut rng = StdRng::seed_from_u64(6);
    let q = random(&[1, 6, 2, 8], &mut rng);
    let kv =
        |kh: usize, s: usize, d: usize, rng: &mut StdRng| (random(&[1, kh, s, d], rng), random(&[1, kh, s, d], rng));
    // One sequence's cache for two queries; 4 heads that 6 do not divide into; another head dim;
    // an empty cache.
    assert!(decode_attention(&q, &[kv(2, 3, 8, &mut rng)], 1.0).is_err());
    assert!(decode_attention(&q, &[kv(4, 3, 8, &mut rng), kv(4, 3, 8, &mut rng)], 1.0).is_err());
    assert!(decode_attention(&q, &[kv(2, 3, 4, &mut rng), kv(2, 3, 4, &mut rng)], 1.0).is_err());
    let empty = (
        Tensor::zeros((1, 2, 0, 8), candle_core::DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros((1, 2, 0, 8), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(decode_attention(&q, &[empty.clone(), empty], 1.0).is_err());
}
