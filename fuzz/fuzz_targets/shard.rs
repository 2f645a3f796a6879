//! Token shards (`ingot_data::TokenShard`) and, when a dataset.json is given too, a prepared data
//! folder (`TokenDataset::open` and window reads).
//!
//! Input: the shard, then optionally dataset.json, joined with `ingot_fuzz::SEP`. The shard is
//! written as `train_00000.bin` and `val_00000.bin`, the names `ingot data prepare` gives.
#![no_main]

use ingot_data::{Split, TokenDataset, TokenShard};
use ingot_fuzz::{checked, fresh_dir, split_parts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts = split_parts(data);
    let dir = fresh_dir("data");
    let shard_path = dir.join(Split::Train.shard_file(0));
    std::fs::write(&shard_path, parts[0]).unwrap_or_else(|e| panic!("cannot write the shard: {e}"));
    if let Some(shard) = checked("TokenShard::open", TokenShard::open(&shard_path)) {
        checked("check_ids", shard.check_ids());
        let n = shard.len();
        let _ = (shard.get(0), shard.get(n.saturating_sub(1)), shard.get(n));
        let mut out = Vec::new();
        checked("read", shard.read(0, n.min(64) as usize, &mut out));
        checked("read", shard.read(n.saturating_sub(1), 2, &mut out));
    }
    let Some(manifest) = parts.get(1) else { return };
    std::fs::write(dir.join(Split::Val.shard_file(0)), parts[0]).unwrap_or_else(|e| panic!("cannot write: {e}"));
    std::fs::write(dir.join(ingot_data::MANIFEST_FILE), manifest).unwrap_or_else(|e| panic!("cannot write: {e}"));
    for split in [Split::Train, Split::Val] {
        let Some(ds) = checked("TokenDataset::open", TokenDataset::open(&dir, split)) else { continue };
        let n = ds.len();
        checked("window", ds.window(0, n.min(16) as usize));
        checked("window", ds.window(n.saturating_sub(3), 3));
        checked("window", ds.window(n, 1));
    }
});
