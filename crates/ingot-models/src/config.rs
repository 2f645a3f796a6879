//! Model configurations, read from a checkpoint's own config (HF config.json or GGUF metadata)
//! and resolved once into plain structs with no optional fields, then validated
//! ([`LlamaConfig::validate`], [`Gpt2Config::validate`]) before a single weight is allocated.
//!
//! Defaults are those of the reference implementation of each source, so a checkpoint that omits
//! a field means what it meant where it was written; each default names its origin.

use candle_core::Tensor;
use serde::Deserialize;

use ingot_core::gguf::GgufFile;
use ingot_core::limits;
use ingot_core::{Error, Result};
use ingot_nn::RopeScaling;

/// The MLP's non-linearity (HF `hidden_act` / `activation_function`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// x·sigmoid(x): "silu" / "swish", the llama family's SwiGLU gate.
    Silu,
    /// GELU, tanh approximation: "gelu_new" (GPT-2), "gelu_pytorch_tanh", "gelu_fast" (the same
    /// formula written differently).
    GeluTanh,
    /// GELU, exact (erf): "gelu".
    GeluErf,
    Relu,
}

impl Activation {
    const SUPPORTED: &'static str = "silu, swish, gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, relu";

    /// Parse an HF activation name; `field` and `source` name it in the error.
    pub fn from_hf(name: &str, field: &str, source: &str) -> Result<Self> {
        Ok(match name {
            "silu" | "swish" => Self::Silu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "gelu" => Self::GeluErf,
            "relu" => Self::Relu,
            other => {
                return Err(Error::Model(format!(
                    "{source}: {field} = {:?} is not supported (supported: {})",
                    other.chars().take(64).collect::<String>(),
                    Self::SUPPORTED
                )))
            }
        })
    }

    pub fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Silu => x.silu(),
            // Ingot's kernel when a gradient flows: candle's GELU backward is a dozen
            // tensor-sized ops (and its constants are rounded to six digits).
            Self::GeluTanh if x.track_op() && ingot_nn::norm::kernel_dtype(&[x]) => ingot_kernels::gelu_tanh(x),
            Self::GeluTanh => x.gelu(),
            Self::GeluErf => x.gelu_erf(),
            Self::Relu => x.relu(),
        }
    }
}

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
    /// The SwiGLU gate's non-linearity (silu for every llama-family checkpoint Ingot has met).
    pub hidden_act: Activation,
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
    pub activation: Activation,
    /// Dropout on the attention and MLP outputs before each residual add (HF resid_pdrop).
    pub resid_pdrop: f32,
    /// Dropout on token + position embeddings (HF embd_pdrop).
    pub embd_pdrop: f32,
    /// Dropout on the attention probabilities (HF attn_pdrop).
    pub attn_pdrop: f32,
}

/// f32 bytes per parameter: safetensors and training weights are held as f32 (see
/// `Weights::from_safetensors`).
const F32_BYTES: u128 = 4;

/// Wrap a limits error (`Error::Input`) as a model error naming its source.
fn in_source(source: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Input(m) => Error::Model(format!("{source}: {m}")),
        other => other,
    }
}

impl LlamaConfig {
    /// Parameters of the model this config describes (embedding, untied head, layers, final norm).
    pub fn parameter_count(&self) -> u128 {
        let (c, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let (qd, kvd) = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim);
        let bias = if self.attention_bias { (qd + 2 * kvd) as u128 } else { 0 };
        let layer = limits::product(&[c, qd]) * 2 // q_proj, o_proj
            + limits::product(&[c, kvd]) * 2 // k_proj, v_proj
            + limits::product(&[c, f]) * 3 // gate, up, down
            + bias
            + 2 * c as u128; // two RMSNorms
        let head = if self.tie_word_embeddings { 0 } else { limits::product(&[v, c]) };
        limits::product(&[v, c]) + head + layer.saturating_mul(self.num_layers as u128) + c as u128
    }

