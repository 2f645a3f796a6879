//! GPT-2 (Radford et al. 2019), following HF transformers' `modeling_gpt2.py` and nanoGPT.
//!
//! Learned absolute positions, pre-LayerNorm blocks, fused qkv projection, GELU (tanh form) MLP,
//! output head tied to the token embedding. HF checkpoints store linear weights in Conv1D layout
//! (in, out); GGUF files store them as (out, in); [`Linear::load_conv1d`] handles both.
//!
//! Dimension legend: B batch, T new positions, C width, H heads, D head dim, V vocabulary.

use candle_core::Tensor;
use ingot_core::{Error, Result};
use std::sync::Arc;

use ingot_nn::dropout::DropoutState;
use ingot_nn::{
    causal_attention_with_dropout, normal, Checkpointing, Dropout, Embedding, KvCache, LayerNorm, Linear, Weights,
};

use crate::config::{Activation, Gpt2Config};
use crate::Kv;

/// HF key (with or without the `transformer.` prefix) → llama.cpp GGUF tensor name.
pub fn gguf_name(key: &str) -> Option<String> {
    let key = key.strip_prefix("transformer.").unwrap_or(key);
    let (module, leaf) = key.rsplit_once('.')?;
    Some(match module {
        "wte" => format!("token_embd.{leaf}"),
        "wpe" => format!("position_embd.{leaf}"),
        "ln_f" => format!("output_norm.{leaf}"),
        "lm_head" => format!("output.{leaf}"),
        _ => {
            let rest = module.strip_prefix("h.")?;
            let (i, sub) = rest.split_once('.')?;
            let name = match sub {
                "ln_1" => "attn_norm",
                "attn.c_attn" => "attn_qkv",
                "attn.c_proj" => "attn_output",
                "ln_2" => "ffn_norm",
                "mlp.c_fc" => "ffn_up",
                "mlp.c_proj" => "ffn_down",
                _ => return None,
            };
            format!("blk.{i}.{name}.{leaf}")
        }
    })
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
    n_head: usize,
    activation: Activation,
    /// On the attention probabilities (attn_pdrop).
    attn_dropout: Dropout,
    /// On each branch's output before the residual add (resid_pdrop).
    resid_dropout: Dropout,
}

impl Block {
    fn load(w: &Weights, cfg: &Gpt2Config, dropout: &Arc<DropoutState>) -> Result<Self> {
        let c = cfg.n_embd;
        let eps = cfg.layer_norm_epsilon;
        // nanoGPT / GPT-2 paper: residual projections scaled by 1/sqrt(2·layers).
        let resid_init = normal(0.02 / (2.0 * cfg.n_layer as f64).sqrt());
        Ok(Self {
            ln_1: LayerNorm::load(&w.pp("ln_1"), c, eps)?,
            c_attn: Linear::load_conv1d(&w.pp("attn").pp("c_attn"), c, 3 * c, normal(0.02))?,
            attn_proj: Linear::load_conv1d(&w.pp("attn").pp("c_proj"), c, c, resid_init)?,
            ln_2: LayerNorm::load(&w.pp("ln_2"), c, eps)?,
            c_fc: Linear::load_conv1d(&w.pp("mlp").pp("c_fc"), c, cfg.n_inner, normal(0.02))?,
            mlp_proj: Linear::load_conv1d(&w.pp("mlp").pp("c_proj"), cfg.n_inner, c, resid_init)?,
            n_head: cfg.n_head,
            activation: cfg.activation,
            attn_dropout: Dropout::new(cfg.attn_pdrop, dropout.clone()),
            resid_dropout: Dropout::new(cfg.resid_pdrop, dropout.clone()),
        })
    }

