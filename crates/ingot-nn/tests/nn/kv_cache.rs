//! The KV cache: appends in pieces equal one big append (also across the buffer's growth),
//! trimming forgets positions, selecting rows and repeating a batch-1 prefix keep the right
//! history, and mismatched use is an error rather than a panic.

use candle_core::{DType, Device, Tensor};
use ingot_nn::KvCache;

use crate::{tensor, values};

const K: usize = 3; // key/value heads
const D: usize = 5;

/// Seeded random keys or values (B, K, t, D).
fn kv(b: usize, t: usize, seed: u64) -> Tensor {
    tensor(&[b, K, t, D], seed, DType::F32)
}

fn cat(parts: &[&Tensor]) -> Tensor {
    Tensor::cat(parts, 2).expect("cat")
}

/// Exact equality: the cache only copies values.
fn same(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    assert_eq!(values(a), values(b), "{what}: values");
}

#[test]
fn appends_in_pieces_equal_one_append() {
    let b = 2;
    // 7 pieces of odd lengths adding up to 80, which crosses the first 64-position buffer.
    let lens = [3, 1, 5, 1, 47, 13, 10];
    let ks: Vec<Tensor> = lens.iter().enumerate().map(|(i, &t)| kv(b, t, 10 + i as u64)).collect();
    let vs: Vec<Tensor> = lens.iter().enumerate().map(|(i, &t)| kv(b, t, 50 + i as u64)).collect();
    let mut pieces = KvCache::new();
    assert!(pieces.is_empty() && pieces.device().is_none());
    let (mut total, mut last) = (0, None);
    for (n, (k, v)) in ks.iter().zip(&vs).enumerate() {
        let (kc, vc) = pieces.append(k, v).expect("append");
        total += lens[n];
        assert_eq!(pieces.len(), total);
        // Everything so far, in order, after every append.
        same(&kc, &cat(&ks[..=n].iter().collect::<Vec<_>>()), "keys so far");
        same(&vc, &cat(&vs[..=n].iter().collect::<Vec<_>>()), "values so far");
        last = Some((kc, vc));
    }
    let mut once = KvCache::new();
    let (k1, v1) =
        once.append(&cat(&ks.iter().collect::<Vec<_>>()), &cat(&vs.iter().collect::<Vec<_>>())).expect("append");
    let (kp, vp) = last.expect("appended");
    same(&kp, &k1, "keys");
    same(&vp, &v1, "values");
    assert_eq!(once.len(), 80);
    assert_eq!(pieces.device().map(|d| d.is_cpu()), Some(true));
}

#[test]
fn truncate_forgets_and_later_appends_overwrite() {
    let mut cache = KvCache::new();
    let (k0, v0) = (kv(1, 9, 1), kv(1, 9, 2));
    cache.append(&k0, &v0).expect("append");
    cache.truncate(20); // longer than cached: nothing happens
    assert_eq!(cache.len(), 9);
    cache.truncate(4);
    assert_eq!(cache.len(), 4);
    let (k1, v1) = (kv(1, 2, 3), kv(1, 2, 4));
    let (k, v) = cache.append(&k1, &v1).expect("append after truncate");
    same(&k, &cat(&[&k0.narrow(2, 0, 4).expect("prefix"), &k1]), "keys after truncate");
    same(&v, &cat(&[&v0.narrow(2, 0, 4).expect("prefix"), &v1]), "values after truncate");
    cache.reset();
    assert!(cache.is_empty());
    let (k, _) = cache.append(&k1, &v1).expect("append after reset");
    same(&k, &k1, "keys after reset");
}

#[test]
fn select_batch_keeps_rows_in_the_order_given() {
    let mut cache = KvCache::new();
    let (k0, v0) = (kv(3, 6, 5), kv(3, 6, 6));
    cache.append(&k0, &v0).expect("append");
    let rows = Tensor::new(&[2u32, 0], &Device::Cpu).expect("rows");
    cache.select_batch(&rows).expect("select");
    assert_eq!(cache.len(), 6);
    // The next step has two rows; their history is rows 2 and 0 of the old batch.
    let (k1, v1) = (kv(2, 1, 7), kv(2, 1, 8));
    let (k, v) = cache.append(&k1, &v1).expect("append after select");
    let pick = |t: &Tensor| t.index_select(&rows, 0).expect("pick");
    same(&k, &cat(&[&pick(&k0), &k1]), "keys after select");
    same(&v, &cat(&[&pick(&v0), &v1]), "values after select");
    // Selecting from an empty cache does nothing.
    let mut empty = KvCache::new();
    empty.select_batch(&rows).expect("select on an empty cache");
    assert!(empty.is_empty());
}

#[test]
fn repeat_batch_shares_a_prefix_across_rows() {
    let mut cache = KvCache::new();
    let (k0, v0) = (kv(1, 7, 9), kv(1, 7, 10));
    cache.append(&k0, &v0).expect("append");
    cache.truncate(5); // only the shared prompt is repeated
    cache.repeat_batch(4).expect("repeat");
    assert_eq!(cache.len(), 5);
    let (k1, v1) = (kv(4, 2, 11), kv(4, 2, 12));
    let (k, v) = cache.append(&k1, &v1).expect("append after repeat");
    let prefix = |t: &Tensor| t.narrow(2, 0, 5).and_then(|p| p.repeat((4, 1, 1, 1))).expect("prefix");
    same(&k, &cat(&[&prefix(&k0), &k1]), "keys after repeat");
    same(&v, &cat(&[&prefix(&v0), &v1]), "values after repeat");
    // Only a batch-1 cache can be repeated.
    let err = cache.repeat_batch(2).expect_err("a batch-4 cache");
    assert!(err.to_string().contains("batch-1"), "{err}");
}

/// A copy (`repeat_batch(1)` on a clone, as `Cache::fork` makes) extended inside the original's
/// capacity writes its own buffer: the original keeps its positions. With the buffer exactly
/// full (64 positions) candle's repeat by 1 handed back the same storage.
#[test]
fn a_copy_extended_in_place_leaves_the_original_alone() {
    for len in [64, 40] {
        let mut original = KvCache::new();
        let (k0, v0) = (kv(1, len, 21), kv(1, len, 22));
        original.append(&k0, &v0).expect("append");
        let mut copy = original.clone();
        copy.repeat_batch(1).expect("copy");
        copy.truncate(3);
        copy.append(&kv(1, 4, 23), &kv(1, 4, 24)).expect("append to the copy");
        let (k, v) = original.append(&kv(1, 0, 25), &kv(1, 0, 26)).expect("read the original");
        same(&k, &k0, "the original's keys");
        same(&v, &v0, "the original's values");
    }
}

#[test]
fn a_differently_shaped_append_starts_over() {
    // New rows or another head layout cannot extend the old history: the cache restarts.
    let mut cache = KvCache::new();
    cache.append(&kv(1, 4, 13), &kv(1, 4, 14)).expect("append");
    let (k1, v1) = (kv(2, 3, 15), kv(2, 3, 16));
    let (k, v) = cache.append(&k1, &v1).expect("append of another batch size");
    assert_eq!(cache.len(), 3);
    same(&k, &k1, "keys");
    same(&v, &v1, "values");
    // A 3-d tensor is an error, not a panic.
    assert!(cache.append(&tensor(&[K, 3, D], 17, DType::F32), &tensor(&[K, 3, D], 18, DType::F32)).is_err());
}
