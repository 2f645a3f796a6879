//! The llama decode loop without candle: one token at a time, straight over the weights'
//! rows, in buffers allocated once, on a spinning thread team.
//!
//! Why: decoding one token of a 135M model issues ~400 small candle ops (each allocating its
//! output, several waking rayon), and that overhead, not arithmetic or memory traffic, was most
//! of the time (33 tokens/s against llama.cpp's ~90 on the same file and threads). Here a token
//! runs five parallel regions per layer (q/k/v, attention over heads, o, gate/up, down) and one
//! for the output head, with RMSNorm, RoPE, the cache append, SwiGLU and the residuals done in
//! place by one thread between them: they touch a few KB.
//!
//! The arithmetic is the model's: the same quantized kernels with f32 activations (no 8-bit
//! activations, so answers do not change), the same RoPE tables, RMSNorm and softmax in f32. The
//! logits agree with [`super::Llama`]'s forward pass to float rounding (tested).

use ingot_kernels::q16::Q16Input;
use ingot_kernels::team::{share, Disjoint, Team};
use ingot_kernels::Rows;
use ingot_nn::RopeLayout;

use super::Llama;
use crate::config::Activation;

/// One projection: its matrices (q/k/v stacked, or separate) and biases, read as one input.
struct Proj {
    parts: Vec<(Rows, Option<Vec<f32>>)>,
    out: usize,
}

impl Proj {
    fn new(parts: Vec<(Rows, Option<Vec<f32>>)>) -> Self {
        let out = parts.iter().map(|(r, _)| r.shape().0).sum();
        Self { parts, out }
    }

