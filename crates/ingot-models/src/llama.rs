//! The llama family: SmolLM/SmolLM2, Llama 2 and 3, Mistral, Qwen2.
//!
//! Follows HF transformers' `modeling_llama.py` (and candle-transformers' llama.rs): pre-norm
//! blocks of RMSNorm → grouped-query attention with RoPE → residual, RMSNorm → SwiGLU MLP →
//! residual; a final RMSNorm and an output head, tied to the embedding or not. Qwen2 differs only
//! by q/k/v biases. Mistral's sliding window is not applied: outputs are exact for contexts up to
//! the window (4096 tokens) and differ beyond it.
//!
//! Dimension legend: B batch, T new positions, C hidden size, H query heads, K key/value heads,
//! D head dim, F MLP width, V vocabulary.

use candle_core::{DType, Device, Tensor, D};
use ingot_core::{CandleContext, Result};
use std::sync::Arc;

use ingot_nn::{
    causal_attention, masked_attention, normal, Adapters, Checkpointing, Embedding, KvCache, Linear, RmsNorm, Rope,
    RopeLayout, RopeScaling, SharedInput, Stored, Weights,
};

use crate::config::{Activation, LlamaConfig};
use crate::Kv;

mod decode;
pub use decode::{DecodeState, FastDecoder};

/// HF key → llama.cpp GGUF tensor name.
pub fn gguf_name(key: &str) -> Option<String> {
    let map = |s: &str| -> Option<&'static str> {
        Some(match s {
            "input_layernorm" => "attn_norm",
            "self_attn.q_proj" => "attn_q",
            "self_attn.k_proj" => "attn_k",
            "self_attn.v_proj" => "attn_v",
            "self_attn.o_proj" => "attn_output",
            "post_attention_layernorm" => "ffn_norm",
            "mlp.gate_proj" => "ffn_gate",
            "mlp.up_proj" => "ffn_up",
            "mlp.down_proj" => "ffn_down",
            _ => return None,
        })
    };
    let (module, leaf) = key.rsplit_once('.')?;
    Some(match module {
        "model.embed_tokens" => format!("token_embd.{leaf}"),
        "model.norm" => format!("output_norm.{leaf}"),
        "lm_head" => format!("output.{leaf}"),
        _ => {
            let rest = module.strip_prefix("model.layers.")?;
            let (i, sub) = rest.split_once('.')?;
            format!("blk.{i}.{}.{leaf}", map(sub)?)
        }
    })
}

/// Where a forward pass's new positions sit.
#[derive(Clone, Copy)]
pub enum At<'a> {
    /// Consecutive positions after `offset` cached ones, under the causal mask.
    Offset(usize),
    /// Packed training rows: each token's position (B, T) u32, restarting at 0 per example, and
    /// the additive block-diagonal causal mask (B, T, T) that keeps attention inside each example.
    Packed { positions: &'a Tensor, mask: &'a Tensor },
}

