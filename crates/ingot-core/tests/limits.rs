//! The size and sanity limits of `ingot_core::limits`, and the GGUF checks that use them: memory
//! estimates refuse before allocating, `--threads` is bounded by the cores, non-finite weights
//! are found in the stored bytes of every supported GGUF type, and tensor offsets must honour
//! `general.alignment`.
//!
//! The scale check is tested against candle's own decoder, not against Ingot's table of scale
//! offsets: for every 2-byte position of a block, writing an f16 infinity there must be reported
//! exactly when candle's dequantized output then holds a NaN or an infinity.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use ingot_core::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use ingot_core::limits;
use ingot_test_support::temp_dir;

/// Every error here must be a single line (the CLI prints it as is).
fn one_line(e: &ingot_core::Error) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "error spans lines: {m}");
    m
}

#[test]
fn memory_estimates_beyond_any_machine_are_refused_with_the_figure() {
    let e = limits::check_memory("a test table", u128::MAX).unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("a test table needs an estimated"), "{m}");
    assert!(m.contains("over the limit of"), "{m}");
    // Something small fits everywhere.
    limits::check_memory("a test table", 1024).unwrap();
    // Sizes multiply without overflowing.
    assert_eq!(limits::product(&[usize::MAX, usize::MAX, usize::MAX]), u128::MAX);
    assert_eq!(limits::product(&[3, 4, 5]), 60);
}

#[test]
fn bpe_training_is_refused_before_the_trainer_allocates() {
    // The vocabulary cap, with the field, the value and the limit.
    let m = one_line(&limits::check_bpe_training("--vocab-size", 1_000_000_000).unwrap_err());
    assert!(m.contains("--vocab-size = 1000000000") && m.contains(&limits::MAX_VOCAB.to_string()), "{m}");
    // A usual size passes, and the estimate grows with the vocabulary.
    limits::check_bpe_training("--vocab-size", 4096).unwrap();
    assert!(limits::bpe_training_bytes(1 << 20) > 30 << 20);
}

#[test]
fn threads_are_bounded_by_the_cores() {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    limits::check_threads("--threads", 1).unwrap();
    limits::check_threads("--threads", cores * limits::THREADS_PER_CORE).unwrap();
    for n in [0, cores * limits::THREADS_PER_CORE + 1, 1000.max(cores * 4 + 1)] {
        let m = one_line(&limits::check_threads("--threads", n).unwrap_err());
        assert!(m.contains(&format!("--threads {n}")) && m.contains(&format!("1 to {}", cores * 4)), "{m}");
    }
}

#[test]
fn numbers_name_their_field_and_value() {
    let m = one_line(&limits::positive_finite("rope_theta", 0.0).unwrap_err());
    assert!(m.contains("rope_theta = 0"), "{m}");
    assert!(limits::positive_finite("rope_theta", f64::NAN).is_err());
    assert!(limits::positive_finite("rope_theta", f64::INFINITY).is_err());
    let m = one_line(&limits::non_negative_finite("rms_norm_eps", -1e-5).unwrap_err());
    assert!(m.contains("rms_norm_eps = -0.00001"), "{m}");
    limits::non_negative_finite("rms_norm_eps", 0.0).unwrap();
    assert!(limits::probability("attn_pdrop", 1.0).is_err());
    limits::probability("attn_pdrop", 0.0).unwrap();
    let m = one_line(&limits::at_least("--stride", 0, 1).unwrap_err());
    assert_eq!(m, "--stride 0 is below the minimum of 1");
    let m = one_line(&limits::at_least("data.eval_batches", 0, 1).unwrap_err());
    assert_eq!(m, "data.eval_batches = 0 is below the minimum of 1");
}