    fn attention(&self, x: &Tensor, cache: Kv) -> candle_core::Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let (h, d) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x)?; // (B, T, 3·C)
        if matches!(cache, Kv::None) && !self.attn_dropout.is_active() && ingot_nn::norm::kernel_dtype(&[&qkv]) {
            // One fused op from qkv to the merged heads, forward and backward.
            return self.attn_proj.forward(&ingot_kernels::causal_attention_qkv(&qkv, h)?);
        }
        let qkv = qkv.reshape((b, t, 3, h, d))?; // (B, T, 3, H, D)
                                                 // Contiguous copies: the batched attention matmuls need compact batch strides.
        let q = qkv.narrow(2, 0, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?; // (B, H, T, D)
        let k = qkv.narrow(2, 1, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
        let v = qkv.narrow(2, 2, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
        let y = match cache {
            Kv::Segments { caches, lens } => {
                // Each sequence against its own cache.
                if b != 1 || caches.len() != lens.len() || lens.iter().sum::<usize>() != t {
                    candle_core::bail!("segments {lens:?} for {} caches do not cover the {t} new tokens", caches.len())
                }
                let mut ys = Vec::with_capacity(lens.len());
                let mut start = 0;
                for (cache, &len) in caches.iter_mut().zip(lens.iter()) {
                    let (k, v) = cache.append(&k.narrow(2, start, len)?, &v.narrow(2, start, len)?)?;
                    ys.push(causal_attention_with_dropout(
                        &q.narrow(2, start, len)?,
                        &k,
                        &v,
                        Some(&self.attn_dropout),
                    )?);
                    start += len;
                }
                Tensor::cat(&ys, 2)?
            }
            Kv::One(cache) => {
                let (k, v) = cache.append(&k, &v)?;
                causal_attention_with_dropout(&q, &k, &v, Some(&self.attn_dropout))?
            }
            Kv::None => causal_attention_with_dropout(&q, &k, &v, Some(&self.attn_dropout))?,
        }; // (B, H, T, D)
        let y = y.transpose(1, 2)?.reshape((b, t, c))?; // (B, T, C)
        self.attn_proj.forward(&y)
    }

    fn forward(&self, x: &Tensor, cache: Kv) -> candle_core::Result<Tensor> {
        let x = (x + self.resid_dropout.forward(&self.attention(&self.ln_1.forward(x)?, cache)?)?)?;
        let h = self.activation.forward(&self.c_fc.forward(&self.ln_2.forward(&x)?)?)?; // (B, T, 4C)
        &x + self.resid_dropout.forward(&self.mlp_proj.forward(&h)?)?
    }
}

/// A GPT-2 decoder.
pub struct Gpt2 {
    wte: Embedding,
    wpe: Tensor,
    blocks: Vec<Arc<Block>>,
    ln_f: LayerNorm,
    lm_head: Linear,
    embd_dropout: Dropout,
    dropout: Arc<DropoutState>,
    cfg: Gpt2Config,
    /// Recompute each block in backward instead of keeping its activations (training only).
    checkpointing: Option<Arc<Checkpointing>>,
}

impl Gpt2 {
    pub fn load(w: &Weights, cfg: &Gpt2Config) -> Result<Self> {
        // Older HF GPT-2 checkpoints drop the `transformer.` prefix.
        let t = if w.is_gguf() || w.pp("transformer").contains("wte.weight") || !w.contains("wte.weight") {
            w.pp("transformer")
        } else {
            w.clone()
        };
        let wte = Embedding::load(&t.pp("wte"), cfg.vocab_size, cfg.n_embd, normal(0.02))?;
        let wpe = t.pp("wpe").get(&[cfg.n_positions, cfg.n_embd], "weight", normal(0.02))?;
        let dropout = DropoutState::new();
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::load(&t.pp("h").pp(i), cfg, &dropout).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::load(&t.pp("ln_f"), cfg.n_embd, cfg.layer_norm_epsilon)?;
        let lm_head = if w.is_gguf() && w.contains("lm_head.weight") {
            Linear::load(&w.pp("lm_head"), cfg.n_embd, cfg.vocab_size, false, normal(0.02))?
        } else {
            wte.as_linear()?
        };
        if !cfg.n_embd.is_multiple_of(cfg.n_head) {
            return Err(Error::Model(format!("n_embd {} is not divisible by n_head {}", cfg.n_embd, cfg.n_head)));
        }
        let embd_dropout = Dropout::new(cfg.embd_pdrop, dropout.clone());
        Ok(Self { wte, wpe, blocks, ln_f, lm_head, embd_dropout, dropout, cfg: cfg.clone(), checkpointing: None })
    }

    /// Turn activation checkpointing on (Some) or off for the uncached forward passes.
    pub fn set_checkpointing(&mut self, checkpointing: Option<Arc<Checkpointing>>) {
        self.checkpointing = checkpointing;
    }

    pub fn checkpointing(&self) -> Option<&Arc<Checkpointing>> {
        self.checkpointing.as_ref()
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    pub fn max_positions(&self) -> usize {
        self.cfg.n_positions
    }

    /// ids (B, T) → final hidden states (B, T, C).
    pub fn forward_hidden(&self, ids: &Tensor, cache: Option<&mut [KvCache]>) -> candle_core::Result<Tensor> {
        self.forward_probed(ids, cache, &mut |_, _| Ok(()))
    }

    /// [`Self::forward_hidden`], calling `probe` on the embeddings (`None`) and on each block's
    /// output (`Some(layer)`): how a non-finite value is traced to the layer that made it.
    pub fn forward_probed(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut [KvCache]>,
        probe: &mut dyn FnMut(Option<usize>, &Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        let offset = cache.as_ref().and_then(|c| c.first()).map_or(0, KvCache::len);
        let pos = self.wpe.narrow(0, offset, t)?; // (T, C)
        let mut x = self.embd_dropout.forward(&self.wte.forward(ids)?.broadcast_add(&pos)?)?; // (B, T, C)
        probe(None, &x)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = match (cache.as_mut(), &self.checkpointing) {
                (Some(c), _) => block.forward(&x, Kv::One(&mut c[i]))?,
                (None, Some(checkpointing)) => {
                    let block = block.clone();
                    checkpointing.apply(&x, Arc::new(move |x| block.forward(x, Kv::None)))?
                }
                (None, None) => block.forward(&x, Kv::None)?,
            };
            probe(Some(i), &x)?;
        }
        self.ln_f.forward(&x)
    }

    /// Sequences side by side in one row (see [`Kv::Segments`]): `lens[i]` of the new tokens
    /// continue `caches[i]` (that sequence's per-layer caches), positions counting on from its
    /// length. ids (1, T) → final hidden states (1, T, C).
    pub fn forward_segments(
        &self,
        ids: &Tensor,
        lens: &[usize],
        caches: &mut [&mut [KvCache]],
    ) -> candle_core::Result<Tensor> {
        let positions: Vec<u32> = caches
            .iter()
            .zip(lens)
            .flat_map(|(c, &len)| {
                let past = c.first().map_or(0, KvCache::len) as u32;
                past..past + len as u32
            })
            .collect();
        let n = positions.len();
        let pos = self.wpe.index_select(&Tensor::from_vec(positions, n, ids.device())?, 0)?.unsqueeze(0)?; // (1, T, C)
        let mut x = self.embd_dropout.forward(&self.wte.forward(ids)?.broadcast_add(&pos)?)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let mut layer_caches: Vec<&mut KvCache> = caches.iter_mut().map(|c| &mut c[i]).collect();
            x = block.forward(&x, Kv::Segments { caches: &mut layer_caches, lens })?;
        }
        self.ln_f.forward(&x)
    }

    /// Key/value heads and head dim: the shape of one layer's cache per position.
    pub fn kv_shape(&self) -> (usize, usize) {
        (self.cfg.n_head, self.cfg.n_embd / self.cfg.n_head)
    }

    pub fn num_heads(&self) -> usize {
        self.cfg.n_head
    }

    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    /// Switches dropout between training (seeded masks) and evaluation (off).
    pub fn dropout_state(&self) -> &Arc<DropoutState> {
        &self.dropout
    }

    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }
}
