//! The GGUF container: metadata round trips, alignment, and every way a file can be broken.
//!
//! Files are built two ways: with `GgufWriter`, and byte by byte with `Raw` below, written from
//! ggml's `docs/gguf.md` (little-endian; header = magic "GGUF", u32 version, u64 tensor count,
//! u64 metadata count; key = u64 length + bytes, u32 value type, value; tensor info = name,
//! u32 n_dims, u64 dims fastest-varying first, u32 GGML type, u64 offset from the data start;
//! data starts at the next multiple of `general.alignment`, default 32). Building by hand keeps
//! the reader honest against the spec rather than against our own writer, and makes the broken
//! files the writer would refuse to produce.
//!
//! Every error case asserts the variant and that the message is one line naming the file and
//! the problem. Nothing here may panic: a user can hand Ingot any file.

use std::panic::{catch_unwind, AssertUnwindSafe};

use candle_core::Device;
use ingot_core::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use ingot_core::Error;
use ingot_test_support::{temp_dir, TempDir};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Write `bytes` (atomically) to `name` in `dir` and open it.
fn open(dir: &TempDir, name: &str, bytes: &[u8]) -> Result<GgufFile, Error> {
    let path = dir.join(name);
    ingot_core::atomic::write_file(&path, bytes).expect("writing a test file");
    GgufFile::open(&path)
}

/// As `open`, for the loops that write hundreds of files: a plain write, since the fsyncs of an
/// atomic write would dominate the run time and nothing here needs durability.
fn open_fast(dir: &TempDir, name: &str, bytes: &[u8]) -> Result<GgufFile, Error> {
    std::fs::write(dir.join(name), bytes).expect("writing a test file");
    GgufFile::open(dir.join(name))
}

/// Little-endian byte builder for hand-made GGUF files.
#[derive(Default, Clone)]
struct Raw(Vec<u8>);

impl Raw {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// GGUF v3 header.
    fn header(n_tensors: u64, n_kv: u64) -> Self {
        Raw::default().bytes(b"GGUF").u32(3).u64(n_tensors).u64(n_kv)
    }
    /// A tensor info; `dims` in GGUF order (fastest-varying first).
    fn info(self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(type_id).u64(offset)
    }
    fn pad_to(mut self, align: usize) -> Self {
        self.0.resize(self.0.len().div_ceil(align) * align, 0);
        self
    }
}

/// The error's message is one line and mentions each of `needles`.
fn assert_message(e: &Error, needles: &[&str]) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "message spans lines: {msg:?}");
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} should mention {n:?}");
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One Q8_0 block: d = 0.5, qs = -16..16, so element i is (i - 16) / 2.
fn q8_0_block() -> Vec<u8> {
    let mut b = half::f16::from_f32(0.5).to_bits().to_le_bytes().to_vec();
    b.extend((-16i8..16).map(|q| q as u8));
    b
}

fn q8_0_values() -> Vec<f32> {
    (-16..16).map(|q| q as f32 * 0.5).collect()
}

/// A small valid file: a few metadata kinds and three tensors of different types and sizes.
fn small_file() -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut q4k = vec![0u8; GgmlType::Q4K.type_size()];
    rng.fill(&mut q4k[..]);
    q4k[..2].copy_from_slice(&half::f16::from_f32(0.25).to_bits().to_le_bytes());
    q4k[2..4].copy_from_slice(&half::f16::from_f32(0.125).to_bits().to_le_bytes());
    GgufWriter::new()
        .metadata("general.architecture", Value::String("llama".into()))
        .metadata("llama.block_count", Value::U32(2))
        .metadata("tokenizer.ggml.tokens", Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]))
        .metadata("llama.rope.freq_base", Value::F32(10000.0))
        .tensor("f", &[2, 3], GgmlType::F32, f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
        .tensor("q", &[1, 32], GgmlType::Q8_0, q8_0_block())
        .tensor("k", &[1, 256], GgmlType::Q4K, q4k)
        .to_bytes()
}

// ---------------------------------------------------------------------------------------------
// Metadata and layout

