//! The quantizer against candle's port of ggml's reference quantizers (`QTensor::quantize`, whose
//! `from_float` follows `quantize_row_*_ref`): identical bytes on random rows of several scales
//! and on the edge cases where the formulas branch (zero scale, constant rows, ties for the
//! largest magnitude, values past f16's range, subnormals, exact half steps). Then the round trip
//! through `dequantize_row` stays within each format's error bound, derived per block below.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;
use ingot_kernels::qmatmul::{dequantize_row, QFormat, BLOCK};
use ingot_kernels::quantize::{quantize_matrix, quantize_row};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FORMATS: [QFormat; 3] = [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0];

fn candle_dtype(format: QFormat) -> GgmlDType {
    match format {
        QFormat::Q4_0 => GgmlDType::Q4_0,
        QFormat::Q4_1 => GgmlDType::Q4_1,
        QFormat::Q8_0 => GgmlDType::Q8_0,
    }
}

/// candle's bytes for an (n, k) matrix.
fn candle_bytes(format: QFormat, values: &[f32], n: usize, k: usize) -> Vec<u8> {
    let t = Tensor::from_slice(values, (n, k), &Device::Cpu).unwrap();
    QTensor::quantize(&t, candle_dtype(format)).unwrap().data().unwrap().into_owned()
}

