//! Size and sanity limits in one place: how large a model, a vocabulary or a thread pool may be,
//! which numbers must be positive or finite, and whether a file's weights hold NaN or infinity.
//!
//! Sizes from configs, flags and files are trusted only after a check here, and a check that
//! fails says which field, what value it had and what the limit is, on one line. Memory is
//! estimated before anything is allocated and refused with the figure and the limit, instead of
//! letting the allocator abort the process ("memory allocation of ... bytes failed", rc 134).
//!
//! The memory limit is this machine's physical memory (`MemTotal` of /proc/meminfo), or
//! `INGOT_MAX_MEMORY` (bytes, or a number with K, M, G or T) where set; 64 GiB where neither is
//! known. It is a ceiling on what can possibly fit, not a promise that it will: a model close to
//! it may still need swap.
//!
//! Callers that own richer context (a model config names its source file) wrap these errors;
//! every one is an [`Error::Input`].

use crate::gguf::GgmlType;
use crate::{Error, Result};

/// The environment variable that overrides the memory limit.
pub const MEMORY_ENV: &str = "INGOT_MAX_MEMORY";

/// Used when the machine's memory cannot be read (no /proc/meminfo) and the variable is unset.
pub const FALLBACK_MEMORY: u64 = 64 << 30;

/// The largest vocabulary accepted: 2^24 tokens, 64 times the largest in use (Gemma's 256k).
/// Token ids are u32, but tables indexed by id (embeddings, BPE training maps) grow with it.
pub const MAX_VOCAB: usize = 1 << 24;

/// `--threads` may be at most this many times the machine's cores: beyond that, threads only
/// contend (1000 threads turned a 5-token run into minutes).
pub const THREADS_PER_CORE: usize = 4;

/// The memory limit in bytes, and where it came from (for the message).
pub fn memory_limit() -> Result<(u64, String)> {
    if let Ok(raw) = std::env::var(MEMORY_ENV) {
        let bytes = parse_size(&raw).ok_or_else(|| {
            Error::Input(format!(
                "{MEMORY_ENV}={raw:?} is not a size; give bytes or a number with K, M, G or T (e.g. 8G)"
            ))
        })?;
        return Ok((bytes, MEMORY_ENV.to_string()));
    }
    match machine_memory() {
        Some(bytes) => Ok((bytes, format!("this machine's memory; {MEMORY_ENV} overrides"))),
        None => Ok((FALLBACK_MEMORY, format!("a default, the machine's memory being unknown; {MEMORY_ENV} overrides"))),
    }
}

/// `MemTotal` of /proc/meminfo, in bytes (read once: the model checks it at every step).
fn machine_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(read_meminfo)
}

fn read_meminfo() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.trim_start_matches("MemTotal:").trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// "8G", "512M", "1.5T", "1000000": bytes (binary multiples).
fn parse_size(raw: &str) -> Option<u64> {
    let s = raw.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        (i, 't' | 'T') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    let bytes = v * mult as f64;
    (v.is_finite() && v > 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Bytes in a human unit: "1.5 GiB".
pub fn fmt_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Refuse `bytes` (an estimate of what `what` would allocate) above the memory limit.
///
/// `what` reads as the subject of "needs": "model config: n_embd = 1000000000 (12.0 T parameters)".
pub fn check_memory(what: &str, bytes: u128) -> Result<()> {
    let (limit, source) = memory_limit()?;
    if bytes > limit as u128 {
        return Err(Error::Input(format!(
            "{what} needs an estimated {} of memory, over the limit of {} ({source})",
            fmt_bytes(bytes),
            fmt_bytes(limit as u128)
        )));
    }
    Ok(())
}

/// Product of sizes without overflow (saturates at u128::MAX, which any limit refuses).
pub fn product(factors: &[usize]) -> u128 {
    factors.iter().fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// `--threads N`: at least 1, at most the core count x [`THREADS_PER_CORE`].
pub fn check_threads(flag: &str, n: usize) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let max = cores * THREADS_PER_CORE;
    if n == 0 || n > max {
        return Err(Error::Input(format!(
            "{flag} {n} is out of range: give 1 to {max} ({cores} cores x {THREADS_PER_CORE})"
        )));
    }
    Ok(())
}

/// A count that must be at least `min` (batches, windows, steps, problems).
pub fn at_least(field: &str, value: usize, min: usize) -> Result<()> {
    if value < min {
        return Err(Error::Input(format!("{} is below the minimum of {min}", shown(field, value))));
    }
    Ok(())
}

/// "--stride 0" for a flag, "data.eval_batches = 0" for a config field.
fn shown(field: &str, value: impl std::fmt::Display) -> String {
    if field.starts_with("--") {
        format!("{field} {value}")
    } else {
        format!("{field} = {value}")
    }
}

/// A vocabulary size: at least 1, at most [`MAX_VOCAB`].
pub fn check_vocab(field: &str, value: usize) -> Result<()> {
    if value == 0 || value > MAX_VOCAB {
        return Err(Error::Input(format!("{field} = {value} is out of range: give 1 to {MAX_VOCAB} tokens")));
    }
    Ok(())
}

/// A strictly positive, finite number (RoPE base, scaling factors).
pub fn positive_finite(field: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::Input(format!("{field} = {value} must be a finite number above 0")));
    }
    Ok(())
}