struct Attention {
    /// q_proj, k_proj, v_proj
    qkv: SharedInput,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &Weights, cfg: &LlamaConfig) -> Result<Self> {
        let (c, h, k, d) = (cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let init = normal(0.02);
        let resid_init = normal(0.02 / (2.0 * cfg.num_layers as f64).sqrt());
        let q_proj = Linear::load(&w.pp("q_proj"), c, h * d, cfg.attention_bias, init)?;
        let k_proj = Linear::load(&w.pp("k_proj"), c, k * d, cfg.attention_bias, init)?;
        let v_proj = Linear::load(&w.pp("v_proj"), c, k * d, cfg.attention_bias, init)?;
        Ok(Self {
            qkv: SharedInput::new(vec![q_proj, k_proj, v_proj]),
            o_proj: Linear::load(&w.pp("o_proj"), h * d, c, false, resid_init)?,
            num_heads: h,
            num_kv_heads: k,
            head_dim: d,
        })
    }

    fn forward(&self, x: &Tensor, rope: &Rope, at: At, cache: Kv) -> candle_core::Result<Tensor> {
        let (b, t, _c) = x.dims3()?;
        let (h, k, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let [q, kk, v]: [Tensor; 3] =
            self.qkv.forward(x)?.try_into().map_err(|_| candle_core::Error::Msg("qkv".into()))?;
        let q = q.reshape((b, t, h, d))?.transpose(1, 2)?; // (B, H, T, D)
        let kk = kk.reshape((b, t, k, d))?.transpose(1, 2)?; // (B, K, T, D)
        let v = v.reshape((b, t, k, d))?.transpose(1, 2)?; // (B, K, T, D)
        let y = match (at, cache) {
            (_, Kv::Segments { caches, lens }) => {
                // Each sequence at its own position, against its own cache.
                if b != 1 || caches.len() != lens.len() || lens.iter().sum::<usize>() != t {
                    candle_core::bail!("segments {lens:?} for {} caches do not cover the {t} new tokens", caches.len())
                }
                if lens.iter().all(|&n| n == 1) && fused_decode(&q) {
                    // The decode step: every sequence's rotation in one call, the cache appends,
                    // then one fused attention over all the caches.
                    let positions: Vec<u32> = caches.iter().map(|c| c.len() as u32).collect();
                    let q = rope.apply_at(&q, &positions)?;
                    let kk = rope.apply_at(&kk, &positions)?;
                    let mut kv = Vec::with_capacity(caches.len());
                    for (r, cache) in caches.iter_mut().enumerate() {
                        kv.push(cache.append(&kk.narrow(2, r, 1)?, &v.narrow(2, r, 1)?)?);
                    }
                    ingot_kernels::decode_attention(&q, &kv, 1.0 / (d as f32).sqrt())?
                // (1, H, B, D)
                } else {
                    let mut ys = Vec::with_capacity(lens.len());
                    let mut start = 0;
                    for (cache, &len) in caches.iter_mut().zip(lens.iter()) {
                        let offset = cache.len();
                        let q = rope.apply(&q.narrow(2, start, len)?, offset)?;
                        let kk = rope.apply(&kk.narrow(2, start, len)?, offset)?;
                        let (kk, v) = cache.append(&kk, &v.narrow(2, start, len)?)?;
                        ys.push(causal_attention(&q, &kk, &v)?); // (1, H, len, D)
                        start += len;
                    }
                    Tensor::cat(&ys, 2)?
                }
            }
            (At::Offset(offset), cache) => {
                let q = rope.apply(&q, offset)?;
                let kk = rope.apply(&kk, offset)?;
                let cached = matches!(cache, Kv::One(_));
                let (kk, v) = match cache {
                    Kv::One(cache) => cache.append(&kk, &v)?, // (B, K, S, D)
                    _ => (kk, v),
                };
                if cached && t == 1 && fused_decode(&q) {
                    // One new token per row: the decode kernel, as the segment path runs it, so a
                    // generation decodes alike alone and inside a batch of others.
                    let kv = (0..b)
                        .map(|r| Ok((kk.narrow(0, r, 1)?, v.narrow(0, r, 1)?)))
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    ingot_kernels::decode_attention(&q.transpose(0, 2)?, &kv, 1.0 / (d as f32).sqrt())?
                        .transpose(0, 2)?
                } else {
                    causal_attention(&q, &kk, &v)? // (B, H, T, D)
                }
            }
            (At::Packed { positions, mask }, _) => {
                let q = rope.apply_positions(&q, positions)?;
                let kk = rope.apply_positions(&kk, positions)?;
                masked_attention(&q, &kk, &v, mask)?
            }
        };
        let y = y.transpose(1, 2)?.reshape((b, t, h * d))?; // (B, T, H·D)
        self.o_proj.forward(&y)
    }
}

/// Whether one-token-per-sequence attention may take the fused decode kernel: f32 and no
/// gradient wanted (the kernel has no backward). Both decode paths ask the same question, so a
/// generation decodes alike alone and inside a batch.
fn fused_decode(q: &Tensor) -> bool {
    q.dtype() == DType::F32 && !q.track_op()
}

struct Mlp {
    /// gate_proj, up_proj
    gate_up: SharedInput,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn load(w: &Weights, cfg: &LlamaConfig) -> Result<Self> {
        let (c, f) = (cfg.hidden_size, cfg.intermediate_size);
        let resid_init = normal(0.02 / (2.0 * cfg.num_layers as f64).sqrt());
        let gate_proj = Linear::load(&w.pp("gate_proj"), c, f, false, normal(0.02))?;
        let up_proj = Linear::load(&w.pp("up_proj"), c, f, false, normal(0.02))?;
        Ok(Self {
            gate_up: SharedInput::new(vec![gate_proj, up_proj]),
            down_proj: Linear::load(&w.pp("down_proj"), f, c, false, resid_init)?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let [gate, up]: [Tensor; 2] =
            self.gate_up.forward(x)?.try_into().map_err(|_| candle_core::Error::Msg("gate/up".into()))?;
        let fused = self.act == Activation::Silu
            && ingot_nn::norm::needs_grad(&[&gate, &up])
            && ingot_nn::norm::kernel_dtype(&[&gate, &up]);
        let h = if fused { ingot_kernels::swiglu(&gate, &up)? } else { (self.act.forward(&gate)? * up)? };
        self.down_proj.forward(&h) // (B, T, F) -> (B, T, C)
    }
}

struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(w: &Weights, cfg: &LlamaConfig) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::load(&w.pp("input_layernorm"), cfg.hidden_size, cfg.rms_norm_eps)?,
            self_attn: Attention::load(&w.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(
                &w.pp("post_attention_layernorm"),
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
            mlp: Mlp::load(&w.pp("mlp"), cfg)?,
        })
    }

    fn forward(&self, x: &Tensor, rope: &Rope, at: At, cache: Kv) -> candle_core::Result<Tensor> {
        let x = (x + self.self_attn.forward(&self.input_layernorm.forward(x)?, rope, at, cache)?)?;
        &x + self.mlp.forward(&self.post_attention_layernorm.forward(&x)?)?
    }
}

/// A llama-family decoder.
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<Arc<Block>>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    cfg: LlamaConfig,
    adapters: Option<Arc<Adapters>>,
    /// Recompute each block in backward instead of keeping its activations (training only).
    checkpointing: Option<Arc<Checkpointing>>,
    /// The candle-free decode loop, made on first use ([`Llama::decode_loop`]).
    decode_loop: std::sync::OnceLock<Option<FastDecoder>>,
}

