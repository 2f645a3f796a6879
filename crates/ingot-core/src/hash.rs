//! Content fingerprints: telling apart files and settings (a tokenizer, a prepared dataset, a run's
//! config), not security.

/// FNV-1a, 64-bit: tiny, dependency-free and stable across platforms and versions; not
/// cryptographic, which is fine for noticing that two things differ.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}