    /// Check every size and number before anything is allocated; `source` names the config in
    /// errors. With `dense_weights`, also that the weights fit in memory as f32 (checkpoint
    /// folders and training); a GGUF file's weights are bounded by the file itself.
    pub fn validate(&self, source: &str, dense_weights: bool) -> Result<()> {
        let wrap = in_source(source);
        limits::check_vocab("vocab_size", self.vocab_size).map_err(&wrap)?;
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            limits::at_least(field, v, 1).map_err(&wrap)?;
        }
        limits::non_negative_finite("rms_norm_eps", self.rms_norm_eps).map_err(&wrap)?;
        limits::positive_finite("rope_theta", self.rope_theta).map_err(&wrap)?;
        match self.rope_scaling {
            RopeScaling::Linear { factor } => limits::positive_finite("rope_scaling.factor", factor).map_err(&wrap)?,
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
                limits::positive_finite("rope_scaling.factor", factor).map_err(&wrap)?;
                limits::positive_finite("rope_scaling.low_freq_factor", low_freq_factor).map_err(&wrap)?;
                limits::at_least("rope_scaling.original_max_position_embeddings", original_max_position, 1)
                    .map_err(&wrap)?;
                if !(high_freq_factor.is_finite() && high_freq_factor > low_freq_factor) {
                    return Err(Error::Model(format!(
                        "{source}: rope_scaling.high_freq_factor = {high_freq_factor} must be above low_freq_factor = {low_freq_factor}"
                    )));
                }
            }
            RopeScaling::None | RopeScaling::FreqFactors(_) => {}
        }
        if dense_weights {
            let n = self.parameter_count();
            limits::check_memory(
                &format!(
                    "num_hidden_layers = {}, hidden_size = {}, intermediate_size = {}, vocab_size = {} ({:.3e} f32 parameters)",
                    self.num_layers, self.hidden_size, self.intermediate_size, self.vocab_size, n as f64
                ),
                n.saturating_mul(F32_BYTES),
            )
            .map_err(&wrap)?;
        }
        Ok(())
    }
}

impl Gpt2Config {
    /// Parameters: token and position embeddings, layers, final LayerNorm (the head is tied).
    pub fn parameter_count(&self) -> u128 {
        let (c, f) = (self.n_embd, self.n_inner);
        let layer = limits::product(&[c, 3 * c]) + 3 * c as u128 // c_attn
            + limits::product(&[c, c]) + c as u128 // attn c_proj
            + limits::product(&[c, f]) + f as u128 // c_fc
            + limits::product(&[f, c]) + c as u128 // mlp c_proj
            + 4 * c as u128; // ln_1, ln_2
        limits::product(&[self.vocab_size, c])
            + limits::product(&[self.n_positions, c])
            + layer.saturating_mul(self.n_layer as u128)
            + 2 * c as u128
    }

