//! Model configurations, read from a checkpoint's own config (HF config.json or GGUF metadata)
//! and resolved once into plain structs with no optional fields.

use serde::Deserialize;

use ingot_core::gguf::GgufFile;
use ingot_core::{Error, Result};
use ingot_nn::RopeScaling;

/// Llama-family configuration: SmolLM, Llama 2/3, Mistral, Qwen2.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Qwen2 puts biases on q, k and v.
    pub attention_bias: bool,
}

/// GPT-2 configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_inner: usize,
    pub layer_norm_epsilon: f64,
    /// Dropout on embeddings and residual branches while training (HF resid_pdrop/embd_pdrop).
    pub dropout: f32,
}

/// The HF config.json fields Ingot reads, with the checkpoint's own names.
#[derive(Debug, Deserialize)]
pub struct HfConfig {
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    pub vocab_size: Option<usize>,
    // llama family
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<serde_json::Value>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    // gpt2
    pub n_positions: Option<usize>,
    pub n_embd: Option<usize>,
    pub n_layer: Option<usize>,
    pub n_head: Option<usize>,
    pub n_inner: Option<usize>,
    pub layer_norm_epsilon: Option<f64>,
    pub resid_pdrop: Option<f32>,
}

fn need<T>(v: Option<T>, field: &str, source: &str) -> Result<T> {
    v.ok_or_else(|| Error::Model(format!("{source} has no '{field}'")))
}

fn check_gpt2_heads(n_embd: usize, n_head: usize, source: &str) -> Result<()> {
    if n_head == 0 || n_embd == 0 || !n_embd.is_multiple_of(n_head) {
        return Err(Error::Model(format!(
            "{source}: width {n_embd} does not split into {n_head} attention heads (must be a positive multiple)"
        )));
    }
    Ok(())
}

fn check_heads(hidden: usize, heads: usize, kv_heads: usize, source: &str) -> Result<()> {
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || hidden == 0 {
        return Err(Error::Model(format!(
            "{source}: {heads} attention heads and {kv_heads} key/value heads are inconsistent (heads must be a positive multiple of kv heads)"
        )));
    }
    Ok(())
}

impl HfConfig {
    pub fn model_type(&self) -> String {
        self.model_type.clone().unwrap_or_default()
    }

    pub fn llama(&self, source: &str) -> Result<LlamaConfig> {
        let hidden = need(self.hidden_size, "hidden_size", source)?;
        let heads = need(self.num_attention_heads, "num_attention_heads", source)?;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        check_heads(hidden, heads, kv_heads, source)?;
        let is_qwen2 = self.model_type.as_deref() == Some("qwen2");
        Ok(LlamaConfig {
            vocab_size: need(self.vocab_size, "vocab_size", source)?,
            hidden_size: hidden,
            intermediate_size: need(self.intermediate_size, "intermediate_size", source)?,
            num_layers: need(self.num_hidden_layers, "num_hidden_layers", source)?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim: self.head_dim.unwrap_or(hidden / heads),
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            rope_scaling: parse_rope_scaling(self.rope_scaling.as_ref(), source)?,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            attention_bias: self.attention_bias.unwrap_or(is_qwen2),
        })
    }

    pub fn gpt2(&self, source: &str) -> Result<Gpt2Config> {
        let n_embd = need(self.n_embd, "n_embd", source)?;
        let n_head = need(self.n_head, "n_head", source)?;
        check_gpt2_heads(n_embd, n_head, source)?;
        Ok(Gpt2Config {
            vocab_size: need(self.vocab_size, "vocab_size", source)?,
            n_positions: self.n_positions.unwrap_or(1024),
            n_embd,
            n_layer: need(self.n_layer, "n_layer", source)?,
            n_head,
            n_inner: self.n_inner.unwrap_or(4 * n_embd),
            layer_norm_epsilon: self.layer_norm_epsilon.unwrap_or(1e-5),
            // Dropout only acts in training mode; HF's default is 0.1.
            dropout: self.resid_pdrop.unwrap_or(0.1),
        })
    }
}