#[test]
fn metadata_round_trips_every_value_type() {
    let s = |v: &str| Value::String(v.into());
    let values = vec![
        ("u8", Value::U8(0xab)),
        ("i8", Value::I8(-128)),
        ("u16", Value::U16(u16::MAX)),
        ("i16", Value::I16(i16::MIN)),
        ("u32", Value::U32(u32::MAX)),
        ("i32", Value::I32(i32::MIN)),
        ("f32", Value::F32(-1.5e-30)),
        ("f32.neg_zero", Value::F32(-0.0)),
        ("bool.true", Value::Bool(true)),
        ("bool.false", Value::Bool(false)),
        ("string", s("héllo ✓ \"quoted\"\n")),
        ("string.empty", s("")),
        ("array.strings", Value::Array(vec![s("<s>"), s(""), s("Ġthe")])),
        ("array.i32", Value::Array(vec![Value::I32(-1), Value::I32(0), Value::I32(i32::MAX)])),
        ("array.empty", Value::Array(vec![])),
        (
            "array.nested",
            Value::Array(vec![
                Value::Array(vec![Value::U8(1), Value::U8(2)]),
                Value::Array(vec![s("x")]),
                Value::Array(vec![]),
            ]),
        ),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(std::f64::consts::PI)),
    ];
    let mut w = GgufWriter::new();
    for (k, v) in &values {
        w.metadata(*k, v.clone());
    }
    let dir = temp_dir("gguf-meta");
    let path = dir.join("meta.gguf");
    w.write(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), w.to_bytes(), "write() and to_bytes() differ");
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.metadata().len(), values.len());
    for (k, v) in &values {
        let got = file.get(k).unwrap_or_else(|| panic!("key {k} missing"));
        assert_eq!(got, v, "key {k}");
    }
    // PartialEq says -0.0 == 0.0: check the sign survived.
    assert_eq!(file.get("f32.neg_zero"), Some(&Value::F32(-0.0)));
    assert!(matches!(file.get("f32.neg_zero"), Some(Value::F32(z)) if z.is_sign_negative()));
    // The typed getters.
    assert_eq!(file.get_u64("u32").unwrap(), Some(u32::MAX as u64));
    assert_eq!(file.get_str("string.empty").unwrap(), Some(""));
    assert_eq!(file.get_str_array("array.strings").unwrap(), Some(vec!["<s>", "", "Ġthe"]));
    let e = file.require_str("u8").unwrap_err();
    assert!(matches!(e, Error::WrongType { .. }), "{e:?}");
    assert_message(&e, &["'u8'", "a string", "u8"]);
    let e = file.require_u64("no.such.key").unwrap_err();
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    assert_message(&e, &["meta.gguf", "no.such.key"]);
}

#[test]
fn writer_output_follows_the_spec() {
    // Hand-encoded from docs/gguf.md; the writer must produce exactly these bytes.
    let t = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]); // 24 bytes
    let u = q8_0_block(); // 34 bytes
    let got = GgufWriter::new()
        .metadata("a", Value::U32(7))
        .tensor("t", &[2, 3], GgmlType::F32, t.clone())
        .tensor("u", &[32], GgmlType::Q8_0, u.clone())
        .to_bytes();
    let want = Raw::header(2, 1)
        .str("a")
        .u32(4) // GGUF_TYPE_UINT32
        .u32(7)
        .info("t", &[3, 2], 0, 0) // candle [2, 3] is GGUF dims [3, 2]
        .info("u", &[32], 8, 32) // 24 bytes padded to 32
        .pad_to(32)
        .bytes(&t)
        .pad_to(32)
        .bytes(&u);
    assert_eq!(&got[..want.0.len()], &want.0[..], "writer bytes differ from the spec");
    let tail = &got[want.0.len()..];
    assert!(tail.len() < 32 && tail.iter().all(|&b| b == 0), "trailing bytes {tail:?}");
    // And the reader agrees with the hand-made file.
    let dir = temp_dir("gguf-spec");
    let file = open(&dir, "spec.gguf", &want.0).unwrap();
    let infos = file.tensors();
    assert_eq!((infos[0].name.as_str(), infos[0].shape.as_slice()), ("t", &[2usize, 3][..]));
    assert_eq!((infos[1].name.as_str(), infos[1].shape.as_slice()), ("u", &[32usize][..]));
    let tv: Vec<Vec<f32>> = file.tensor("t", &Device::Cpu).unwrap().to_vec2().unwrap();
    assert_eq!(tv, vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
    let uv: Vec<f32> = file.tensor("u", &Device::Cpu).unwrap().to_vec1().unwrap();
    assert_eq!(uv, q8_0_values());
}

