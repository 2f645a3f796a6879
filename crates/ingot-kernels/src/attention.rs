//! The decode step's attention: one new query per sequence, each against its own cached keys
//! and values, for many sequences in one call.
//!
//! Composed of candle ops, each sequence costs a dozen small ops per layer (a strided matmul that
//! packs its operands, a softmax, another matmul, their allocations): at 16 sequences that was a
//! tenth of a server's time. Here each (sequence, query head) pair is one task over the cache's
//! own memory, in parallel, with no temporaries beyond one score vector.
//!
//! For query head h (of H) and key/value head g = h / (H / K), over the sequence's S positions:
//!   s_j = scale · q·k_j,   p = softmax(s),   out = Σ_j p_j v_j
//! Every cached position is visible (the new query is the last position). Inference only: no
//! backward (callers keep the composed ops when a gradient is wanted).

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::qmatmul::dot_f32;

/// A cached key or value tensor (1, K, S, D) f32, read in place.
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    head_stride: usize,
    pos_stride: usize,
    positions: usize,
}

impl<'a> View<'a> {
    fn new(storage: &'a Storage, layout: &Layout, heads: usize, dim: usize) -> Result<Self> {
        let data = match storage {
            Storage::Cpu(CpuStorage::F32(v)) => v.as_slice(),
            _ => candle_core::bail!("decode attention: the cache must be f32 on the CPU"),
        };
        let dims = layout.shape().dims();
        let stride = layout.stride();
        if dims.len() != 4 || dims[0] != 1 || dims[1] != heads || dims[3] != dim || stride[3] != 1 {
            candle_core::bail!("decode attention: a cache of shape {dims:?} (strides {stride:?}), expected (1, {heads}, S, {dim}) with unit stride in the last dimension")
        }
        let (offset, head_stride, pos_stride, positions) = (layout.start_offset(), stride[1], stride[2], dims[2]);
        // The last element read must lie inside the storage.
        if positions > 0 && offset + (heads - 1) * head_stride + (positions - 1) * pos_stride + dim > data.len() {
            candle_core::bail!("decode attention: the cache's layout reaches past its storage")
        }
        Ok(Self { data, offset, head_stride, pos_stride, positions })
    }

    fn row(&self, head: usize, pos: usize, dim: usize) -> &[f32] {
        let at = self.offset + head * self.head_stride + pos * self.pos_stride;
        &self.data[at..at + dim]
    }
}

/// `q` (1, H, B, D): the new query of each of B sequences; `kv[b]`: sequence b's keys and
/// values, each (1, K, S_b, D) (views into a larger cache buffer are read in place). Returns
/// (1, H, B, D) f32. H must be a multiple of K; each S_b at least 1.
pub fn decode_attention(q: &Tensor, kv: &[(Tensor, Tensor)], scale: f32) -> Result<Tensor> {
    let (one, h, b, d) = q.dims4()?;
    if one != 1 || b != kv.len() {
        candle_core::bail!("decode attention: queries {:?} for {} sequences", q.dims(), kv.len())
    }
    let Some((k0, _)) = kv.first() else { return Tensor::zeros((1, h, 0, d), DType::F32, q.device()) };
    let kh = k0.dims4()?.1;
    if kh == 0 || h % kh != 0 {
        candle_core::bail!("decode attention: {h} query heads do not divide into {kh} key/value heads")
    }
    let group = h / kh;
    let q = q.to_dtype(DType::F32)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    // Hold every cache's storage while the tasks read it.
    let guards: Vec<_> = kv.iter().map(|(k, v)| (k.storage_and_layout(), v.storage_and_layout())).collect();
    let mut views = Vec::with_capacity(kv.len());
    for ((ks, kl), (vs, vl)) in &guards {
        let (k, v) = (View::new(ks, kl, kh, d)?, View::new(vs, vl, kh, d)?);
        if k.positions == 0 || k.positions != v.positions {
            candle_core::bail!("decode attention: {} cached keys and {} values", k.positions, v.positions)
        }
        views.push((k, v));
    }
    let mut out = vec![0f32; h * b * d];
    // Task (head, sequence) writes out[(head·B + sequence)·D ..][..D].
    out.par_chunks_mut(d).enumerate().for_each(|(task, o)| {
        let (head, seq) = (task / b, task % b);
        let (keys, values) = &views[seq];
        let g = head / group;
        let qv = &q[task * d..(task + 1) * d];
        let mut scores: Vec<f32> = (0..keys.positions).map(|j| scale * dot_f32(keys.row(g, j, d), qv)).collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f32;
        for s in &mut scores {
            *s = (*s - max).exp();
            total += *s;
        }
        for (j, p) in scores.iter().enumerate() {
            let w = p / total;
            for (o, x) in o.iter_mut().zip(values.row(g, j, d)) {
                *o += w * x;
            }
        }
    });
    drop(views);
    drop(guards);
    Tensor::from_vec(out, (1, h, b, d), kv[0].0.device())
}
