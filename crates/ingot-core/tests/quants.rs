//! Quantized tensor types, checked against the format description.
//!
//! For every GGML type Ingot reads, this file holds a plain reference dequantizer written from
//! ggml's block layouts (`ggml-common.h`) and `dequantize_row_*` loops (`ggml-quants.c`), one
//! block at a time, with nothing shared with candle. Random blocks (random payload bytes, finite
//! f16 scales in [-2, 2]) are written to a GGUF with `GgufWriter`, read back through
//! `GgufFile::open(..).tensor(..)`, and compared element by element: that checks Ingot's reader
//! (offsets, shapes, alignment) and candle's dequantization against the spec in one go.
//!
//! Then a quantized matmul (`QMatMul`, which quantizes the activations to Q8 on the CPU) is
//! checked against a plain f32 matmul by the dequantized weights, within a bound derived from
//! that activation rounding (see `matmul_tolerance`).
//!
//! Legend: R weight rows (output features), K row length (input features), B batch rows.

use std::path::PathBuf;

use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};
use ingot_core::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use ingot_core::Error;
use ingot_test_support::{real_model, temp_dir, TempDir};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every type Ingot loads; Q8_1 and Q8_K are only candle's activation formats (see `q8k_*`).
const TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// K elements per K-quant superblock.
const QK_K: usize = 256;

// ---------------------------------------------------------------------------------------------
// Reference decoders, from the format description

/// IEEE 754 binary16, decoded by hand (sign, 5-bit exponent biased by 15, 10-bit mantissa) so
/// the reference does not lean on the `half` crate that candle itself uses.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits >> 15 == 1 { -1.0f32 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let man = (bits & 0x3ff) as f32;
    match exp {
        0 => sign * man * 2f32.powi(-24), // subnormal: 0.m * 2^-14
        31 => {
            if man == 0.0 {
                sign * f32::INFINITY
            } else {
                f32::NAN
            }
        }
        e => sign * (1024.0 + man) * 2f32.powi(e - 25), // 1.m * 2^(e-15)
    }
}

/// bfloat16 is the top half of an f32.
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// K-quant 6-bit scale and min number `j` (0..8) from the 12 packed bytes of Q4_K / Q5_K:
/// `get_scale_min_k4` in ggml-quants.c.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    };
    (sc as f32, m as f32)
}