    /// This member's share of `y = W x + b` (every part split over the team); block formats
    /// read `xq`: its block sums (`exact`, f32 activations) or its 16-bit values.
    fn run_share(&self, x: &[f32], xq: &Q16Input, exact: bool, y: &Disjoint, index: usize, size: usize) {
        let mut start = 0;
        for (rows, bias) in &self.parts {
            let n = rows.shape().0;
            let mine = share(n, index, size, 16);
            // SAFETY: members' shares of a part are disjoint, and parts occupy disjoint ranges.
            let out = unsafe { y.part(start + mine.start..start + mine.end) };
            if exact {
                rows.matvec_rows(x, xq.sums(), mine.clone(), out);
            } else {
                rows.matvec_rows_q16(x, xq, mine.clone(), out);
            }
            if let Some(b) = bias {
                for (o, b) in out.iter_mut().zip(&b[mine]) {
                    *o += b;
                }
            }
            start += n;
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    qkv: Proj,
    o: Proj,
    mlp_norm: Vec<f32>,
    gate_up: Proj,
    down: Proj,
}

/// A llama model's weights as the decode loop reads them, and its thread team.
pub struct FastDecoder {
    layers: Vec<Layer>,
    embed: Rows,
    norm: Vec<f32>,
    head: Proj,
    eps: f32,
    cos: Vec<f32>,
    sin: Vec<f32>,
    layout: RopeLayout,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    vocab: usize,
    max_positions: usize,
    team: Team,
    /// f32 activations in every product (off: block formats read 16-bit activations).
    exact: std::sync::atomic::AtomicBool,
}

impl Llama {
    /// The decode loop for this model, made on first use on as many threads as the kernels use;
    /// None for a model with adapters (they train, or switch on and off) or weights the loop
    /// would have to copy ([`FastDecoder::sharing`]).
    pub fn decode_loop(&self) -> Option<&FastDecoder> {
        if self.adapters.is_some() {
            return None;
        }
        self.decode_loop.get_or_init(|| FastDecoder::sharing(self, candle_core::utils::get_num_threads())).as_ref()
    }
}

/// One sequence's place in the loop: its KV cache and the step's buffers, allocated once.
pub struct DecodeState {
    /// Tokens already in the cache.
    pos: usize,
    capacity: usize,
    /// Per layer, (capacity, kv_heads * head_dim) keys and values.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    x: Vec<f32>,
    h: Vec<f32>,
    hq: Q16Input,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    attn_q: Q16Input,
    scores: Vec<f32>,
    proj: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
    act_q: Q16Input,
    logits: Vec<f32>,
}

impl DecodeState {
    /// Tokens decoded so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Forget the sequence (the buffers stay).
    pub fn clear(&mut self) {
        self.pos = 0;
    }
}

impl FastDecoder {
    /// The loop for `model` on `threads` threads; None when the model has something the loop
    /// does not run (an enabled adapter, K-quant weights, an activation other than SiLU).
    pub fn new(model: &Llama, threads: usize) -> Option<Self> {
        let cfg = &model.cfg;
        if cfg.hidden_act != Activation::Silu {
            return None;
        }
        let vec = |t: &candle_core::Tensor| -> Option<Vec<f32>> {
            t.to_dtype(candle_core::DType::F32).ok()?.to_vec1::<f32>().ok()
        };
        let mut layers = Vec::with_capacity(model.layers.len());
        for b in &model.layers {
            layers.push(Layer {
                attn_norm: vec(b.input_layernorm.weight())?,
                qkv: Proj::new(b.self_attn.qkv.decode_rows()?),
                o: Proj::new(vec![b.self_attn.o_proj.decode_rows()?]),
                mlp_norm: vec(b.post_attention_layernorm.weight())?,
                gate_up: Proj::new(b.mlp.gate_up.decode_rows()?),
                down: Proj::new(vec![b.mlp.down_proj.decode_rows()?]),
            });
        }
        let (embed, _) = model.embed_tokens.as_linear().ok()?.decode_rows()?;
        let head = Proj::new(vec![model.lm_head.decode_rows()?]);
        let (cos, sin) = model.rope.tables().ok()?;
        let ffn = layers.first().map_or(cfg.intermediate_size, |l| l.gate_up.out / 2);
        Some(Self {
            layers,
            embed,
            norm: vec(model.norm.weight())?,
            head,
            eps: model.norm.eps() as f32,
            cos,
            sin,
            layout: model.rope.layout(),
            hidden: cfg.hidden_size,
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            ffn,
            vocab: cfg.vocab_size,
            max_positions: model.rope.max_positions(),
            team: Team::new(threads),
            exact: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// [`FastDecoder::new`] for a model whose weights the loop can share as they are stored
    /// (quantized or f16); None for dense weights, which the loop would have to copy (a second
    /// copy of the model in memory: generation then stays on the forward pass).
    pub fn sharing(model: &Llama, threads: usize) -> Option<Self> {
        let dense = model.embed_tokens.quantized().is_none()
            || model.lm_head.dense_weight().is_some()
            || model.layers.iter().any(|b| {
                b.self_attn.qkv.is_dense()
                    || b.self_attn.o_proj.dense_weight().is_some()
                    || b.mlp.gate_up.is_dense()
                    || b.mlp.down_proj.dense_weight().is_some()
            });
        if dense {
            return None;
        }
        Self::new(model, threads)
    }

    /// A state for a sequence of up to `capacity` tokens (at most the model's context).
    pub fn state(&self, capacity: usize) -> DecodeState {
        let capacity = capacity.clamp(1, self.max_positions);
        let kv = self.kv_heads * self.head_dim;
        let q = self.heads * self.head_dim;
        DecodeState {
            pos: 0,
            capacity,
            k: (0..self.layers.len()).map(|_| vec![0f32; capacity * kv]).collect(),
            v: (0..self.layers.len()).map(|_| vec![0f32; capacity * kv]).collect(),
            x: vec![0f32; self.hidden],
            h: vec![0f32; self.hidden],
            hq: Q16Input::new(self.hidden),
            qkv: vec![0f32; q + 2 * kv],
            attn: vec![0f32; q],
            attn_q: Q16Input::new(q),
            scores: vec![0f32; self.heads * capacity],
            proj: vec![0f32; self.hidden],
            gate_up: vec![0f32; 2 * self.ffn],
            act: vec![0f32; self.ffn],
            act_q: Q16Input::new(self.ffn),
            logits: vec![0f32; self.vocab],
        }
    }

    /// Feed `token` at the state's next position; returns the logits for the token after it.
    /// Errors when the state is full or the token is outside the vocabulary.
    pub fn step<'s>(&self, s: &'s mut DecodeState, token: u32) -> Result<&'s [f32], String> {
        if s.pos >= s.capacity {
            return Err(format!("the sequence is full ({} tokens)", s.capacity));
        }
        if token as usize >= self.vocab {
            return Err(format!("token id {token} is outside the vocabulary of {}", self.vocab));
        }
        let (hd, kvd, qd) = (self.head_dim, self.kv_heads * self.head_dim, self.heads * self.head_dim);
        let pos = s.pos;
        let size = self.team.size();
        let exact = self.is_exact();
        self.embed.row_into(token as usize, &mut s.x);
        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block.
            rms_norm(&s.x, &layer.attn_norm, self.eps, &mut s.h);
            self.project(&layer.qkv, &s.h, &mut s.hq, &mut s.qkv, exact);
            let (q, rest) = s.qkv.split_at_mut(qd);
            let (k, v) = rest.split_at_mut(kvd);
            let half = hd / 2;
            let (cos, sin) = (&self.cos[pos * half..(pos + 1) * half], &self.sin[pos * half..(pos + 1) * half]);
            for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
                rope(head, cos, sin, self.layout);
            }
            s.k[l][pos * kvd..(pos + 1) * kvd].copy_from_slice(k);
            s.v[l][pos * kvd..(pos + 1) * kvd].copy_from_slice(v);
            {
                let (q, keys, values, cap) = (&*q, &s.k[l], &s.v[l], s.capacity);
                let out = Disjoint::new(&mut s.attn);
                let scores = Disjoint::new(&mut s.scores);
                let group = self.heads / self.kv_heads;
                let scale = 1.0 / (hd as f32).sqrt();
                self.team.run(&|i| {
                    for h in share(self.heads, i, size, 1) {
                        // SAFETY: each head's output and score rows belong to one member.
                        let (o, sc) =
                            unsafe { (out.part(h * hd..(h + 1) * hd), scores.part(h * cap..h * cap + pos + 1)) };
                        let kv = h / group * hd;
                        attend(&q[h * hd..(h + 1) * hd], keys, values, kvd, kv, pos + 1, scale, sc, o);
                    }
                });
            }
            self.project(&layer.o, &s.attn, &mut s.attn_q, &mut s.proj, exact);
            s.x.iter_mut().zip(&s.proj).for_each(|(x, p)| *x += p);
            // MLP block.
            rms_norm(&s.x, &layer.mlp_norm, self.eps, &mut s.h);
            self.project(&layer.gate_up, &s.h, &mut s.hq, &mut s.gate_up, exact);
            let (gate, up) = s.gate_up.split_at(self.ffn);
            for ((a, g), u) in s.act.iter_mut().zip(gate).zip(up) {
                *a = g / (1.0 + (-g).exp()) * u;
            }
            self.project(&layer.down, &s.act, &mut s.act_q, &mut s.proj, exact);
            s.x.iter_mut().zip(&s.proj).for_each(|(x, p)| *x += p);
        }
        rms_norm(&s.x, &self.norm, self.eps, &mut s.h);
        self.project(&self.head, &s.h, &mut s.hq, &mut s.logits, exact);
        s.pos += 1;
        Ok(&s.logits)
    }

    /// Start `state` from a batch-1 cache of the model's forward pass (a prompt it prefilled):
    /// the loop then continues that sequence. Errors when the cache does not fit the state.
    pub fn import(&self, state: &mut DecodeState, cache: &crate::Cache) -> Result<(), String> {
        let n = cache.len();
        if n > state.capacity {
            return Err(format!("a cache of {n} positions does not fit a state of {}", state.capacity));
        }
        let kvd = self.kv_heads * self.head_dim;
        for l in 0..self.layers.len() {
            let Some(Some((k, v))) = cache.layer(l).map(|c| c.contents().ok().flatten()) else {
                if n == 0 {
                    continue;
                }
                return Err(format!("layer {l} of the cache is empty"));
            };
            for (t, dst) in [(k, &mut state.k[l]), (v, &mut state.v[l])] {
                // (1, K, n, D) -> (n, K·D)
                let rows: Vec<f32> = t
                    .to_dtype(candle_core::DType::F32)
                    .and_then(|t| t.squeeze(0)?.transpose(0, 1)?.contiguous()?.flatten_all()?.to_vec1())
                    .map_err(|e| format!("reading the cache: {e}"))?;
                if rows.len() != n * kvd {
                    return Err(format!("layer {l}: the cache holds {} values, expected {}", rows.len(), n * kvd));
                }
                dst[..n * kvd].copy_from_slice(&rows);
            }
        }
        state.pos = n;
        Ok(())
    }

    /// Append the positions the loop decoded past `cache`'s end (a batch-1 cache of the same
    /// sequence, as [`FastDecoder::import`] read it) to it, so the model's forward pass can
    /// continue the sequence.
    pub fn export(&self, state: &DecodeState, cache: &mut crate::Cache) -> Result<(), String> {
        let from = cache.len();
        if from > state.pos {
            return Err(format!("the cache holds {from} positions, the loop only {}", state.pos));
        }
        let n = state.pos - from;
        if n == 0 {
            return Ok(());
        }
        let (kh, d) = (self.kv_heads, self.head_dim);
        let kvd = kh * d;
        for l in 0..self.layers.len() {
            let tensor = |buf: &[f32]| {
                candle_core::Tensor::from_slice(
                    &buf[from * kvd..state.pos * kvd],
                    (1, n, kh, d),
                    &candle_core::Device::Cpu,
                )
                .and_then(|t| t.transpose(1, 2)?.contiguous())
            };
            let (k, v) = (tensor(&state.k[l]), tensor(&state.v[l]));
            let layer = cache.layer_mut(l).ok_or_else(|| format!("the cache has no layer {l}"))?;
            match (k, v) {
                (Ok(k), Ok(v)) => {
                    layer.append(&k, &v).map_err(|e| format!("writing the cache: {e}"))?;
                }
                (Err(e), _) | (_, Err(e)) => return Err(format!("building cache tensors: {e}")),
            }
        }
        Ok(())
    }

    /// Run every product with f32 activations (the forward pass's arithmetic) or, by default,
    /// the block formats with activations quantized per block to 16 bits ([`ingot_kernels::q16`]).
    pub fn set_exact(&self, exact: bool) {
        self.exact.store(exact, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_exact(&self) -> bool {
        self.exact.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `out = proj(x)` over the team, `xq` taking x first (its block sums, and its 16-bit
    /// values unless `exact`).
    fn project(&self, proj: &Proj, x: &[f32], xq: &mut Q16Input, out: &mut [f32], exact: bool) {
        xq.set(x, !exact);
        let (xq, size) = (&*xq, self.team.size());
        let out = Disjoint::new(out);
        self.team.run(&|i| proj.run_share(x, xq, exact, &out, i, size));
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.team.size()
    }
}

/// y = x / sqrt(mean(x²) + eps) · w, as candle's fused rms_norm computes it in f32.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
        *y = x * scale * w;
    }
}

/// Rotate one head in place at the position whose tables are `cos`, `sin` (head_dim / 2 each).
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], layout: RopeLayout) {
    let half = x.len() / 2;
    match layout {
        RopeLayout::Interleaved => {
            for i in 0..half {
                let (a, b) = (x[2 * i], x[2 * i + 1]);
                x[2 * i] = a * cos[i] - b * sin[i];
                x[2 * i + 1] = a * sin[i] + b * cos[i];
            }
        }
        RopeLayout::Halves => {
            for i in 0..half {
                let (a, b) = (x[i], x[i + half]);
                x[i] = a * cos[i] - b * sin[i];
                x[i + half] = a * sin[i] + b * cos[i];
            }
        }
    }
}

/// One query head against `len` cached positions of its key/value head (columns `kv..kv+D` of
/// rows of width `kvd`): softmax(q·k · scale) · v into `out`.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kvd: usize,
    kv: usize,
    len: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    let mut max = f32::NEG_INFINITY;
    for (t, s) in scores.iter_mut().enumerate().take(len) {
        let k = &keys[t * kvd + kv..t * kvd + kv + d];
        *s = ingot_kernels::dense::dot_f32(q, k) * scale;
        max = max.max(*s);
    }
    let mut total = 0f32;
    for s in scores.iter_mut().take(len) {
        *s = (*s - max).exp();
        total += *s;
    }
    out.iter_mut().for_each(|o| *o = 0.0);
    for (t, s) in scores.iter().enumerate().take(len) {
        let p = s / total;
        let v = &values[t * kvd + kv..t * kvd + kv + d];
        for (o, v) in out.iter_mut().zip(v) {
            *o += p * v;
        }
    }
}