/// Ours and candle's bytes agree, through both entry points; names the first differing block.
fn assert_same_bytes(format: QFormat, values: &[f32], n: usize, k: usize, what: &str) {
    let want = candle_bytes(format, values, n, k);
    let ours = quantize_row(format, values).unwrap();
    let bb = format.block_bytes();
    if let Some(b) = (0..want.len() / bb).find(|&b| ours[b * bb..(b + 1) * bb] != want[b * bb..(b + 1) * bb]) {
        panic!(
            "{format:?} {what}: block {b} differs\n values {:?}\n ours   {:?}\n candle {:?}",
            &values[b * BLOCK..(b + 1) * BLOCK],
            &ours[b * bb..(b + 1) * bb],
            &want[b * bb..(b + 1) * bb]
        );
    }
    assert_eq!(ours.len(), want.len(), "{format:?} {what}: byte counts");
    let m = quantize_matrix(format, values, n, k).unwrap();
    assert_eq!(m.shape(), (n, k));
    assert_eq!(m.raw(), &want[..], "{format:?} {what}: quantize_matrix differs from quantize_row");
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Check |x - x̂| per element against the block's bound. With d the f32 scale the quantizer
/// computed, d̃ and m̃ the stored f16 scale and minimum, and |q| ≤ Q the largest integer the
/// dequantizer multiplies d̃ by:
///   |x - x̂| ≤ step·d + Q·|d - d̃| + |min - m̃| + slack,
/// where step is d/2 (rounding to the nearest level), except Q4_0's one clamped level (x/d + 8.5
/// reaching 16: the value opposite in sign to `max` and as large, put at 7d instead of 8d),
/// which is off by up to a whole step. `slack` covers f32 rounding in x·(1/d): a few ulps of the
/// block's magnitude.
fn check_round_trip(format: QFormat, values: &[f32], what: &str) {
    let bytes = quantize_row(format, values).unwrap();
    let mut back = vec![0f32; values.len()];
    dequantize_row(format, &bytes, &mut back);
    let bb = format.block_bytes();
    for (b, (x, xh)) in values.chunks(BLOCK).zip(back.chunks(BLOCK)).enumerate() {
        let block = &bytes[b * bb..(b + 1) * bb];
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        let min = x.iter().copied().fold(f32::MAX, f32::min) as f64;
        let max = x.iter().copied().fold(-f32::MAX, f32::max) as f64;
        // Q4_0's signed value of largest magnitude (the first on ties), which sits at q = 0.
        let signed_max = x.iter().copied().fold(0f32, |m, v| if m.abs() < v.abs() { v } else { m }) as f64;
        // The f32 scale the quantizer computed (signed for Q4_0), and Q.
        let (d, q_max, min_err) = match format {
            QFormat::Q4_0 => (signed_max / -8.0, 8.0, 0.0),
            QFormat::Q4_1 => ((max - min) / 15.0, 15.0, (min - f16_at(block, 2) as f64).abs()),
            QFormat::Q8_0 => (amax / 127.0, 127.0, 0.0),
        };
        let stored = f16_at(block, 0) as f64;
        let scale_err = q_max * (d - stored).abs();
        let slack = 4.0 * f32::EPSILON as f64 * amax;
        for (i, (&v, &vh)) in x.iter().zip(xh).enumerate() {
            let clamped = format == QFormat::Q4_0 && d != 0.0 && v as f64 / d > 7.5;
            let step = if clamped { d.abs() } else { d.abs() / 2.0 };
            let bound = step + scale_err + min_err + slack;
            let err = (v as f64 - vh as f64).abs();
            assert!(
                err <= bound,
                "{format:?} {what}: block {b} element {i}: {v} came back as {vh} (error {err:e} > bound {bound:e}, d = {d:e}, stored d = {stored:e})"
            );
        }
    }
}

fn random_values(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

#[test]
fn random_rows_match_candle_byte_for_byte() {
    let mut rng = StdRng::seed_from_u64(7);
    // Odd row counts and widths of 1, 3 and 5 blocks; scales from weights (0.02) to activations.
    for (n, k, scale) in [(1, 32, 1.0), (7, 96, 0.02), (13, 160, 3.0), (3, 32, 1e-3), (5, 96, 250.0)] {
        let values = random_values(&mut rng, n * k, scale);
        for format in FORMATS {
            assert_same_bytes(format, &values, n, k, &format!("random ({n}, {k}) × {scale}"));
            check_round_trip(format, &values, &format!("random ({n}, {k}) × {scale}"));
        }
    }
    // Skewed blocks: all positive, all negative, one outlier.
    let mut skewed = random_values(&mut rng, 3 * 32, 1.0);
    skewed[..32].iter_mut().for_each(|v| *v = v.abs() + 0.5);
    skewed[32..64].iter_mut().for_each(|v| *v = -v.abs() - 2.0);
    skewed[77] = 40.0;
    for format in FORMATS {
        assert_same_bytes(format, &skewed, 3, 32, "skewed");
        check_round_trip(format, &skewed, "skewed");
    }
}

#[test]
fn edge_cases_match_candle_byte_for_byte() {
    let block = |f: &dyn Fn(usize) -> f32| -> Vec<f32> { (0..BLOCK).map(f).collect() };
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("all zeros", vec![0.0; 3 * BLOCK]),
        ("negative zeros", vec![-0.0; BLOCK]),
        ("constant positive", vec![0.7; BLOCK]),
        ("constant negative", vec![-3.25; BLOCK]),
        ("one non-zero", block(&|i| if i == 19 { -0.3 } else { 0.0 })),
        // Q4_0 keeps the first of equal magnitudes: the sign of d depends on it.
        (
            "tie +a first",
            block(&|i| {
                if i == 2 {
                    1.5
                } else if i == 9 {
                    -1.5
                } else {
                    0.1
                }
            }),
        ),
        (
            "tie -a first",
            block(&|i| {
                if i == 2 {
                    -1.5
                } else if i == 9 {
                    1.5
                } else {
                    0.1
                }
            }),
        ),
        // Levels exactly on half steps: truncation of x/d + 8.5 and of (x - min)/d + 0.5.
        ("half steps", block(&|i| (i as f32 - 16.0) * 0.25)),
        ("ramp 0..31", block(&|i| i as f32)),
        // Past f16's range (65504): the scale is inf in f16; the q's still match.
        ("past f16", block(&|i| if i % 2 == 0 { 1e6 } else { -3e5 + i as f32 })),
        ("huge", block(&|i| if i == 0 { 3e38 } else { -1e30 * i as f32 })),
        // Below f16's smallest subnormal (6e-8): the scale flushes to 0.
        ("tiny", block(&|i| (i as f32 - 15.5) * 1e-12)),
        ("f32 subnormals", block(&|i| (i as f32 - 15.5) * 1e-40)),
        ("f16 subnormal scale", block(&|i| (i as f32 - 15.5) * 1e-5)),
    ];
    for (what, values) in &cases {
        for format in FORMATS {
            assert_same_bytes(format, values, values.len() / BLOCK, BLOCK, what);
        }
    }
    // An odd number of rows mixing them, as one matrix.
    let mixed: Vec<f32> = cases.iter().take(5).flat_map(|(_, v)| v[..BLOCK].to_vec()).collect();
    for format in FORMATS {
        assert_same_bytes(format, &mixed, 5, BLOCK, "mixed rows");
    }
}

#[test]
fn zero_and_constant_blocks_come_back_exactly() {
    for format in FORMATS {
        let zeros = quantize_row(format, &[0.0; 64]).unwrap();
        let mut back = vec![1f32; 64];
        dequantize_row(format, &zeros, &mut back);
        assert!(back.iter().all(|&v| v == 0.0), "{format:?}: zeros came back as {back:?}");
    }
    // Q4_1 stores a constant block as d = 0, m = the constant (exact when it is an f16).
    let bytes = quantize_row(QFormat::Q4_1, &[-3.25; 32]).unwrap();
    let mut back = vec![0f32; 32];
    dequantize_row(QFormat::Q4_1, &bytes, &mut back);
    assert!(back.iter().all(|&v| v == -3.25), "constant block came back as {back:?}");
}

#[test]
fn round_trip_stays_within_the_format_error() {
    let mut rng = StdRng::seed_from_u64(11);
    let block = |f: &dyn Fn(usize) -> f32| -> Vec<f32> { (0..BLOCK).map(f).collect() };
    let mut cases: Vec<(String, Vec<f32>)> = [1e-4, 0.02, 1.0, 60.0, 1000.0]
        .iter()
        .map(|&s| (format!("uniform × {s}"), random_values(&mut rng, 9 * BLOCK, s)))
        .collect();
    cases.push(("constant".into(), vec![0.7; BLOCK]));
    cases.push((
        "tie".into(),
        block(&|i| {
            if i == 2 {
                1.5
            } else if i == 9 {
                -1.5
            } else {
                0.1
            }
        }),
    ));
    cases.push(("half steps".into(), block(&|i| (i as f32 - 16.0) * 0.25)));
    cases.push(("tiny".into(), block(&|i| (i as f32 - 15.5) * 1e-12)));
    cases.push(("f16 subnormal scale".into(), block(&|i| (i as f32 - 15.5) * 1e-5)));
    for (what, values) in &cases {
        for format in FORMATS {
            check_round_trip(format, values, what);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    for format in FORMATS {
        let e = quantize_row(format, &[0.0; 33]).unwrap_err().to_string();
        assert!(e.contains("33") && e.contains("32"), "{e}");
        let mut nan = vec![0.0; 32];
        nan[5] = f32::NAN;
        let e = quantize_row(format, &nan).unwrap_err().to_string();
        assert!(e.contains("value 5") && e.contains("NaN"), "{e}");
        let e = quantize_matrix(format, &[0.0; 64], 3, 32).unwrap_err().to_string();
        assert!(e.contains("(3, 32)") && e.contains("64"), "{e}");
        let e = quantize_matrix(format, &[0.0; 48], 1, 48).unwrap_err().to_string();
        assert!(e.contains("48"), "{e}");
        assert!(quantize_row(format, &[]).unwrap().is_empty());
        assert_eq!(quantize_matrix(format, &[], 0, 64).unwrap().shape(), (0, 64));
    }
}
