//! Causal scaled dot-product attention with grouped-query heads, and the KV cache.
//!
//! Dimension legend: B batch, H query heads, K key/value heads (H = K·R, R = H / K queries per
//! key head), T new positions, S = past + T positions attended to, D head dim.

use candle_core::{DType, Device, Tensor};

use crate::dropout::Dropout;
use crate::norm::softmax_last_dim;

/// Keys and values of past positions for one layer, in a buffer that grows by doubling so decode
/// appends in place instead of copying the whole history each step.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    k: Option<Tensor>, // (B, K, capacity, D)
    v: Option<Tensor>,
    len: usize,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Forget every position from `len` on (keeps a shared prompt prefix for reuse).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Copy a batch-1 cache into `n` rows, so `n` different continuations can run on one shared
    /// prefix in a single batched forward pass.
    pub fn repeat_batch(&mut self, n: usize) -> candle_core::Result<()> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else { return Ok(()) };
        if k.dims()[0] != 1 {
            candle_core::bail!("repeat_batch needs a batch-1 cache, this one has batch {}", k.dims()[0]);
        }
        // Always a fresh buffer: candle's repeat by 1 returns a view of the same storage, which
        // the next append (written in place) would share with the cache copied from.
        let rep = |t: &Tensor| {
            let used = t.narrow(2, 0, self.len)?.contiguous()?;
            let (_, kh, len, d) = used.dims4()?;
            let buf = Tensor::zeros((n, kh, len, d), used.dtype(), used.device())?;
            for row in 0..n {
                buf.slice_set(&used, 0, row)?;
            }
            Ok::<_, candle_core::Error>(buf)
        };
        let (k, v) = (rep(k)?, rep(v)?);
        self.k = Some(k);
        self.v = Some(v);
        Ok(())
    }

    /// The cached keys and values, (B, K, len, D) each; None before the first append.
    pub fn contents(&self) -> candle_core::Result<Option<(Tensor, Tensor)>> {
        match (&self.k, &self.v) {
            (Some(k), Some(v)) => Ok(Some((k.narrow(2, 0, self.len)?, v.narrow(2, 0, self.len)?))),
            _ => Ok(None),
        }
    }

    /// The device of the cached tensors, if any were cached.
    pub fn device(&self) -> Option<Device> {
        self.k.as_ref().map(|k| k.device().clone())
    }

    /// Keep only the batch rows `rows` (in that order): rows whose generation finished leave the
    /// batch, so later steps stop paying for them.
    pub fn select_batch(&mut self, rows: &Tensor) -> candle_core::Result<()> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else { return Ok(()) };
        let pick = |t: &Tensor| t.narrow(2, 0, self.len)?.contiguous()?.index_select(rows, 0);
        let (k, v) = (pick(k)?, pick(v)?);
        self.k = Some(k);
        self.v = Some(v);
        Ok(())
    }

    /// Append k, v (B, K, T, D); return all cached keys and values (B, K, S, D).
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, kh, t, d) = k.dims4()?;
        let needed = self.len + t;
        let capacity = self.k.as_ref().map_or(0, |k| k.dims()[2]);
        let compatible = self.k.as_ref().is_some_and(|c| {
            let cd = c.dims();
            cd[0] == b && cd[1] == kh && cd[3] == d && c.dtype() == k.dtype()
        });
        if !compatible || needed > capacity {
            let new_cap = needed.next_power_of_two().max(64);
            let grow = |old: &Option<Tensor>, fresh: &Tensor| -> candle_core::Result<Tensor> {
                let buf = Tensor::zeros((b, kh, new_cap, d), fresh.dtype(), fresh.device())?;
                if let (true, Some(old)) = (compatible && self.len > 0, old) {
                    buf.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let (nk, nv) = (grow(&self.k, k)?, grow(&self.v, v)?);
            if !compatible {
                self.len = 0;
            }
            self.k = Some(nk);
            self.v = Some(nv);
        }
        let (kc, vc) = match (&self.k, &self.v) {
            (Some(kc), Some(vc)) => (kc, vc),
            _ => candle_core::bail!("kv cache buffers missing"),
        };
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += t;
        Ok((kc.narrow(2, 0, self.len)?, vc.narrow(2, 0, self.len)?))
    }
}