#[test]
fn reader_honours_general_alignment() {
    // An F32 tensor of 12 bytes, then a Q8_0 block at the next aligned offset. Alignment 1 puts
    // the Q8_0 block at an odd address, which the reader must copy before candle reads it.
    let dir = temp_dir("gguf-align-read");
    let f = f32_bytes(&[1.0, -2.0, 3.5]);
    for align in [1u32, 2, 8, 32, 64, 256] {
        let a = align as usize;
        let q_offset = f.len().div_ceil(a) * a;
        let bytes = Raw::header(2, 1)
            .str("general.alignment")
            .u32(4)
            .u32(align)
            .info("f", &[3], 0, 0)
            .info("q", &[32], 8, q_offset as u64)
            .pad_to(a)
            .bytes(&f)
            .pad_to(a)
            .bytes(&q8_0_block());
        let file = open(&dir, &format!("align{align}.gguf"), &bytes.0).unwrap();
        let fi = file.tensor_info("f").unwrap();
        let qi = file.tensor_info("q").unwrap();
        assert_eq!(fi.offset % a, 0, "alignment {align}: data start");
        assert_eq!(qi.offset - fi.offset, q_offset, "alignment {align}: offsets");
        let fv: Vec<f32> = file.tensor("f", &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(fv, vec![1.0, -2.0, 3.5], "alignment {align}");
        let qv: Vec<f32> = file.tensor("q", &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(qv, q8_0_values(), "alignment {align}");
    }
}

#[test]
fn writer_honours_general_alignment() {
    // A file that declares general.alignment must be laid out with it: readers (ours, llama.cpp)
    // compute the data start and check offsets with the declared value.
    let dir = temp_dir("gguf-align-write");
    let f = f32_bytes(&[1.0, 2.0, 3.0]); // 12 bytes, so the next tensor's offset depends on alignment
    for align in [8u32, 64, 128] {
        let path = dir.join(&format!("w{align}.gguf"));
        GgufWriter::new()
            .metadata("general.alignment", Value::U32(align))
            .tensor("f", &[3], GgmlType::F32, f.clone())
            .tensor("q", &[32], GgmlType::Q8_0, q8_0_block())
            .write(&path)
            .unwrap();
        let file = GgufFile::open(&path).unwrap();
        for info in file.tensors() {
            assert_eq!(info.offset % align as usize, 0, "alignment {align}: tensor '{}' at {}", info.name, info.offset);
        }
        let fv: Vec<f32> = file.tensor("f", &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(fv, vec![1.0, 2.0, 3.0], "alignment {align}");
        let qv: Vec<f32> = file.tensor("q", &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(qv, q8_0_values(), "alignment {align}");
    }
}

#[test]
fn bad_alignment_is_corrupt() {
    let dir = temp_dir("gguf-align-bad");
    for (i, (type_id, payload)) in
        [(4u32, Raw::default().u32(0)), (4, Raw::default().u32(3)), (8, Raw::default().str("32"))]
            .into_iter()
            .enumerate()
    {
        let bytes = Raw::header(0, 1).str("general.alignment").u32(type_id).bytes(&payload.0);
        let e = open(&dir, &format!("bad{i}.gguf"), &bytes.0).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "case {i}: {e:?}");
        assert_message(&e, &[&format!("bad{i}.gguf"), "general.alignment"]);
    }
}

#[test]
fn versions_1_and_2_are_read() {
    // v2 has v3's layout; v1 used u32 for counts, string lengths and dims.
    let dir = temp_dir("gguf-old");
    let f = f32_bytes(&[0.5, -1.0]);
    let v2 = Raw::default()
        .bytes(b"GGUF")
        .u32(2)
        .u64(1)
        .u64(1)
        .str("general.name")
        .u32(8)
        .str("old")
        .info("t", &[2], 0, 0)
        .pad_to(32)
        .bytes(&f);
    let v1 = Raw::default()
        .bytes(b"GGUF")
        .u32(1)
        .u32(1)
        .u32(1)
        .u32(12)
        .bytes(b"general.name")
        .u32(8)
        .u32(3)
        .bytes(b"old")
        .u32(1)
        .bytes(b"t")
        .u32(1) // n_dims
        .u32(2) // dims[0]
        .u32(0) // F32
        .u64(0) // offset
        .pad_to(32)
        .bytes(&f);
    for (version, raw) in [(2, v2), (1, v1)] {
        let file = open(&dir, &format!("v{version}.gguf"), &raw.0).unwrap();
        assert_eq!(file.version(), version);
        assert_eq!(file.get_str("general.name").unwrap(), Some("old"), "v{version}");
        let t: Vec<f32> = file.tensor("t", &Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(t, vec![0.5, -1.0], "v{version}");
    }
}

// ---------------------------------------------------------------------------------------------
// Not a GGUF file

#[test]
fn missing_file_is_not_found() {
    let dir = temp_dir("gguf-missing");
    let path = dir.join("no-such-model.gguf");
    let e = GgufFile::open(&path).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_message(&e, &["no-such-model.gguf", "not found"]);
}

#[test]
fn empty_and_tiny_files_are_truncated() {
    // An interrupted download leaves a file that is a prefix of a GGUF: say so, not "bad magic".
    let dir = temp_dir("gguf-empty");
    for (i, bytes) in [&b""[..], b"G", b"GGU"].into_iter().enumerate() {
        let e = open(&dir, &format!("tiny{i}.gguf"), bytes).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{} bytes: {e:?}", bytes.len());
        assert_message(&e, &[&format!("tiny{i}.gguf"), "truncated", &format!("has {} bytes", bytes.len())]);
    }
}

#[test]
fn wrong_magic_is_bad_magic() {
    let dir = temp_dir("gguf-magic");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let cases: [(&str, &[u8]); 4] = [
        ("png", png),
        ("json", b"{\"model_type\": \"llama\"}"),
        ("ggml", b"lmgg\x01\0\0\0"), // the GGUF predecessor
        ("two", b"PK"),
    ];
    for (name, bytes) in cases {
        let e = open(&dir, &format!("{name}.gguf"), bytes).unwrap_err();
        assert!(matches!(e, Error::BadMagic { .. }), "{name}: {e:?}");
        assert_message(&e, &[&format!("{name}.gguf"), "not a GGUF file"]);
    }
}

#[test]
fn unsupported_versions_are_corrupt() {
    let dir = temp_dir("gguf-version");
    for (version, needle) in [(4u32, "version 4"), (3u32.swap_bytes(), "big-endian"), (99, "version 99")] {
        let bytes = Raw::default().bytes(b"GGUF").u32(version).u64(0).u64(0);
        let e = open(&dir, "v.gguf", &bytes.0).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "version {version}: {e:?}");
        assert_message(&e, &["v.gguf", needle]);
    }
}

// ---------------------------------------------------------------------------------------------
// Truncated and corrupt files

#[test]
fn truncation_anywhere_is_an_error() {
    let full = small_file();
    let dir = temp_dir("gguf-trunc");
    let file = open(&dir, "full.gguf", &full).unwrap();
    // Where each part of the file ends, to check each kind of cut names what it cut into.
    let needed = file.tensors().iter().map(|t| t.offset + t.n_bytes).max().unwrap();
    let data_start = file.tensors().iter().map(|t| t.offset).min().unwrap();
    let want: Vec<Vec<f32>> = file
        .tensors()
        .iter()
        .map(|t| file.tensor(&t.name, &Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    // Header: 4 magic + 4 version + 8 tensor count + 8 metadata count = 24 bytes. The first key
    // is "general.architecture" (8-byte length + 20 bytes), then its u32 type, then its value.
    let metadata_at = 24 + 8 + "general.architecture".len() + 4;
    // The tensor info of "f": name length 1 (u64), then the name.
    let tensor_info_at = find(&full, b"\x01\0\0\0\0\0\0\0f");
    let cases = [
        (10, "the tensor count"),                                   // in the header
        (metadata_at + 3, "general.architecture"),                  // in the first metadata value
        (tensor_info_at + 9 + 2, "bytes for tensor 'f' at offset"), // in "f"'s dimension count
        (data_start + 5, "tensor 'f'"),                             // in the first tensor's data
        (needed - 1, "tensor 'k'"),                                 // one byte short of the end
    ];
    for (cut, needle) in cases {
        let e = open_fast(&dir, "cut.gguf", &full[..cut]).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "cut at {cut}: {e:?}");
        assert_message(&e, &["cut.gguf", "truncated", needle]);
    }
    // Every cut point: an error before all tensor data is present, the same tensors after.
    for cut in 0..full.len() {
        let result = catch_unwind(AssertUnwindSafe(|| open_fast(&dir, "cut.gguf", &full[..cut])));
        let result = result.unwrap_or_else(|_| panic!("open() panicked on the file cut at {cut} of {}", full.len()));
        match result {
            Err(Error::Truncated { .. }) if cut < needed => {}
            Err(e) => panic!("cut at {cut} of {} (data needs {needed}): expected Truncated, got {e:?}", full.len()),
            Ok(_) if cut < needed => panic!("cut at {cut} of {} opened, but tensor data needs {needed}", full.len()),
            Ok(f) => {
                for (t, want) in f.tensors().iter().zip(&want) {
                    let got: Vec<f32> =
                        f.tensor(&t.name, &Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                    assert_eq!(&got, want, "cut at {cut}: tensor '{}'", t.name);
                }
            }
        }
    }
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).expect("needle not in file")
}

#[test]
fn unknown_tensor_types_are_unsupported() {
    let dir = temp_dir("gguf-ttype");
    for (type_id, type_name) in [(16u32, "IQ2_XXS"), (4, "Q4_2"), (999, "unknown"), (u32::MAX, "unknown")] {
        let bytes = Raw::header(2, 0)
            .info("ok", &[4], 0, 0)
            .info("blk.0.odd", &[256], type_id, 32)
            .pad_to(32)
            .bytes(&[0u8; 1024]);
        let e = open(&dir, "ttype.gguf", &bytes.0).unwrap_err();
        match &e {
            Error::UnsupportedTensorType { tensor, type_id: id, .. } => {
                assert_eq!((tensor.as_str(), *id), ("blk.0.odd", type_id));
            }
            other => panic!("type {type_id}: expected UnsupportedTensorType, got {other:?}"),
        }
        assert_message(&e, &["ttype.gguf", "'blk.0.odd'", &type_id.to_string(), type_name]);
    }
}

#[test]
fn absurd_lengths_are_errors_not_allocations() {
    // Each case claims far more than the file holds; the reader must notice before allocating.
    let dir = temp_dir("gguf-absurd");
    let kv = |n_kv: u64| Raw::header(0, n_kv);
    let cases: Vec<(&str, Raw, &str)> = vec![
        ("key length", kv(1).u64(u64::MAX).bytes(b"key"), "truncated"),
        ("string length", kv(1).str("s").u32(8).u64(u64::MAX).bytes(b"abc"), "bytes for metadata 's' at"),
        ("string length 2^40", kv(1).str("s").u32(8).u64(1 << 40).bytes(b"abc"), "bytes for metadata 's' at"),
        ("array length", kv(1).str("arr").u32(9).u32(0).u64(u64::MAX).bytes(&[1, 2, 3]), "'arr'"),
        ("array of strings", kv(1).str("arr").u32(9).u32(8).u64(1 << 20).bytes(&[0; 64]), "'arr'"),
        ("array of arrays", kv(1).str("arr").u32(9).u32(9).u64(u64::MAX / 2).bytes(&[0; 64]), "'arr'"),
        ("metadata count", kv(u64::MAX).str("a").u32(4).u32(1), "truncated"),
        ("tensor count", Raw::header(u64::MAX, 0).info("t", &[4], 0, 0), "truncated"),
        ("tensor name length", Raw::header(1, 0).u64(u64::MAX).bytes(b"t"), "truncated"),
        ("tensor dim 2^40", Raw::header(1, 0).info("t", &[1 << 40], 0, 0).pad_to(32).bytes(&[0; 64]), "'t'"),
        // Aligned (to the default 32 bytes), so what is wrong is that it points past the end.
        ("tensor offset", Raw::header(1, 0).info("t", &[4], 0, u64::MAX & !31).pad_to(32).bytes(&[0; 64]), "'t'"),
    ];
    for (what, raw, needle) in cases {
        let e = catch_unwind(AssertUnwindSafe(|| open(&dir, "absurd.gguf", &raw.0)))
            .unwrap_or_else(|_| panic!("{what}: open() panicked"))
            .expect_err(what);
        assert!(matches!(e, Error::Truncated { .. }), "{what}: {e:?}");
        assert_message(&e, &["absurd.gguf", needle]);
    }
    // Sizes that overflow, or that no tensor can have, are corrupt rather than truncated.
    let cases: Vec<(&str, Raw, &str)> = vec![
        ("n_dims", Raw::header(1, 0).str("t").u32(u32::MAX).u64(4), "'t'"),
        ("dims overflow", Raw::header(1, 0).info("t", &[1 << 62, 1 << 10], 0, 0), "'t'"),
        ("bytes overflow", Raw::header(1, 0).info("t", &[u64::MAX / 2], 0, 0), "'t'"),
        ("nesting", (0..64).fold(kv(1).str("deep").u32(9), |r, _| r.u32(9).u64(1)), "'deep'"),
        ("value type", kv(1).str("v").u32(13).u32(0), "'v'"),
        ("bool byte", kv(1).str("b").u32(7).u8(2), "'b'"),
        ("unaligned tensor offset", Raw::header(1, 0).info("t", &[4], 0, u64::MAX).pad_to(32).bytes(&[0; 64]), "'t'"),
    ];
    for (what, raw, needle) in cases {
        let e = catch_unwind(AssertUnwindSafe(|| open(&dir, "absurd.gguf", &raw.0)))
            .unwrap_or_else(|_| panic!("{what}: open() panicked"))
            .expect_err(what);
        assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e:?}");
        assert_message(&e, &["absurd.gguf", needle]);
    }
}

#[test]
fn dims_not_whole_blocks_are_corrupt() {
    // The fastest-varying dim (GGUF dims[0], candle's last) must be whole blocks.
    let dir = temp_dir("gguf-blocks");
    let cases: [(&str, &[u64], GgmlType); 4] = [
        ("q4_0 48x2", &[48, 2], GgmlType::Q4_0),
        ("q4_k 128", &[128], GgmlType::Q4K),
        ("q8_0 1x64", &[1, 64], GgmlType::Q8_0), // 64 elements, but rows of 1
        ("q8_0 scalar", &[], GgmlType::Q8_0),    // no dims: one element
    ];
    for (what, dims, ty) in cases {
        let bytes = Raw::header(1, 0).info("w", dims, ty.id(), 0).pad_to(32).bytes(&[0u8; 4096]);
        let e = open(&dir, "blocks.gguf", &bytes.0).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e:?}");
        assert_message(&e, &["blocks.gguf", "'w'", ty.name()]);
    }
}

#[test]
fn missing_tensor_is_missing() {
    let dir = temp_dir("gguf-missing-tensor");
    let file = open(&dir, "small.gguf", &small_file()).unwrap();
    let e = file.tensor("output.weight", &Device::Cpu).unwrap_err();
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    assert_message(&e, &["small.gguf", "tensor", "'output.weight'"]);
}

// ---------------------------------------------------------------------------------------------
// Fuzz

#[test]
fn random_byte_flips_never_panic() {
    // 500 seeded mutants of a valid file: 1 to 4 random bytes set to random values (most of them
    // in the header, metadata and tensor infos, where the structure is), sometimes also cut
    // short. Opening, reading the metadata and loading every tensor must each return Ok or Err.
    let full = small_file();
    let dir = temp_dir("gguf-fuzz");
    let structure_end = open(&dir, "full.gguf", &full).unwrap().tensors().iter().map(|t| t.offset).min().unwrap();
    let mut rng = StdRng::seed_from_u64(0x6767_7566);
    let (mut opened, mut loaded, mut panics) = (0, 0, Vec::new());
    for iter in 0..500 {
        let mut bytes = full.clone();
        for _ in 0..rng.random_range(1..=4) {
            let at = if rng.random_bool(0.8) {
                rng.random_range(0..structure_end)
            } else {
                rng.random_range(0..bytes.len())
            };
            bytes[at] = match rng.random_range(0..4) {
                0 => 0,
                1 => 0xff,
                2 => bytes[at] ^ (1 << rng.random_range(0..8)),
                _ => rng.random(),
            };
        }
        if rng.random_bool(0.1) {
            bytes.truncate(rng.random_range(0..bytes.len()));
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let Ok(file) = open_fast(&dir, "fuzz.gguf", &bytes) else { return (0, 0) };
            for (k, v) in file.metadata() {
                let _ = (k.len(), v.type_name(), v.as_u64(), v.as_f64(), v.as_str(), v.as_array().map(|a| a.len()));
            }
            let _ = file.get_str_array("tokenizer.ggml.tokens");
            let mut ok = 0;
            for t in file.tensors() {
                let _ = file.tensor_bytes(t).len();
                if let Ok(x) = file.tensor(&t.name, &Device::Cpu) {
                    assert_eq!(x.elem_count(), t.elem_count(), "tensor '{}' element count", t.name);
                    ok += 1;
                }
            }
            (1, ok)
        }));
        match outcome {
            Ok((o, l)) => {
                opened += o;
                loaded += l;
            }
            Err(_) => panics.push(iter),
        }
    }
    eprintln!("fuzz: 500 mutants, {opened} opened, {loaded} tensors loaded, {} panics", panics.len());
    assert!(panics.is_empty(), "panicked on mutants {panics:?} (seeded: rerun to reproduce)");
}