/// Dequantize one block of `ty` (`ty.type_size()` bytes) into `ty.block_size()` floats,
/// following ggml-quants.c `dequantize_row_*` for that type.
fn ref_block(ty: GgmlType, b: &[u8], y: &mut Vec<f32>) {
    match ty {
        GgmlType::F32 => y.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => y.push(f16_at(b, 0)),
        GgmlType::BF16 => y.push(bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        // block_q4_0 { f16 d; u8 qs[16] }: x = (nibble - 8) * d, low nibbles first.
        GgmlType::Q4_0 => {
            let d = f16_at(b, 0);
            let qs = &b[2..18];
            let mut out = [0f32; 32];
            for j in 0..16 {
                out[j] = ((qs[j] & 0xf) as i32 - 8) as f32 * d;
                out[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
            }
            y.extend_from_slice(&out);
        }
        // block_q4_1 { f16 d; f16 m; u8 qs[16] }: x = nibble * d + m.
        GgmlType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qs = &b[4..20];
            let mut out = [0f32; 32];
            for j in 0..16 {
                out[j] = (qs[j] & 0xf) as f32 * d + m;
                out[j + 16] = (qs[j] >> 4) as f32 * d + m;
            }
            y.extend_from_slice(&out);
        }
        // block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: 5th bit of element j is bit j of qh.
        GgmlType::Q5_0 => {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let qs = &b[6..22];
            let mut out = [0f32; 32];
            for j in 0..16 {
                let h0 = ((qh >> j) & 1) << 4;
                let h1 = ((qh >> (j + 16)) & 1) << 4;
                out[j] = (((qs[j] & 0xf) as u32 | h0) as i32 - 16) as f32 * d;
                out[j + 16] = (((qs[j] >> 4) as u32 | h1) as i32 - 16) as f32 * d;
            }
            y.extend_from_slice(&out);
        }
        // block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: x = q5 * d + m.
        GgmlType::Q5_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            let qs = &b[8..24];
            let mut out = [0f32; 32];
            for j in 0..16 {
                let h0 = ((qh >> j) & 1) << 4;
                let h1 = ((qh >> (j + 16)) & 1) << 4;
                out[j] = ((qs[j] & 0xf) as u32 | h0) as f32 * d + m;
                out[j + 16] = ((qs[j] >> 4) as u32 | h1) as f32 * d + m;
            }
            y.extend_from_slice(&out);
        }
        // block_q8_0 { f16 d; i8 qs[32] }.
        GgmlType::Q8_0 => {
            let d = f16_at(b, 0);
            y.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
        }
        // block_q8_k { f32 d; i8 qs[256]; i16 bsums[16] } (bsums are a cache for dot products).
        GgmlType::Q8K => {
            let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            y.extend(b[4..4 + QK_K].iter().map(|&q| q as i8 as f32 * d));
        }
        // block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }: 16 groups of 16; each scales
        // byte is (min << 4 | scale); 2-bit quants, four per byte, in 2 halves of 128.
        GgmlType::Q2K => {
            let (scales, qs) = (&b[0..16], &b[16..80]);
            let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
            let mut is = 0;
            for half in 0..2 {
                let q = &qs[32 * half..32 * half + 32];
                for shift in [0, 2, 4, 6] {
                    for part in 0..2 {
                        let sc = scales[is];
                        is += 1;
                        let dl = d * (sc & 0xf) as f32;
                        let ml = dmin * (sc >> 4) as f32;
                        for l in 0..16 {
                            y.push(dl * ((q[l + 16 * part] >> shift) & 3) as f32 - ml);
                        }
                    }
                }
            }
        }
        // block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }: 2 low bits in qs, the
        // high bit in hmask (set means +0, clear means -4); 16 signed 6-bit scales (offset 32)
        // whose low 4 bits are the nibbles of bytes 0..8 (low nibbles for scales 0..8, high for
        // 8..16) and whose top 2 bits are in bytes 8..12, 2 bits per scale.
        GgmlType::Q3K => {
            let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
            let d = f16_at(b, 108);
            let scale = |i: usize| -> f32 {
                let low = if i < 8 { packed[i] & 0xf } else { packed[i - 8] >> 4 };
                let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
                ((low | (high << 4)) as i32 - 32) as f32
            };
            let (mut is, mut m) = (0, 1u8);
            for half in 0..2 {
                let q = &qs[32 * half..32 * half + 32];
                for shift in [0, 2, 4, 6] {
                    for part in 0..2 {
                        let dl = d * scale(is);
                        is += 1;
                        for l in 16 * part..16 * part + 16 {
                            let low = ((q[l] >> shift) & 3) as i32;
                            let high = if hmask[l] & m != 0 { 0 } else { 4 };
                            y.push(dl * (low - high) as f32);
                        }
                    }
                    m <<= 1;
                }
            }
        }
        // block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }: 8 groups of 32 with 6-bit
        // scale and min; each 32 bytes of qs hold two groups (low nibbles, then high).
        GgmlType::Q4K => {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (scales, qs) = (&b[4..16], &b[16..144]);
            for g in 0..4 {
                let q = &qs[32 * g..32 * g + 32];
                let (sc1, m1) = scale_min_k4(2 * g, scales);
                let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
                let (d1, m1, d2, m2) = (d * sc1, dmin * m1, d * sc2, dmin * m2);
                y.extend(q.iter().map(|&x| d1 * (x & 0xf) as f32 - m1));
                y.extend(q.iter().map(|&x| d2 * (x >> 4) as f32 - m2));
            }
        }
        // block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: as Q4_K plus a
        // 5th bit for group 2g+i in bit 2g+i of qh[l].
        GgmlType::Q5K => {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
            for g in 0..4 {
                let ql = &qs[32 * g..32 * g + 32];
                let (sc1, m1) = scale_min_k4(2 * g, scales);
                let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
                let (d1, m1, d2, m2) = (d * sc1, dmin * m1, d * sc2, dmin * m2);
                let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
                for l in 0..32 {
                    let hi = if qh[l] & u1 != 0 { 16 } else { 0 };
                    y.push(d1 * ((ql[l] & 0xf) + hi) as f32 - m1);
                }
                for l in 0..32 {
                    let hi = if qh[l] & u2 != 0 { 16 } else { 0 };
                    y.push(d2 * ((ql[l] >> 4) + hi) as f32 - m2);
                }
            }
        }
        // block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: 6-bit quants offset by 32,
        // 4 low bits in ql, 2 high bits in qh; 16 groups of 16 with signed 8-bit scales.
        GgmlType::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = f16_at(b, 208);
            for half in 0..2 {
                let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
                let mut out = [0f32; 128];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    out[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                    out[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                    out[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                    out[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                }
                y.extend_from_slice(&out);
            }
        }
        GgmlType::Q8_1 => unreachable!("Q8_1 is not a storage type under test"),
    }
}

/// Dequantize a whole tensor's stored bytes with the reference.
fn ref_dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let ts = ty.type_size();
    assert_eq!(bytes.len() % ts, 0, "{} bytes is not whole {} blocks", bytes.len(), ty.name());
    let mut y = Vec::with_capacity(bytes.len() / ts * ty.block_size());
    for block in bytes.chunks_exact(ts) {
        ref_block(ty, block, &mut y);
    }
    y
}

// ---------------------------------------------------------------------------------------------
// Random blocks

/// Byte offsets of the f16 scale fields (d, m, dmin) within one block of `ty`.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    }
}

