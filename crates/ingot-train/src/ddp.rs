//! Data-parallel training over a [`Collective`]: which micro-batches a rank computes, gradients
//! summed over ranks in buckets, weights broadcast from rank 0, and ZeRO-1's partition of the
//! optimizer state.
//!
//! A step's global batch is its `grad_accum` micro-batches, each a pure function of
//! (seed, step, micro). Rank `r` of `W` computes micros `r, r + W, r + 2W, ...`, each loss scaled by
//! `1 / grad_accum` as in one process, so the sum over ranks of their gradients *is* the
//! one-process gradient (the mean over the global batch): results do not depend on how many
//! ranks ran them, up to the order of f32 additions.
//!
//! ZeRO-1 (Rajbhandari et al., 2020, stage 1) gives each parameter tensor one owning rank, which
//! alone keeps its AdamW moments and updates it, then broadcasts the new values: the moments'
//! memory is divided by `W`. Tensors are dealt out largest first to the least-loaded rank, as
//! PyTorch's `ZeroRedundancyOptimizer` does. Checkpoints gather every moment to rank 0, so a run
//! can resume on any number of ranks.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::collective::Collective;
use crate::error::{Context, Result};

/// Floats per all-reduce call (16 MiB): large enough to amortise each call's latency, small
/// enough that the packed copy stays a fraction of the gradients' memory.
pub const BUCKET_FLOATS: usize = 4 << 20;

/// The micro-batches of a step that rank `rank` of `world` computes.
pub fn my_micros(accum: u32, rank: usize, world: usize) -> Vec<u32> {
    (0..accum).filter(|m| *m as usize % world.max(1) == rank).collect()
}

/// The factor each micro-batch's loss is multiplied by before backward: `1 / accum`, whichever
/// rank computes it.
///
/// `INGOT_TEST_DDP_SUM=1` (tests only: the negative control of the equivalence tests) uses
/// `1 / micros` instead, the mean over this rank's share alone: summed over ranks that is `W`
/// times the true gradient, the classic data-parallel bug of a sum where a mean belongs.
pub fn loss_scale(accum: u32, micros: usize) -> f64 {
    if std::env::var_os("INGOT_TEST_DDP_SUM").is_some_and(|v| v == "1") {
        return 1.0 / micros.max(1) as f64;
    }
    1.0 / accum.max(1) as f64
}

/// Sum every gradient over ranks, in name order, in buckets of about [`BUCKET_FLOATS`]. A
/// parameter that got no gradient on any rank stays without one (AdamW then leaves it and its
/// moments alone, as in one process); each bucket carries one presence flag per parameter.
pub fn all_reduce_gradients(grads: &mut GradStore, vars: &[(String, Var)], c: &dyn Collective) -> Result<()> {
    if c.world_size() == 1 {
        return Ok(());
    }
    let mut start = 0;
    while start < vars.len() {
        let mut end = start;
        let mut len = 0usize;
        while end < vars.len() && (end == start || len + vars[end].1.elem_count() + 1 <= BUCKET_FLOATS) {
            len += vars[end].1.elem_count() + 1;
            end += 1;
        }
        let bucket = &vars[start..end];
        let mut buf = Vec::with_capacity(len);
        for (name, var) in bucket {
            match grads.get(var.as_tensor()) {
                Some(g) => {
                    buf.push(1.0);
                    buf.extend(flat_f32(g).context(|| format!("packing the gradient of {name}"))?);
                }
                None => {
                    buf.push(0.0);
                    buf.resize(buf.len() + var.elem_count(), 0.0);
                }
            }
        }
        c.all_reduce_sum_f32(&mut buf)?;
        let mut at = 0;
        for (name, var) in bucket {
            let (present, n) = (buf[at] > 0.0, var.elem_count());
            at += 1;
            if present {
                let g = Tensor::from_slice(&buf[at..at + n], var.shape(), var.device())
                    .and_then(|t| t.to_dtype(var.dtype()))
                    .context(|| format!("unpacking the gradient of {name}"))?;
                grads.insert(var.as_tensor(), g);
            } else {
                grads.remove(var.as_tensor());
            }
            at += n;
        }
        start = end;
    }
    Ok(())
}

/// Every rank's values of `vars` become rank `root`'s.
pub fn broadcast_vars<'a>(
    vars: impl IntoIterator<Item = &'a (String, Var)>,
    root: usize,
    c: &dyn Collective,
) -> Result<()> {
    if c.world_size() == 1 {
        return Ok(());
    }
    for (name, var) in vars {
        let mut buf = flat_f32(var.as_tensor()).context(|| format!("packing {name} for broadcast"))?;
        c.broadcast_f32(&mut buf, root)?;
        let t = Tensor::from_vec(buf, var.shape(), var.device())
            .and_then(|t| t.to_dtype(var.dtype()))
            .context(|| format!("unpacking broadcast {name}"))?;
        var.set(&t).context(|| format!("setting broadcast {name}"))?;
    }
    Ok(())
}