    /// As [`LlamaConfig::validate`].
    pub fn validate(&self, source: &str, dense_weights: bool) -> Result<()> {
        let wrap = in_source(source);
        limits::check_vocab("vocab_size", self.vocab_size).map_err(&wrap)?;
        for (field, v) in [
            ("n_embd", self.n_embd),
            ("n_inner", self.n_inner),
            ("n_layer", self.n_layer),
            ("n_positions", self.n_positions),
        ] {
            limits::at_least(field, v, 1).map_err(&wrap)?;
        }
        limits::non_negative_finite("layer_norm_epsilon", self.layer_norm_epsilon).map_err(&wrap)?;
        for (field, p) in
            [("resid_pdrop", self.resid_pdrop), ("embd_pdrop", self.embd_pdrop), ("attn_pdrop", self.attn_pdrop)]
        {
            limits::probability(field, p as f64).map_err(&wrap)?;
        }
        if dense_weights {
            let n = self.parameter_count();
            limits::check_memory(
                &format!(
                    "n_layer = {}, n_embd = {}, n_inner = {}, vocab_size = {} ({:.3e} f32 parameters)",
                    self.n_layer, self.n_embd, self.n_inner, self.vocab_size, n as f64
                ),
                n.saturating_mul(F32_BYTES),
            )
            .map_err(&wrap)?;
        }
        Ok(())
    }
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
    pub hidden_act: Option<String>,
    // gpt2
    pub n_positions: Option<usize>,
    pub n_embd: Option<usize>,
    pub n_layer: Option<usize>,
    pub n_head: Option<usize>,
    pub n_inner: Option<usize>,
    pub layer_norm_epsilon: Option<f64>,
    pub activation_function: Option<String>,
    pub resid_pdrop: Option<f32>,
    pub embd_pdrop: Option<f32>,
    pub attn_pdrop: Option<f32>,
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
        let cfg = LlamaConfig {
            vocab_size: need(self.vocab_size, "vocab_size", source)?,
            hidden_size: hidden,
            intermediate_size: need(self.intermediate_size, "intermediate_size", source)?,
            num_layers: need(self.num_hidden_layers, "num_hidden_layers", source)?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim: self.head_dim.unwrap_or(hidden / heads),
            // HF LlamaConfig's default, LLaMA 1's value (its params.json: norm_eps 1e-6). Llama 2
            // and SmolLM2 write 1e-5 in their config.json, so the default only reaches old files.
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            // HF LlamaConfig's default: RoFormer's base 10000 (Llama 3 writes 500000).
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            rope_scaling: parse_rope_scaling(self.rope_scaling.as_ref(), source)?,
            // HF LlamaConfig's default, LLaMA 1's training context.
            max_position_embeddings: self.max_position_embeddings.unwrap_or(2048),
            // HF PretrainedConfig's default is tied (true), but LlamaConfig overrides it to false:
            // Llama 2/3 have a separate head; SmolLM writes true.
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            // Only Qwen2 has q/k/v biases (Qwen2Config has no such field; they are always there).
            attention_bias: self.attention_bias.unwrap_or(is_qwen2),
            // HF LlamaConfig's default.
            hidden_act: Activation::from_hf(self.hidden_act.as_deref().unwrap_or("silu"), "hidden_act", source)?,
        };
        cfg.validate(source, true)?;
        Ok(cfg)
    }

    pub fn gpt2(&self, source: &str) -> Result<Gpt2Config> {
        let n_embd = need(self.n_embd, "n_embd", source)?;
        let n_head = need(self.n_head, "n_head", source)?;
        check_gpt2_heads(n_embd, n_head, source)?;
        // HF GPT2Config's defaults throughout: those of the released GPT-2 checkpoints.
        let cfg = Gpt2Config {
            vocab_size: need(self.vocab_size, "vocab_size", source)?,
            n_positions: self.n_positions.unwrap_or(1024),
            n_embd,
            n_layer: need(self.n_layer, "n_layer", source)?,
            n_head,
            // "None sets it to 4 times n_embd" (GPT2Config).
            n_inner: self.n_inner.unwrap_or(n_embd.saturating_mul(4)),
            // torch.nn.LayerNorm's default, which GPT-2 (TF) also used.
            layer_norm_epsilon: self.layer_norm_epsilon.unwrap_or(1e-5),
            activation: Activation::from_hf(
                self.activation_function.as_deref().unwrap_or("gelu_new"),
                "activation_function",
                source,
            )?,
            // Dropout only acts in training mode; 0.1 is HF's default for all three.
            resid_pdrop: self.resid_pdrop.unwrap_or(0.1),
            embd_pdrop: self.embd_pdrop.unwrap_or(0.1),
            attn_pdrop: self.attn_pdrop.unwrap_or(0.1),
        };
        cfg.validate(source, true)?;
        Ok(cfg)
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
            "{source}: rope_scaling type {} is not supported (supported: linear, llama3)",
            ingot_core::text::quoted(other)
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
                    "{source}: rope scaling {} is not supported (supported: linear)",
                    ingot_core::text::quoted(other)
                )))
            }
        };
        let cfg = LlamaConfig {
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
            // llama.cpp requires this key for llama-family files; 1e-5 (Llama 2's and SmolLM2's
            // value, and what llama.cpp's converter writes for them) only covers files without it.
            rms_norm_eps: self.opt_f64("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
            // llama.cpp's default base when rope.freq_base is absent.
            rope_theta: self.opt_f64("rope.freq_base")?.unwrap_or(10_000.0),
            rope_scaling: scaling,
            max_position_embeddings: self.usize("context_length")?,
            tie_word_embeddings: self.file.tensor_info("output.weight").is_none(),
            attention_bias: self.file.tensor_info("blk.0.attn_q.bias").is_some(),
            // GGUF has no activation key: llama.cpp's llama graph is SwiGLU with silu.
            hidden_act: Activation::Silu,
        };
        cfg.validate(&source, false)?;
        Ok(cfg)
    }

    pub fn gpt2(&self) -> Result<Gpt2Config> {
        let source = self.file.path().display().to_string();
        let n_embd = self.usize("embedding_length")?;
        let n_head = self.usize("attention.head_count")?;
        check_gpt2_heads(n_embd, n_head, &source)?;
        let cfg = Gpt2Config {
            vocab_size: self.vocab_size()?,
            n_positions: self.usize("context_length")?,
            n_embd,
            n_layer: self.usize("block_count")?,
            n_head,
            n_inner: self.opt_usize("feed_forward_length")?.unwrap_or(n_embd.saturating_mul(4)),
            // GPT-2's value, as for HF files.
            layer_norm_epsilon: self.opt_f64("attention.layer_norm_epsilon")?.unwrap_or(1e-5),
            // llama.cpp's gpt2 graph uses the tanh GELU.
            activation: Activation::GeluTanh,
            // GGUF files are for inference: no dropout.
            resid_pdrop: 0.0,
            embd_pdrop: 0.0,
            attn_pdrop: 0.0,
        };
        cfg.validate(&source, false)?;
        Ok(cfg)
    }
}