/// `n_blocks` random blocks of `ty`: random payload bytes, finite scales. Float types get random
/// finite bit patterns (so subnormals and extremes are covered, but no NaN, which never compares
/// equal), or with `tame` values uniform in [-2, 2] (a matmul over random bit patterns overflows).
fn random_blocks(ty: GgmlType, n_blocks: usize, tame: bool, rng: &mut StdRng) -> Vec<u8> {
    let ts = ty.type_size();
    let mut bytes = vec![0u8; n_blocks * ts];
    rng.fill(&mut bytes[..]);
    for block in bytes.chunks_exact_mut(ts) {
        let v: f32 = rng.random_range(-2.0..2.0);
        match ty {
            GgmlType::F32 if tame => block.copy_from_slice(&v.to_le_bytes()),
            GgmlType::F16 if tame => block.copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes()),
            GgmlType::BF16 if tame => block.copy_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes()),
            GgmlType::F32 => loop {
                let v = f32::from_bits(rng.random());
                if v.is_finite() {
                    block.copy_from_slice(&v.to_le_bytes());
                    break;
                }
            },
            GgmlType::F16 | GgmlType::BF16 => loop {
                let bits: u16 = rng.random();
                let v = if ty == GgmlType::F16 { f16_to_f32(bits) } else { bf16_to_f32(bits) };
                if v.is_finite() {
                    block.copy_from_slice(&bits.to_le_bytes());
                    break;
                }
            },
            GgmlType::Q8K => {
                let d: f32 = rng.random_range(-2.0..2.0);
                block[..4].copy_from_slice(&d.to_le_bytes());
            }
            _ => {
                for &at in f16_fields(ty) {
                    let v = half::f16::from_f32(rng.random_range(-2.0f32..2.0));
                    block[at..at + 2].copy_from_slice(&v.to_bits().to_le_bytes());
                }
            }
        }
    }
    bytes
}

/// Write one tensor of `ty` with shape [R, K] made of random blocks; return the file and bytes.
fn write_random(dir: &TempDir, ty: GgmlType, r: usize, k: usize, tame: bool, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n_blocks = r * k / ty.block_size();
    let bytes = random_blocks(ty, n_blocks, tame, &mut rng);
    let path = dir.join(&format!("{}.gguf", ty.name()));
    GgufWriter::new()
        .metadata("general.architecture", Value::String("test".into()))
        .tensor("w", &[r, k], ty, bytes.clone())
        .write(&path)
        .expect("writing a GGUF");
    (path, bytes)
}

