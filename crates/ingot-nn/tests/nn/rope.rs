//! Rotary embeddings against the rotation written out per pair: both layouts (halves, as HF
//! stores q/k; interleaved, as llama.cpp's GGUF does), fused and composed paths, positions that
//! start at an offset (decoding after a cached prefix), and the frequency scalings.

use candle_core::{DType, Device, Var};
use ingot_nn::{Rope, RopeLayout, RopeScaling};

use crate::{assert_close, tensor, values};

// Batch, heads, positions and an even head dim whose half (5) is odd.
const B: usize = 2;
const H: usize = 3;
const T: usize = 4;
const D: usize = 10;
const MAX_POS: usize = 16;
const THETA: f64 = 10_000.0;
/// The tables are f32: each output is a sum of two f32 products of O(1) values.
const TOL: f64 = 1e-5;

/// Rotate each (b, h, t) row of `x` (B, H, T, D) by angles (offset + t) · inv_freq[i], pairing
/// element i with i + D/2 (halves) or 2i with 2i + 1 (interleaved).
fn direct(x: &[f64], offset: usize, inv_freq: &[f64], layout: RopeLayout) -> Vec<f64> {
    let half = D / 2;
    let mut out = vec![0.0; x.len()];
    for (r, (row, o)) in x.chunks(D).zip(out.chunks_mut(D)).enumerate() {
        let pos = (offset + r % T) as f64;
        for (i, f) in inv_freq.iter().enumerate() {
            let (c, s) = ((pos * f).cos(), (pos * f).sin());
            let (a, b) = match layout {
                RopeLayout::Halves => (i, i + half),
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
            };
            o[a] = row[a] * c - row[b] * s;
            o[b] = row[b] * c + row[a] * s;
        }
    }
    out
}

fn inv_freq() -> Vec<f64> {
    (0..D / 2).map(|i| 1.0 / THETA.powf(2.0 * i as f64 / D as f64)).collect()
}

#[test]
fn both_layouts_match_the_rotation_fused_and_composed() {
    let x = tensor(&[B, H, T, D], 21, DType::F32);
    let xs = values(&x);
    let xv = Var::from_tensor(&x).expect("var"); // a tracked input takes the composed ops
    for layout in [RopeLayout::Halves, RopeLayout::Interleaved] {
        let rope = Rope::new(D, MAX_POS, THETA, &RopeScaling::None, layout, &Device::Cpu).expect("rope");
        for offset in [0, 5, MAX_POS - T] {
            let want = direct(&xs, offset, &inv_freq(), layout);
            let fused = rope.apply(&x, offset).expect("fused rope");
            assert_eq!(fused.dims(), [B, H, T, D]);
            assert_close(&values(&fused), &want, TOL, &format!("fused {layout:?} at offset {offset}"));
            let composed = rope.apply(xv.as_tensor(), offset).expect("composed rope");
            assert_close(&values(&composed), &want, TOL, &format!("composed {layout:?} at offset {offset}"));
        }
    }
}

#[test]
fn the_layouts_differ() {
    // A negative control: the test above would pass for any layout if the formula ignored it.
    let x = tensor(&[B, H, T, D], 22, DType::F32);
    let rope = |l| Rope::new(D, MAX_POS, THETA, &RopeScaling::None, l, &Device::Cpu).expect("rope");
    let halves = values(&rope(RopeLayout::Halves).apply(&x, 3).expect("halves"));
    let inter = values(&rope(RopeLayout::Interleaved).apply(&x, 3).expect("interleaved"));
    assert!(crate::max_diff(&halves, &inter) > 0.1);
}

#[test]
fn scalings_change_the_frequencies() {
    let x = tensor(&[B, H, T, D], 23, DType::F32);
    let xs = values(&x);
    let apply = |scaling: &RopeScaling| {
        let rope = Rope::new(D, MAX_POS, THETA, scaling, RopeLayout::Halves, &Device::Cpu).expect("rope");
        values(&rope.apply(&x, 7).expect("rope"))
    };
    // Position interpolation: every frequency divided by the factor.
    let linear: Vec<f64> = inv_freq().iter().map(|f| f / 4.0).collect();
    assert_close(
        &apply(&RopeScaling::Linear { factor: 4.0 }),
        &direct(&xs, 7, &linear, RopeLayout::Halves),
        TOL,
        "linear",
    );
    // Stored per-frequency divisors.
    let divisors = vec![1.0, 2.0, 3.0, 5.0, 8.0];
    let scaled: Vec<f64> = inv_freq().iter().zip(&divisors).map(|(f, d)| f / d).collect();
    let got = apply(&RopeScaling::FreqFactors(divisors));
    assert_close(&got, &direct(&xs, 7, &scaled, RopeLayout::Halves), TOL, "frequency factors");
    // Llama 3: wavelengths (2π / f: 6.3, 40, 250, 1580, 39700 here) below original / high (2048)
    // are kept, those above original / low (8192) divided by the factor; none falls between.
    let llama3 =
        RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: 8192 };
    let kept_or_divided: Vec<f64> =
        inv_freq().iter().map(|f| if 2.0 * std::f64::consts::PI / f > 8192.0 { f / 8.0 } else { *f }).collect();
    assert_eq!(kept_or_divided.iter().zip(inv_freq()).filter(|(a, b)| *a != b).count(), 1, "one frequency is divided");
    assert_close(&apply(&llama3), &direct(&xs, 7, &kept_or_divided, RopeLayout::Halves), TOL, "llama3");
}

#[test]
fn impossible_sizes_are_errors() {
    let new = |d, max, scaling: &RopeScaling| Rope::new(d, max, THETA, scaling, RopeLayout::Halves, &Device::Cpu);
    assert!(new(9, MAX_POS, &RopeScaling::None).is_err(), "odd head dim");
    assert!(new(0, MAX_POS, &RopeScaling::None).is_err(), "zero head dim");
    assert!(new(D, 0, &RopeScaling::None).is_err(), "no positions");
    assert!(new(D, usize::MAX, &RopeScaling::None).is_err(), "a table no model needs");
    let err = new(D, MAX_POS, &RopeScaling::FreqFactors(vec![1.0; 3])).expect_err("3 factors for 5 frequencies");
    assert!(err.to_string().contains("3 frequency factors"), "{err}");
    // Positions past the table are an error, not a panic.
    let rope = new(D, MAX_POS, &RopeScaling::None).expect("rope");
    assert_eq!(rope.max_positions(), MAX_POS);
    let x = tensor(&[1, 1, T, D], 24, DType::F32);
    assert!(rope.apply(&x, MAX_POS - T + 1).is_err());
}