/// Additive causal mask (T, S): 0 where query i (at absolute position past + i) may see key j,
/// -inf after it.
pub fn causal_mask(t: usize, s: usize, device: &Device) -> candle_core::Result<Tensor> {
    let past = s - t;
    let mask: Vec<f32> =
        (0..t).flat_map(|i| (0..s).map(move |j| if j <= past + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(mask, (t, s), device)
}

/// a @ b, reading `b` in place when its strides allow (a KV-cache view usually does) and copying
/// it to a contiguous tensor only when candle's GEMM cannot take its layout. Copying the whole
/// cache at every decode step was the largest cost of decoding at long contexts.
fn matmul_strided(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    match a.matmul(b) {
        Ok(y) => Ok(y),
        Err(_) => a.matmul(&b.contiguous()?),
    }
}

/// softmax(q kᵀ / sqrt(D) + mask) v, causal, with grouped-query heads.
///
/// q (B, H, T, D); k, v (B, K, S, D) with S >= T, the last T of which are q's positions.
/// Returns (B, H, T, D).
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    causal_attention_with_dropout(q, k, v, None)
}

/// [`causal_attention`] with dropout on the attention probabilities (GPT-2's attn_pdrop, applied
/// after the softmax as HF's `GPT2Attention` does); the identity outside training mode.
pub fn causal_attention_with_dropout(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dropout: Option<&Dropout>,
) -> candle_core::Result<Tensor> {
    attention(q, k, v, None, dropout)
}

/// Attention under an explicit additive mask (B, T, S): 0 where a query may see a key, -inf
/// where not. Packed training sequences use a block-diagonal causal mask, so each example sees
/// only its own earlier tokens ([`packed_mask`]).
pub fn masked_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    attention(q, k, v, Some(mask), None)
}

/// The additive mask (B, T, T) for packed rows: `segments` (B·T, row-major) names the example
/// each position belongs to; position i sees j when j <= i and both are in the same example.
pub fn packed_mask(segments: &[u32], b: usize, t: usize, device: &Device) -> candle_core::Result<Tensor> {
    if segments.len() != b * t {
        candle_core::bail!("packed mask: {} segment ids for a ({b}, {t}) batch", segments.len())
    }
    let mut mask = vec![f32::NEG_INFINITY; b * t * t];
    for row in 0..b {
        let seg = &segments[row * t..(row + 1) * t];
        for i in 0..t {
            for j in 0..=i {
                if seg[j] == seg[i] {
                    mask[(row * t + i) * t + j] = 0.0;
                }
            }
        }
    }
    Tensor::from_vec(mask, (b, t, t), device)
}

/// Grouped-query attention: the causal mask when `mask` is None, else the given one (B, T, S).
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    dropout: Option<&Dropout>,
) -> candle_core::Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (_, kh, s, _) = k.dims4()?;
    if h % kh != 0 {
        candle_core::bail!("{h} query heads do not divide into {kh} key/value heads")
    }
    let r = h / kh;
    // Query heads that share a key head are adjacent, so fold them into the row dimension and let
    // one batched matmul serve the whole group instead of copying k and v R times.
    let q = q.contiguous()?.reshape((b, kh, r * t, d))?; // (B, K, R·T, D)
    let scale = 1.0 / (d as f64).sqrt();
    let raw = matmul_strided(&q, &k.t()?)?; // (B, K, R·T, S)
    let probs = if raw.dtype() == DType::F32 {
        // One fused pass (with a backward) instead of eight score-sized temporaries.
        let mask = match mask {
            Some(mask) => mask.to_dtype(DType::F32)?,
            None if t > 1 => causal_mask(t, s, q.device())?.unsqueeze(0)?,
            None => Tensor::zeros((1, 1, s), DType::F32, q.device())?,
        };
        ingot_kernels::masked_softmax(&raw, &mask, scale as f32, t)?
    } else {
        let scores = (raw * scale)?;
        let scores = match mask {
            Some(mask) => {
                let mask = mask.to_dtype(scores.dtype())?.reshape((b, 1, 1, t, s))?;
                scores.reshape((b, kh, r, t, s))?.broadcast_add(&mask)?.reshape((b, kh, r * t, s))?
            }
            None if t > 1 => {
                let mask = causal_mask(t, s, q.device())?.to_dtype(scores.dtype())?;
                scores.reshape((b, kh, r, t, s))?.broadcast_add(&mask)?.reshape((b, kh, r * t, s))?
            }
            None => scores,
        };
        // Softmax in at least f32 (f64 stays f64, for gradient checks).
        let wide = if scores.dtype() == DType::F64 { scores } else { scores.to_dtype(DType::F32)? };
        softmax_last_dim(&wide)?.to_dtype(v.dtype())? // (B, K, R·T, S)
    };
    let probs = match dropout {
        Some(dropout) => dropout.forward(&probs)?,
        None => probs,
    };
    matmul_strided(&probs, v)?.reshape((b, h, t, d)) // (B, K, R·T, D) -> (B, H, T, D)
}