/// Assert `got` matches the reference: exactly equal, or within 1e-6 of the largest magnitude
/// in the same block (float rounding may differ with the order of `d * sc * q - m`; a wrong bit
/// of layout is off by a whole quantization step, far more than that).
fn assert_matches_reference(what: &str, ty: GgmlType, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    let bs = ty.block_size();
    let mut exact = 0;
    for (blk, (g, w)) in got.chunks(bs).zip(want.chunks(bs)).enumerate() {
        let scale = w.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
            if g.to_bits() == w.to_bits() || g == w {
                exact += 1;
                continue;
            }
            let err = (g - w).abs();
            assert!(
                err <= 1e-6 * scale,
                "{what}: element {} (block {blk}, index {i}) is {g}, the reference gives {w} \
                 (error {err}, block max {scale})",
                blk * bs + i
            );
        }
    }
    if exact != got.len() {
        eprintln!("{what}: {exact} of {} elements bit-exact, the rest within 1e-6 of block max", got.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn dequantization_matches_reference_for_every_type() {
    let dir = temp_dir("quants-dequant");
    // [3, 768]: several rows, three 256-superblocks per row, 24 legacy blocks per row.
    let (r, k) = (3, 768);
    for (i, ty) in TYPES.into_iter().enumerate() {
        let (path, bytes) = write_random(&dir, ty, r, k, false, 1000 + i as u64);
        let file = GgufFile::open(&path).expect("opening the GGUF just written");
        let info = file.tensor_info("w").expect("tensor 'w'");
        assert_eq!(info.ggml_type, ty);
        assert_eq!(info.shape, vec![r, k]);
        assert_eq!(info.n_bytes, bytes.len(), "{}: n_bytes", ty.name());
        assert_eq!(file.tensor_bytes(info), &bytes[..], "{}: stored bytes differ", ty.name());

        let t = file.tensor("w", &Device::Cpu).expect("dequantizing");
        assert_eq!(t.dims(), &[r, k], "{}: dequantized shape", ty.name());
        let got: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let want = ref_dequantize(ty, &bytes);
        assert_matches_reference(ty.name(), ty, &got, &want);
    }
}

#[test]
fn reference_decoders_agree_with_hand_computed_values() {
    // A few blocks worked out by hand from the format description, so a mistake shared by the
    // reference and candle (both reading the same spec the same wrong way) still shows up.
    let one = half::f16::from_f32(1.0).to_bits().to_le_bytes();
    let half_ = half::f16::from_f32(0.5).to_bits().to_le_bytes();

    // Q4_0, d = 1: qs[0] = 0x9F -> element 0 = 15 - 8 = 7, element 16 = 9 - 8 = 1.
    let mut b = vec![0u8; 18];
    b[..2].copy_from_slice(&one);
    b[2] = 0x9f;
    let y = ref_dequantize(GgmlType::Q4_0, &b);
    assert_eq!((y[0], y[16], y[1]), (7.0, 1.0, -8.0));

    // Q4_1, d = 0.5, m = 1: qs[0] = 0x21 -> 1*0.5+1 = 1.5 and 2*0.5+1 = 2.
    let mut b = vec![0u8; 20];
    b[..2].copy_from_slice(&half_);
    b[2..4].copy_from_slice(&one);
    b[4] = 0x21;
    let y = ref_dequantize(GgmlType::Q4_1, &b);
    assert_eq!((y[0], y[16], y[1]), (1.5, 2.0, 1.0));

    // Q5_0, d = 1: qh bit 0 and bit 16 set -> element 0 = (0|16) - 16 = 0, element 16 likewise;
    // element 1 = 0 - 16 = -16.
    let mut b = vec![0u8; 22];
    b[..2].copy_from_slice(&one);
    b[2..6].copy_from_slice(&0x0001_0001u32.to_le_bytes());
    let y = ref_dequantize(GgmlType::Q5_0, &b);
    assert_eq!((y[0], y[16], y[1], y[17]), (0.0, 0.0, -16.0, -16.0));

    // Q6_K, d = 1, scales all 1, all ql/qh zero -> every element is -32.
    let mut b = vec![0u8; 210];
    b[192..208].fill(1);
    b[208..210].copy_from_slice(&one);
    let y = ref_dequantize(GgmlType::Q6K, &b);
    assert!(y.iter().all(|&v| v == -32.0));

    // Q4_K: d = 1, dmin = 0.5, scale/min 0 = (3, 2) -> element 0 with nibble 5 = 3*5 - 1 = 14.
    let mut b = vec![0u8; 144];
    b[..2].copy_from_slice(&one);
    b[2..4].copy_from_slice(&half_);
    b[4] = 3; // scale 0
    b[8] = 2; // min 0
    b[16] = 5;
    let y = ref_dequantize(GgmlType::Q4K, &b);
    assert_eq!(y[0], 14.0);

    // f16 decoding: 1.0, -2.0, the smallest subnormal and 65504.
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
}

/// How far a quantized matmul may be from the f32 matmul by the dequantized weights, for one
/// output element with activation row `x` and weight row `w_row`.
///
/// candle's CPU path quantizes each activation row to Q8 (Q8_0/Q8_1 in blocks of 32 for the
/// legacy types, Q8_K in blocks of 256 for K-quants): x_j ~ q_j * d with d = amax/127 over the
/// block, so each x_j is off by a rounding error e_j in [-d/2, d/2]. These are independent and
/// uniform, so sum_j w_j e_j has standard deviation sqrt(sum_j (w_j d_j)^2 / 12); we allow six of
/// them, taking amax over the 256-element block of j (at least the true block's amax, so this
/// covers both block sizes). The worst case, sum_j |w_j| d_j / 2, is about 20x looser and would
/// let a wrongly decoded block through. On top: the Q8_0/Q8_1 scale and the Q8_1 block sum are
/// stored as f16 (2^-11 relative) and the dot products accumulate in f32, so add 1e-3 of
/// sum_j |w_j x_j|. For these inputs the tolerance is ~1% of a typical output; the observed
/// error is reported by the test (worst error / tolerance, 0.06-0.3 when written). Separately,
/// the error relative to the whole output's norm, expected ~1e-2 or below with Q8 activations
/// (1.5e-3 to 1e-2 when written, with only 5-35 outputs to average over), must stay under 3e-2; a
/// wrongly decoded weight layout gives O(1).
fn matmul_tolerance(x: &[f32], w_row: &[f32]) -> f32 {
    let (mut var, mut abs) = (0f64, 0f64);
    for (blk_x, blk_w) in x.chunks(QK_K).zip(w_row.chunks(QK_K)) {
        let d = blk_x.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
        for (&xj, &wj) in blk_x.iter().zip(blk_w) {
            var += (wj as f64 * d).powi(2) / 12.0;
            abs += (wj as f64 * xj as f64).abs();
        }
    }
    (6.0 * var.sqrt() + 1e-3 * abs + 1e-5) as f32
}

#[test]
fn quantized_matmul_matches_dequantized_matmul() {
    let dir = temp_dir("quants-matmul");
    // R = 5 output rows, K = 512 inputs (two superblocks, sixteen legacy blocks).
    let (r, k) = (5, 512);
    for (i, ty) in TYPES.into_iter().enumerate() {
        let (path, _) = write_random(&dir, ty, r, k, true, 2000 + i as u64);
        let file = GgufFile::open(&path).unwrap();
        let w = file.tensor("w", &Device::Cpu).unwrap(); // (R, K)
        let w_rows: Vec<Vec<f32>> = w.to_vec2().unwrap();
        let mm = QMatMul::from_qtensor(file.qtensor("w", &Device::Cpu).unwrap()).unwrap();
        for b in [1usize, 7] {
            let mut rng = StdRng::seed_from_u64(3000 + 10 * i as u64 + b as u64);
            let xs: Vec<f32> = (0..b * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let x = Tensor::from_vec(xs.clone(), (b, k), &Device::Cpu).unwrap(); // (B, K)
            let got: Vec<Vec<f32>> = mm.forward(&x).unwrap().to_vec2().unwrap(); // (B, R)
            let want: Vec<Vec<f32>> = x.matmul(&w.t().unwrap()).unwrap().to_vec2().unwrap(); // (B, R)
            assert_eq!((got.len(), got[0].len()), (b, r), "{}: output shape", ty.name());
            let (mut worst, mut err2, mut norm2) = (0f32, 0f64, 0f64);
            for bi in 0..b {
                let x_row = &xs[bi * k..(bi + 1) * k];
                for ri in 0..r {
                    let tol = if ty.is_float() {
                        // Dense path: the same f32 matmul, up to summation order.
                        1e-5 * w_rows[ri].iter().zip(x_row).map(|(w, x)| (w * x).abs()).sum::<f32>()
                    } else {
                        matmul_tolerance(x_row, &w_rows[ri])
                    };
                    let (g, e) = (got[bi][ri], want[bi][ri]);
                    let err = (g - e).abs();
                    worst = worst.max(err / tol);
                    err2 += (err as f64).powi(2);
                    norm2 += (e as f64).powi(2);
                    assert!(
                        err <= tol,
                        "{} b={b}: output ({bi}, {ri}) is {g}, dequantized matmul gives {e} \
                         (error {err} > tolerance {tol})",
                        ty.name()
                    );
                }
            }
            let rel = (err2 / norm2).sqrt();
            eprintln!("{} b={b}: worst error / tolerance = {worst:.3}, relative error = {rel:.1e}", ty.name());
            assert!(rel < 3e-2, "{} b={b}: relative error {rel:.2e} of the output norm, expected < 3e-2", ty.name());
        }
    }
}

#[test]
fn q8k_and_q8_1_are_rejected_cleanly() {
    // Q8_K and Q8_1 are activation formats: candle cannot load them from a file. A file holding
    // one must give an error that names the tensor and type, at open or at load, never a panic
    // or garbage.
    let dir = temp_dir("quants-q8k");
    for ty in [GgmlType::Q8K, GgmlType::Q8_1] {
        let mut rng = StdRng::seed_from_u64(7);
        let bytes = random_blocks(ty, 2, false, &mut rng);
        let path = dir.join(&format!("{}.gguf", ty.name()));
        GgufWriter::new().tensor("act", &[2, ty.block_size()], ty, bytes.clone()).write(&path).unwrap();
        match GgufFile::open(&path) {
            Err(e @ Error::UnsupportedTensorType { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("'act'") && msg.contains(ty.name()), "{msg}");
            }
            Err(e) => panic!("{}: expected UnsupportedTensorType, got {e:?}", ty.name()),
            Ok(file) => {
                // Accepted at open: then it must load and match the reference.
                let t = file
                    .tensor("act", &Device::Cpu)
                    .unwrap_or_else(|e| panic!("{}: open() accepted the file but loading fails: {e}", ty.name()));
                let got: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                assert_matches_reference(ty.name(), ty, &got, &ref_dequantize(ty, &bytes));
            }
        }
    }
}

#[test]
fn real_model_tensors_match_reference() {
    let Some(path) = real_model() else { return };
    let file = GgufFile::open(&path).unwrap();
    for (name, ty) in [("token_embd.weight", GgmlType::Q8_0), ("blk.0.attn_q.weight", GgmlType::Q4_1)] {
        let info = file.tensor_info(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(info.ggml_type, ty, "{name}: type");
        let t = file.tensor(name, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &info.shape[..], "{name}: shape");
        let got: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let want = ref_dequantize(ty, file.tensor_bytes(info));
        assert_matches_reference(name, ty, &got, &want);
        // A real checkpoint's weights are small and finite.
        assert!(got.iter().all(|v| v.is_finite() && v.abs() < 100.0), "{name}: implausible values");
    }
    // And every tensor of the file loads, with the element count its shape says.
    for info in file.tensors() {
        let t = file.tensor(&info.name, &Device::Cpu).unwrap();
        assert_eq!(t.elem_count(), info.elem_count(), "{}", info.name);
    }
}