/// A finite number >= 0 (norm epsilons).
pub fn non_negative_finite(field: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(Error::Input(format!("{field} = {value} must be a finite number >= 0")));
    }
    Ok(())
}

/// A dropout probability, in [0, 1).
pub fn probability(field: &str, value: f64) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        return Err(Error::Input(format!("{field} = {value} must be a probability in [0, 1)")));
    }
    Ok(())
}

/// Bytes HF `tokenizers`' BPE trainer reserves up front for a target vocabulary of `vocab`: a
/// `word_to_id` hash map (hashbrown: buckets = next power of two of 8/7 of the capacity, 32-byte
/// (CompactString, u32) slots and one control byte each) and an `id_to_word` vector (24-byte
/// CompactStrings). `--vocab-size 1000000000` asked for 70.9 GB here before aborting.
pub fn bpe_training_bytes(vocab: usize) -> u128 {
    let buckets: u128 = match vocab {
        0..=3 => 4,
        4..=7 => 8,
        _ => ((vocab as u128) * 8 / 7).next_power_of_two(),
    };
    buckets * 33 + vocab as u128 * 24
}

/// A BPE training target: a vocabulary in range whose training tables fit in memory.
pub fn check_bpe_training(field: &str, vocab: usize) -> Result<()> {
    check_vocab(field, vocab)?;
    check_memory(&format!("BPE training with {field} = {vocab}"), bpe_training_bytes(vocab))
}

/// Where the first NaN or infinity of a GGUF tensor's stored bytes is: the element index for
/// the float types, the block index for quantized ones (whose f16 scales are checked: a block
/// with a non-finite scale decodes to non-finite weights; the small integer quants cannot be).
/// Reads the bytes in place, a few milliseconds for a 100 MB file.
pub fn first_non_finite(ty: GgmlType, bytes: &[u8]) -> Option<usize> {
    let f16_bad = |b: &[u8]| (u16::from_le_bytes([b[0], b[1]]) & 0x7c00) == 0x7c00;
    match ty {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .position(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000),
        GgmlType::F16 => bytes.chunks_exact(2).position(f16_bad),
        GgmlType::BF16 => bytes.chunks_exact(2).position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80),
        _ => {
            let size = ty.type_size();
            let offsets = scale_offsets(ty, size);
            bytes.chunks_exact(size).position(|block| offsets.iter().any(|&o| f16_bad(&block[o..o + 2])))
        }
    }
}

/// Byte offsets of the f16 scales (d, and the min dmin / m where the type has one) in a block of
/// `size` bytes, from ggml's block layouts (ggml-common.h).
fn scale_offsets(ty: GgmlType, size: usize) -> Vec<usize> {
    match ty {
        // block_q4_0 {d; qs}, block_q5_0 {d; qh; qs}, block_q8_0 {d; qs}
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => vec![0],
        // block_q4_1 {d; m; qs}, block_q5_1 {d; m; qh; qs}, block_q8_1 {d; s; qs},
        // block_q4_K {d; dmin; scales; qs}, block_q5_K {d; dmin; scales; qh; qs}
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 | GgmlType::Q4K | GgmlType::Q5K => vec![0, 2],
        // block_q2_K {scales; qs; d; dmin}: d and dmin close the block
        GgmlType::Q2K => vec![size - 4, size - 2],
        // block_q3_K {hmask; qs; scales; d}, block_q6_K {ql; qh; scales; d}: d closes the block
        GgmlType::Q3K | GgmlType::Q6K => vec![size - 2],
        // block_q8_K {float d; ...}: an f32 scale, not checked (not a stored weight type)
        GgmlType::Q8K | GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn bpe_tables_match_the_abort_seen() {
        // The allocator reported 70866960400 bytes for the hash map of --vocab-size 1000000000:
        // 2^31 buckets x 33 bytes plus a 16-byte group tail.
        let map = bpe_training_bytes(1_000_000_000) - 1_000_000_000 * 24;
        assert_eq!(map, 70_866_960_384);
    }
}