#[test]
fn non_finite_floats_are_found_by_element() {
    let mut f32s: Vec<u8> = [1.0f32, -2.5, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(limits::first_non_finite(GgmlType::F32, &f32s), None);
    f32s[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(limits::first_non_finite(GgmlType::F32, &f32s), Some(2));
    f32s[4..8].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    assert_eq!(limits::first_non_finite(GgmlType::F32, &f32s), Some(1));

    let halves =
        |vals: &[f32]| -> Vec<u8> { vals.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect() };
    assert_eq!(limits::first_non_finite(GgmlType::F16, &halves(&[0.5, 65504.0])), None);
    assert_eq!(limits::first_non_finite(GgmlType::F16, &halves(&[0.5, f32::INFINITY])), Some(1));
    let bf = |vals: &[f32]| -> Vec<u8> { vals.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect() };
    assert_eq!(limits::first_non_finite(GgmlType::BF16, &bf(&[1e30, -1e30])), None);
    assert_eq!(limits::first_non_finite(GgmlType::BF16, &bf(&[f32::NAN, 1.0])), Some(0));
}

/// Every quantized type Ingot loads, with candle's name.
const QUANTS: [(GgmlType, GgmlDType); 10] = [
    (GgmlType::Q4_0, GgmlDType::Q4_0),
    (GgmlType::Q4_1, GgmlDType::Q4_1),
    (GgmlType::Q5_0, GgmlDType::Q5_0),
    (GgmlType::Q5_1, GgmlDType::Q5_1),
    (GgmlType::Q8_0, GgmlDType::Q8_0),
    (GgmlType::Q2K, GgmlDType::Q2K),
    (GgmlType::Q3K, GgmlDType::Q3K),
    (GgmlType::Q4K, GgmlDType::Q4K),
    (GgmlType::Q5K, GgmlDType::Q5K),
    (GgmlType::Q6K, GgmlDType::Q6K),
];

#[test]
fn quantized_blocks_with_a_non_finite_scale_are_found_as_candle_decodes_them() {
    let dir = temp_dir("limits-quant-scales");
    let dev = Device::Cpu;
    // Two rows of 256 (one K-quant block or eight small blocks each), values in about ±1.
    let values: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let t = Tensor::from_vec(values, (2, 256), &dev).unwrap();
    for (ty, dtype) in QUANTS {
        let q = QTensor::quantize(&t, dtype).unwrap();
        let clean = q.data().unwrap().into_owned();
        assert_eq!(limits::first_non_finite(ty, &clean), None, "{ty:?}: a clean tensor");
        // The second block gets an f16 infinity at each even position in turn, one tensor each.
        let size = ty.type_size();
        let mut w = GgufWriter::new();
        for pos in (0..size).step_by(2) {
            let mut bytes = clean.clone();
            bytes[size + pos..size + pos + 2].copy_from_slice(&half::f16::INFINITY.to_le_bytes());
            w.tensor(format!("p{pos}"), &[2, 256], ty, bytes);
        }
        let path = dir.join(format!("{ty:?}.gguf"));
        w.write(&path).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let mut scales = 0;
        for pos in (0..size).step_by(2) {
            let info = file.tensor_info(&format!("p{pos}")).unwrap();
            let found = limits::first_non_finite(ty, file.tensor_bytes(info));
            let decoded: Vec<f32> = file.tensor(&info.name, &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let broken = decoded.iter().any(|v| !v.is_finite());
            assert_eq!(found.is_some(), broken, "{ty:?}: f16 infinity at byte {pos} of a block");
            if let Some(block) = found {
                assert_eq!(block, 1, "{ty:?}: the poisoned block is the second");
                scales += 1;
            }
        }
        // Every type has at least its d scale; the types with a min have two.
        assert!(scales >= 1, "{ty:?}: no scale position found");
    }
}

#[test]
fn tensor_offsets_must_honour_the_alignment() {
    let dir = temp_dir("limits-gguf-align");
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("test".into()));
    w.tensor("a", &[8], GgmlType::F32, vec![0u8; 32]);
    w.tensor("b", &[8], GgmlType::F32, vec![0u8; 32]);
    let good = w.to_bytes();
    let path = dir.join("good.gguf");
    std::fs::write(&path, &good).unwrap();
    GgufFile::open(&path).unwrap();

    // Tensor info of "b": u64 name length, "b", u32 n_dims, u64 dim, u32 type, u64 offset.
    let mut needle = 1u64.to_le_bytes().to_vec();
    needle.push(b'b');
    let at = good.windows(needle.len()).position(|w| w == needle.as_slice()).unwrap();
    let offset_at = at + needle.len() + 4 + 8 + 4;
    assert_eq!(u64::from_le_bytes(good[offset_at..offset_at + 8].try_into().unwrap()), 32);
    let mut bad = good.clone();
    bad[offset_at..offset_at + 8].copy_from_slice(&4u64.to_le_bytes()); // inside the file, unaligned
    let path = dir.join("unaligned.gguf");
    std::fs::write(&path, &bad).unwrap();
    let e = GgufFile::open(&path).unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("offset 4") && m.contains("general.alignment 32"), "{m}");
}