/// ZeRO-1's owner of each of `vars` (by index) among `world` ranks: largest tensor first to the
/// rank holding the fewest elements so far, ties to the lower rank and the earlier name, so
/// every rank computes the same partition.
pub fn zero_owners(vars: &[(String, Var)], world: usize) -> Vec<usize> {
    let world = world.max(1);
    let mut order: Vec<usize> = (0..vars.len()).collect();
    order.sort_by(|&a, &b| vars[b].1.elem_count().cmp(&vars[a].1.elem_count()).then(a.cmp(&b)));
    let mut load = vec![0usize; world];
    let mut owners = vec![0usize; vars.len()];
    for i in order {
        let rank = (0..world).min_by_key(|&r| (load[r], r)).unwrap_or(0);
        owners[i] = rank;
        load[rank] += vars[i].1.elem_count();
    }
    owners
}

/// The whole optimizer state (`m.<name>`, `v.<name>` for every parameter, in name order) on
/// every rank, from each parameter's owner: `local` holds this rank's own moments.
pub fn gather_moments(
    vars: &[(String, Var)],
    owners: &[usize],
    local: Vec<(String, Tensor)>,
    c: &dyn Collective,
) -> Result<Vec<(String, Tensor)>> {
    let mut mine: HashMap<String, Tensor> = local.into_iter().collect();
    let mut out = Vec::with_capacity(2 * vars.len());
    for ((name, var), &owner) in vars.iter().zip(owners) {
        for kind in ["m", "v"] {
            let key = format!("{kind}.{name}");
            let mut buf = if owner == c.rank() {
                let t = mine.remove(&key).ok_or_else(|| {
                    crate::Error::OptimizerState(format!("rank {} owns '{name}' but has no moment '{key}'", c.rank()))
                })?;
                flat_f32(&t).context(|| format!("packing {key}"))?
            } else {
                vec![0f32; var.elem_count()]
            };
            c.broadcast_f32(&mut buf, owner)?;
            let t = Tensor::from_vec(buf, var.shape(), var.device()).context(|| format!("unpacking {key}"))?;
            out.push((key, t));
        }
    }
    Ok(out)
}

/// The saved moments of the parameters `owned` (by name), for a ZeRO-1 rank resuming from a
/// full optimizer state.
pub fn owned_moments(all: HashMap<String, Tensor>, owned: &[&str]) -> HashMap<String, Tensor> {
    all.into_iter()
        .filter(|(key, _)| {
            key.split_once('.').is_some_and(|(kind, name)| (kind == "m" || kind == "v") && owned.contains(&name))
        })
        .collect()
}

fn flat_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::SingleProcess;
    use candle_core::Device;

    fn var(name: &str, n: usize) -> (String, Var) {
        (name.to_string(), Var::zeros(n, DType::F32, &Device::Cpu).unwrap())
    }

    #[test]
    fn micros_are_dealt_round_robin_and_cover_the_batch_once() {
        assert_eq!(my_micros(5, 0, 2), vec![0, 2, 4]);
        assert_eq!(my_micros(5, 1, 2), vec![1, 3]);
        assert_eq!(my_micros(1, 1, 2), Vec::<u32>::new());
        assert_eq!(my_micros(3, 0, 1), vec![0, 1, 2]);
    }

    #[test]
    fn zero_partition_balances_by_size_and_is_deterministic() {
        let vars = vec![var("a", 10), var("b", 40), var("c", 30), var("d", 20)];
        // b(40) -> 0, c(30) -> 1, d(20) -> 1 (30 < 40), a(10) -> 0 (40 < 50).
        assert_eq!(zero_owners(&vars, 2), vec![0, 0, 1, 1]);
        assert_eq!(zero_owners(&vars, 1), vec![0; 4]);
        assert_eq!(zero_owners(&vars, 3), zero_owners(&vars, 3));
    }

    #[test]
    fn one_rank_gathers_its_own_moments_and_resume_filters_by_owner() {
        let vars = vec![var("a", 2), var("b", 3)];
        let local: Vec<(String, Tensor)> = ["m.a", "v.a", "m.b", "v.b"]
            .iter()
            .map(|k| {
                (k.to_string(), Tensor::ones(if k.ends_with('a') { 2 } else { 3 }, DType::F32, &Device::Cpu).unwrap())
            })
            .collect();
        let all = gather_moments(&vars, &[0, 0], local, &SingleProcess).unwrap();
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["m.a", "v.a", "m.b", "v.b"]);
        let kept = owned_moments(all.into_iter().collect(), &["b"]);
        let mut kept: Vec<String> = kept.into_keys().collect();
        kept.sort();
        assert_eq!(kept, ["m.b", "v.b"]);
        // A rank that owns a tensor but lacks its moment says so.
        let err = gather_moments(&vars, &[0, 0], Vec::new(), &SingleProcess).unwrap_err().to_string();
        assert!(err.contains("no moment 'm.a'"), "{err}");
    }
}