impl Llama {
    /// Load from HF-keyed weights (a GGUF source maps the keys; see [`gguf_name`]).
    pub fn load(w: &Weights, cfg: &LlamaConfig) -> Result<Self> {
        // llama.cpp's converter permutes llama q/k rows so that GGUF files rotate adjacent pairs;
        // Qwen2 GGUF files keep HF's halves layout.
        let layout = match w.gguf().map(|f| f.get_str("general.architecture")) {
            Some(Ok(Some("llama" | "mistral"))) => RopeLayout::Interleaved,
            _ => RopeLayout::Halves,
        };
        let mut scaling = cfg.rope_scaling.clone();
        if let Some(file) = w.gguf() {
            if file.tensor_info("rope_freqs.weight").is_some() {
                let factors = file.tensor("rope_freqs.weight", &Device::Cpu)?;
                let factors =
                    factors.flatten_all().and_then(|f| f.to_vec1::<f32>()).context(|| "reading rope_freqs".into())?;
                if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
                    return Err(ingot_core::Error::Model(format!(
                        "{}: rope_freqs.weight holds {bad}; frequency factors must be finite and above 0",
                        file.path().display()
                    )));
                }
                scaling = RopeScaling::FreqFactors(factors.into_iter().map(f64::from).collect());
            }
        }
        let rope = Rope::new(cfg.head_dim, cfg.max_position_embeddings, cfg.rope_theta, &scaling, layout, w.device())?;
        let m = w.pp("model");
        let embed_tokens = Embedding::load(&m.pp("embed_tokens"), cfg.vocab_size, cfg.hidden_size, normal(0.02))?;
        let layers = (0..cfg.num_layers)
            .map(|i| Block::load(&m.pp("layers").pp(i), cfg).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(&m.pp("norm"), cfg.hidden_size, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.as_linear()?
        } else {
            Linear::load(&w.pp("lm_head"), cfg.hidden_size, cfg.vocab_size, false, normal(0.02))?
        };
        if let Some(a) = w.adapters() {
            a.finish()?;
        }
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            cfg: cfg.clone(),
            adapters: w.adapters().cloned(),
            checkpointing: None,
            decode_loop: std::sync::OnceLock::new(),
        })
    }

    /// Turn activation checkpointing on (Some) or off for the uncached forward passes.
    pub fn set_checkpointing(&mut self, checkpointing: Option<Arc<Checkpointing>>) {
        self.checkpointing = checkpointing;
    }

    pub fn checkpointing(&self) -> Option<&Arc<Checkpointing>> {
        self.checkpointing.as_ref()
    }

    /// Layer `i` on `x` with no cache, checkpointed when that is on.
    fn uncached_layer(&self, i: usize, x: &Tensor, at: At) -> candle_core::Result<Tensor> {
        let Some(c) = &self.checkpointing else { return self.layers[i].forward(x, &self.rope, at, Kv::None) };
        let (layer, rope) = (self.layers[i].clone(), self.rope.clone());
        let block: ingot_nn::checkpoint::Block = match at {
            At::Offset(offset) => Arc::new(move |x| layer.forward(x, &rope, At::Offset(offset), Kv::None)),
            At::Packed { positions, mask } => {
                let (positions, mask) = (positions.clone(), mask.clone());
                Arc::new(move |x| layer.forward(x, &rope, At::Packed { positions: &positions, mask: &mask }, Kv::None))
            }
        };
        c.apply(x, block)
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn max_positions(&self) -> usize {
        self.rope.max_positions()
    }

    /// ids (B, T) → final hidden states (B, T, C), appending to `cache` when given.
    pub fn forward_hidden(&self, ids: &Tensor, cache: Option<&mut [KvCache]>) -> candle_core::Result<Tensor> {
        self.forward_probed(ids, cache, &mut |_, _| Ok(()))
    }

    /// [`Self::forward_hidden`], calling `probe` on the embeddings (`None`) and on each layer's
    /// output (`Some(layer)`): how a non-finite value is traced to the layer that made it.
    pub fn forward_probed(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut [KvCache]>,
        probe: &mut dyn FnMut(Option<usize>, &Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<Tensor> {
        let offset = cache.as_ref().and_then(|c| c.first()).map_or(0, KvCache::len);
        let mut x = self.embed_tokens.forward(ids)?; // (B, T, C)
        probe(None, &x)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = match cache.as_mut() {
                Some(c) => layer.forward(&x, &self.rope, At::Offset(offset), Kv::One(&mut c[i]))?,
                None => self.uncached_layer(i, &x, At::Offset(offset))?,
            };
            probe(Some(i), &x)?;
        }
        self.norm.forward(&x)
    }

    /// Sequences side by side in one row (see [`Kv::Segments`]): `lens[i]` of the new tokens
    /// continue `caches[i]` (that sequence's per-layer caches). ids (1, T) → final hidden states
    /// (1, T, C). The linear layers run once for all the tokens; attention runs per sequence.
    pub fn forward_segments(
        &self,
        ids: &Tensor,
        lens: &[usize],
        caches: &mut [&mut [KvCache]],
    ) -> candle_core::Result<Tensor> {
        let mut x = self.embed_tokens.forward(ids)?; // (1, T, C)
        for (i, layer) in self.layers.iter().enumerate() {
            let mut layer_caches: Vec<&mut KvCache> = caches.iter_mut().map(|c| &mut c[i]).collect();
            x = layer.forward(&x, &self.rope, At::Offset(0), Kv::Segments { caches: &mut layer_caches, lens })?;
        }
        self.norm.forward(&x)
    }

    /// Packed rows (see [`At::Packed`]) → final hidden states (B, T, C); no cache.
    pub fn forward_hidden_packed(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let mut x = self.embed_tokens.forward(ids)?;
        for i in 0..self.layers.len() {
            x = self.uncached_layer(i, &x, At::Packed { positions, mask })?;
        }
        self.norm.forward(&x)
    }

    /// Interleaved when the weights came from a GGUF llama file (llama.cpp's q/k row order).
    pub fn rope_layout(&self) -> RopeLayout {
        self.rope.layout()
    }

    pub fn adapters(&self) -> Option<&Arc<Adapters>> {
        self.adapters.as_ref()
    }

    /// Every weight under its HF key, dense f32 in the layout this model computes with (GGUF
    /// llama q/k rows stay in llama.cpp's interleaved order), adapters merged in when `merge`.
    /// A tied head is not listed (it is the embedding).
    pub fn named_weights(&self, merge: bool) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        let dense = |s: &Stored| -> candle_core::Result<Tensor> {
            match s {
                Stored::Dense(t) => Ok(t.detach()),
                Stored::Quantized(q) => q.dequantize(&Device::Cpu),
            }
        };
        out.push(("model.embed_tokens.weight".to_string(), dense(self.embed_tokens.stored())?));
        for (i, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), layer.input_layernorm.weight().detach()));
            out.extend(layer.self_attn.qkv.named_weights(merge)?);
            out.extend(layer.self_attn.o_proj.named_weights(merge)?);
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                layer.post_attention_layernorm.weight().detach(),
            ));
            out.extend(layer.mlp.gate_up.named_weights(merge)?);
            out.extend(layer.mlp.down_proj.named_weights(merge)?);
        }
        out.push(("model.norm.weight".to_string(), self.norm.weight().detach()));
        if !self.cfg.tie_word_embeddings {
            out.extend(self.lm_head.named_weights(merge)?);
        }
        Ok(out)
    }

    /// Key/value heads and head dim: the shape of one layer's cache per position.
    pub fn kv_shape(&self) -> (usize, usize) {
        (self.cfg.num_kv_heads, self.cfg.head_dim)
    }

    pub fn num_heads(&self) -> usize {
        self.cfg.num_heads
    }

    /// hidden (B, T, C) → logits (B, T, V)
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }

    pub fn embed_storage_name(&self) -> String {
        match self.embed_tokens.quantized() {
            Some(q) => format!("{:?}", q.dtype()),
            None => "F32".into(),
        }
    }
}

/// Keep only the last position: (B, T, C) → (B, 1, C).
pub fn last_position(x: &Tensor) -> candle_core::Result<Tensor> {
    let t = x.dim(D::Minus2)?;
    x.narrow(D::Minus2, t - 1, 1)
}