fn parse_rope_scaling(v: Option<&serde_json::Value>, source: &str) -> Result<RopeScaling> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(RopeScaling::None) };
    let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(|t| t.as_str()).unwrap_or("");
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let factor = num("factor").unwrap_or(1.0);
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor,
            low_freq_factor: num("low_freq_factor").unwrap_or(1.0),
            high_freq_factor: num("high_freq_factor").unwrap_or(4.0),
            original_max_position: num("original_max_position_embeddings").unwrap_or(8192.0) as usize,
        }),
        other => Err(Error::Model(format!(
            "{source}: rope_scaling type '{other}' is not supported (supported: linear, llama3)"
        ))),
    }
}

/// Reads `{arch}.*` keys of a GGUF file.
pub struct GgufKeys<'a> {
    pub file: &'a GgufFile,
    pub arch: String,
}

impl<'a> GgufKeys<'a> {
    pub fn new(file: &'a GgufFile) -> Result<Self> {
        Ok(Self { arch: file.require_str("general.architecture")?.to_string(), file })
    }

    fn usize(&self, key: &str) -> Result<usize> {
        Ok(self.file.require_u64(&format!("{}.{key}", self.arch))? as usize)
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        Ok(self.file.get_u64(&format!("{}.{key}", self.arch))?.map(|v| v as usize))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.file.get_f64(&format!("{}.{key}", self.arch))
    }

    /// Vocabulary size: the explicit key, else the token list, else the embedding rows.
    fn vocab_size(&self) -> Result<usize> {
        if let Some(v) = self.opt_usize("vocab_size")? {
            return Ok(v);
        }
        if let Some(Some(tokens)) = self.file.get("tokenizer.ggml.tokens").map(|v| v.as_array()) {
            return Ok(tokens.len());
        }
        match self.file.tensor_info("token_embd.weight") {
            Some(info) => Ok(info.shape[0]),
            None => Err(Error::Model(format!("{}: cannot tell the vocabulary size", self.file.path().display()))),
        }
    }

    pub fn llama(&self) -> Result<LlamaConfig> {
        let source = self.file.path().display().to_string();
        let hidden = self.usize("embedding_length")?;
        let heads = self.usize("attention.head_count")?;
        let kv_heads = self.opt_usize("attention.head_count_kv")?.unwrap_or(heads);
        check_heads(hidden, heads, kv_heads, &source)?;
        let scaling = match self.file.get_str(&format!("{}.rope.scaling.type", self.arch))? {
            Some("linear") => RopeScaling::Linear { factor: self.opt_f64("rope.scaling.factor")?.unwrap_or(1.0) },
            Some("none") | None => RopeScaling::None,
            Some(other) => {
                return Err(Error::Model(format!(
                    "{source}: rope scaling '{other}' is not supported (supported: linear)"
                )))
            }
        };
        Ok(LlamaConfig {
            vocab_size: self.vocab_size()?,
            hidden_size: hidden,
            intermediate_size: self.usize("feed_forward_length")?,
            num_layers: self.usize("block_count")?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim: match self.opt_usize("attention.key_length")? {
                Some(d) => d,
                None => self.opt_usize("rope.dimension_count")?.unwrap_or(hidden / heads),
            },
            rms_norm_eps: self.opt_f64("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
            rope_theta: self.opt_f64("rope.freq_base")?.unwrap_or(10_000.0),
            rope_scaling: scaling,
            max_position_embeddings: self.usize("context_length")?,
            tie_word_embeddings: self.file.tensor_info("output.weight").is_none(),
            attention_bias: self.file.tensor_info("blk.0.attn_q.bias").is_some(),
        })
    }

    pub fn gpt2(&self) -> Result<Gpt2Config> {
        let source = self.file.path().display().to_string();
        let n_embd = self.usize("embedding_length")?;
        let n_head = self.usize("attention.head_count")?;
        check_gpt2_heads(n_embd, n_head, &source)?;
        Ok(Gpt2Config {
            vocab_size: self.vocab_size()?,
            n_positions: self.usize("context_length")?,
            n_embd,
            n_layer: self.usize("block_count")?,
            n_head,
            n_inner: self.opt_usize("feed_forward_length")?.unwrap_or(4 * n_embd),
            layer_norm_epsilon: self.opt_f64("attention.layer_norm_epsilon")?.unwrap_or(1e-5),
            dropout: 0.0,
        })
    }
}
