//! Transformer architectures, one file per family, and loading them from a GGUF file or an HF
//! checkpoint folder (config.json + safetensors).
//!
//! Models compute logits only; sampling and generation live in `ingot-generate`, training in
//! `ingot-train`. Errors are `ingot_core::Error`.

pub mod adapter;
pub mod config;
pub mod export;
pub mod gpt2;
pub mod heads;
pub mod llama;
pub mod presets;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use ingot_core::gguf::GgufFile;
use ingot_core::{limits, CandleContext, Error, Result};
use ingot_nn::{KvCache, Weights};

pub use config::{Activation, Gpt2Config, HfConfig, LlamaConfig};
pub use gpt2::Gpt2;
pub use llama::{DecodeState, FastDecoder, Llama};

const SUPPORTED: &str = "llama (SmolLM, Llama 2/3), mistral, qwen2, gpt2";

/// The keys and values a layer reads and extends.
pub enum Kv<'a, 'b> {
    /// No cache: attention over the new positions only.
    None,
    /// One cache for the whole batch (every row at the same position).
    One(&'a mut KvCache),
    /// Several sequences side by side in one row (batch 1): `lens[i]` new tokens continuing
    /// `caches[i]`, each at its own length. Decoding many generations is one token each;
    /// prefilling many prompts is each prompt's tokens.
    Segments { caches: &'a mut [&'b mut KvCache], lens: &'a [usize] },
}

/// One of Ingot's architectures.
pub enum Model {
    Llama(Llama),
    Gpt2(Gpt2),
}

/// Per-layer key/value caches for one sequence batch.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    layers: Vec<KvCache>,
}

impl Cache {
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![KvCache::new(); num_layers] }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, KvCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(KvCache::reset);
    }

    /// Turn a batch-1 cache into `n` identical rows (continuations of one prefix, run as a batch).
    pub fn repeat_batch(&mut self, n: usize) -> Result<()> {
        for l in &mut self.layers {
            l.repeat_batch(n).context(|| "repeating the KV cache over a batch".into())?;
        }
        Ok(())
    }

    /// A private copy: `clone` shares the buffers, which appending writes in place, so two
    /// sequences continuing one cloned prefix would overwrite each other's positions.
    pub fn fork(&self) -> Result<Self> {
        let mut c = self.clone();
        c.repeat_batch(1)?;
        Ok(c)
    }

    /// Keep only the batch rows `rows`, in that order.
    pub fn select_batch(&mut self, rows: &[u32]) -> Result<()> {
        let Some(device) = self.layers.iter().find_map(KvCache::device) else { return Ok(()) };
        let ids = Tensor::new(rows, &device).context(|| "row ids".into())?;
        for l in &mut self.layers {
            l.select_batch(&ids).context(|| "selecting KV cache rows".into())?;
        }
        Ok(())
    }

    /// Layer `i`'s keys and values.
    pub fn layer(&self, i: usize) -> Option<&KvCache> {
        self.layers.get(i)
    }

    pub fn layer_mut(&mut self, i: usize) -> Option<&mut KvCache> {
        self.layers.get_mut(i)
    }

    /// Keep the first `len` positions (reuse of a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.layers.iter_mut().for_each(|l| l.truncate(len));
    }
}

impl Model {
    /// The candle-free single-sequence decode loop, where this model has one
    /// ([`Llama::decode_loop`]).
    pub fn decode_loop(&self) -> Option<&FastDecoder> {
        match self {
            Model::Llama(l) => l.decode_loop(),
            Model::Gpt2(_) => None,
        }
    }

    pub fn architecture(&self) -> &'static str {
        match self {
            Model::Llama(_) => "llama",
            Model::Gpt2(_) => "gpt2",
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Model::Llama(m) => m.config().vocab_size,
            Model::Gpt2(m) => m.config().vocab_size,
        }
    }

    /// Width of the hidden states (what a head on them takes).
    pub fn hidden_size(&self) -> usize {
        match self {
            Model::Llama(m) => m.config().hidden_size,
            Model::Gpt2(m) => m.config().n_embd,
        }
    }

    /// The longest sequence (prompt + generated tokens) the model accepts.
    pub fn context_length(&self) -> usize {
        match self {
            Model::Llama(m) => m.max_positions(),
            Model::Gpt2(m) => m.max_positions(),
        }
    }

    pub fn new_cache(&self) -> Cache {
        Cache::new(match self {
            Model::Llama(m) => m.num_layers(),
            Model::Gpt2(m) => m.num_layers(),
        })
    }

    fn check_fits(&self, ids: &Tensor, past: usize, cached: bool, packed: bool) -> Result<()> {
        let (b, t) = ids.dims2().context(|| "token ids must be (batch, positions)".into())?;
        let ctx = self.context_length();
        if t == 0 {
            return Err(Error::Input("no tokens to run the model on".into()));
        }
        // Packed rows restart their positions per example, so only their positions must fit.
        if past + t > ctx && !packed {
            return Err(Error::Input(format!(
                "sequence of {} tokens ({past} cached + {t} new) exceeds the model's context length of {ctx}",
                past + t
            )));
        }
        // An id past the embedding table would read another row's memory (quantized tables) or
        // fail deep in candle; it means the tokenizer does not belong to this model.
        let max_id = ids
            .flatten_all()
            .and_then(|i| i.to_dtype(DType::F64))
            .and_then(|i| i.max(0))
            .and_then(|m| m.to_scalar::<f64>())
            .context(|| "reading token ids".into())?;
        let vocab = self.vocab_size();
        if max_id < 0.0 || max_id >= vocab as f64 {
            return Err(Error::Input(format!(
                "token id {max_id} is outside the model's vocabulary of {vocab} (ids 0 to {}); is the tokenizer this model's?",
                vocab - 1
            )));
        }
        // The two allocations that grow with the sequence: the KV cache (doubling buffers, f32)
        // and one layer's attention scores (B, H, T, S) in f32.
        let (layers, heads) = match self {
            Model::Llama(m) => (m.num_layers(), m.num_heads()),
            Model::Gpt2(m) => (m.num_layers(), m.num_heads()),
        };
        let (kv_heads, head_dim) = match self {
            Model::Llama(m) => m.kv_shape(),
            Model::Gpt2(m) => m.kv_shape(),
        };
        let s = past + t;
        let scores = limits::product(&[b, heads, t, s, 4]);
        let cache = if cached {
            limits::product(&[layers, 2, b, kv_heads, head_dim, s.next_power_of_two().max(64), 4])
        } else {
            0
        };
        limits::check_memory(&format!("a batch of {b} x {t} tokens after {past} cached"), cache + scores)?;
        Ok(())
    }

    /// Refuse logits holding NaN or infinity, naming the first stage (embeddings, layer N) that
    /// produced one when the pass can be rerun (no earlier cached positions). Training skips
    /// this: its loss check names the step instead.
    fn check_finite(&self, logits: &Tensor, ids: &Tensor, past: usize) -> Result<()> {
        if logits.track_op() || is_finite(logits)? {
            return Ok(());
        }
        let stage = if past == 0 { self.first_non_finite_stage(ids)? } else { None };
        let at = match stage {
            Some(stage) => format!("first in {stage}"),
            None if past > 0 => format!("after {past} cached positions"),
            None => "first in the output head".to_string(),
        };
        Err(Error::Model(format!(
            "the {} model's logits hold NaN or infinity ({at}); its weights or norm settings are broken",
            self.architecture()
        )))
    }

    /// Rerun `ids` without a cache and name the first stage whose output is not finite.
    fn first_non_finite_stage(&self, ids: &Tensor) -> Result<Option<String>> {
        let mut found: Option<String> = None;
        let mut probe = |layer: Option<usize>, x: &Tensor| -> candle_core::Result<()> {
            if found.is_none() && !x.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite() {
                found = Some(match layer {
                    None => "the embeddings".into(),
                    Some(i) => format!("layer {i}"),
                });
            }
            Ok(())
        };
        let hidden = match self {
            Model::Llama(m) => m.forward_probed(ids, None, &mut probe),
            Model::Gpt2(m) => m.forward_probed(ids, None, &mut probe),
        }
        .context(|| "rerunning the forward pass to locate a NaN".into())?;
        if found.is_none() && !is_finite(&hidden)? {
            found = Some("the final norm".into());
        }
        Ok(found)
    }

    /// Dropout switch for training; None for architectures without dropout (llama).
    pub fn dropout_state(&self) -> Option<&std::sync::Arc<ingot_nn::dropout::DropoutState>> {
        match self {
            Model::Llama(_) => None,
            Model::Gpt2(m) => Some(m.dropout_state()),
        }
    }

    /// Every dropout switch the trainer must turn on and off: the model's own and its adapters'.
    pub fn dropout_states(&self) -> Vec<&std::sync::Arc<ingot_nn::dropout::DropoutState>> {
        let mut states: Vec<_> = self.dropout_state().into_iter().collect();
        states.extend(self.adapters().map(|a| a.dropout_state()));
        states
    }

    /// Activation checkpointing for training (see [`ingot_nn::checkpoint`]): each block keeps only
    /// its input and recomputes the rest in backward. `vars` holds every trainable variable; the
    /// gradients the recomputations give them are collected by [`Self::take_checkpoint_grads`].
    pub fn enable_checkpointing(&mut self, vars: candle_nn::VarMap) {
        let dropout = self.dropout_states().into_iter().cloned().collect();
        let c = Some(ingot_nn::Checkpointing::new(vars, dropout));
        match self {
            Model::Llama(m) => m.set_checkpointing(c),
            Model::Gpt2(m) => m.set_checkpointing(c),
        }
    }

    /// The parameter gradients produced inside checkpointed blocks since the last call, as
    /// (variable, gradient): add them to the backward pass's gradients. Empty without
    /// checkpointing.
    pub fn take_checkpoint_grads(&self) -> Vec<(Tensor, Tensor)> {
        let c = match self {
            Model::Llama(m) => m.checkpointing(),
            Model::Gpt2(m) => m.checkpointing(),
        };
        c.map(|c| c.take_grads()).unwrap_or_default()
    }

    /// The order of this model's q/k projection rows (for saving adapters and exporting).
    pub fn row_order(&self) -> adapter::RowOrder {
        match self {
            Model::Llama(m) if m.rope_layout() == ingot_nn::RopeLayout::Interleaved => {
                adapter::RowOrder::Interleaved { heads: m.config().num_heads, kv_heads: m.config().num_kv_heads }
            }
            _ => adapter::RowOrder::Hf,
        }
    }

    /// The LoRA adapters on this model, if any.
    pub fn adapters(&self) -> Option<&Arc<ingot_nn::Adapters>> {
        match self {
            Model::Llama(m) => m.adapters(),
            Model::Gpt2(_) => None,
        }
    }

    /// Every weight under its HF key as dense f32, adapters merged when `merge` (see
    /// [`Llama::named_weights`]). Llama family only for now.
    pub fn named_weights(&self, merge: bool) -> Result<Vec<(String, Tensor)>> {
        match self {
            Model::Llama(m) => m.named_weights(merge).context(|| "collecting the model's weights".into()),
            Model::Gpt2(_) => Err(Error::Input(
                "exporting or merging GPT-2 models is not supported yet; use a llama-family model".into(),
            )),
        }
    }

    /// Packed rows → final hidden states (B, T, C): `positions` (B, T) restart at 0 for each
    /// example and `segments` (B·T, row-major) name the example of each token, so attention stays
    /// inside each example and the loss equals running the examples one by one.
    pub fn forward_hidden_packed(&self, ids: &Tensor, positions: &[u32], segments: &[u32]) -> Result<Tensor> {
        let (b, t) = ids.dims2().context(|| "token ids must be (batch, positions)".into())?;
        self.check_fits(ids, 0, false, true)?;
        if positions.len() != b * t || segments.len() != b * t {
            return Err(Error::Input(format!(
                "packed batch ({b}, {t}) needs {} positions and segment ids, got {} and {}",
                b * t,
                positions.len(),
                segments.len()
            )));
        }
        if let Some(&p) = positions.iter().find(|&&p| p as usize >= self.context_length()) {
            return Err(Error::Input(format!(
                "position {p} is past the model's context length of {}",
                self.context_length()
            )));
        }
        let device = ids.device();
        let pos = Tensor::from_slice(positions, (b, t), device).context(|| "position ids".into())?;
        let mask = ingot_nn::packed_mask(segments, b, t, device).context(|| "packed attention mask".into())?;
        match self {
            Model::Llama(m) => m.forward_hidden_packed(ids, &pos, &mask).context(|| "model forward pass".into()),
            Model::Gpt2(_) => Err(Error::Input(
                "packed sequences are implemented for the llama family; set data.pack = false for GPT-2".into(),
            )),
        }
    }

    /// ids (B, T) → final hidden states (B, T, C); appends to `cache` when given.
    pub fn forward_hidden(&self, ids: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        self.check_fits(ids, cache.as_ref().map_or(0, |c| c.len()), cache.is_some(), false)?;
        let layers = cache.map(|c| c.layers.as_mut_slice());
        match self {
            Model::Llama(m) => m.forward_hidden(ids, layers),
            Model::Gpt2(m) => m.forward_hidden(ids, layers),
        }
        .context(|| "model forward pass".into())
    }

    /// The output head's (V, C) weight when the head is a plain dense product (no bias, no
    /// enabled adapter), so that a loss may fuse it ([`ingot_kernels::head_cross_entropy`]).
    pub fn plain_head(&self) -> Option<Tensor> {
        match self {
            Model::Llama(m) => m.lm_head().plain_weight(),
            Model::Gpt2(m) => m.lm_head().plain_weight(),
        }
    }

    /// hidden (..., C) → logits (..., V)
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        match self {
            Model::Llama(m) => m.logits(hidden),
            Model::Gpt2(m) => m.logits(hidden),
        }
        .context(|| "output head".into())
    }

    /// ids (B, T) → logits (B, T, V) for every position.
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        let past = cache.as_ref().map_or(0, |c| c.len());
        let h = self.forward_hidden(ids, cache)?;
        let logits = self.logits(&h)?;
        self.check_finite(&logits, ids, past)?;
        Ok(logits)
    }

    /// One new token per row, `ids[r]` for the sequence in `caches[r]`, each row at its own
    /// position (its cache's length) → logits (B, V). How rows at different lengths decode as
    /// one batch: the weights are read once for all of them.
    pub fn forward_rows(&self, ids: &[u32], caches: &mut [&mut Cache]) -> Result<Tensor> {
        self.forward_segments(ids, &vec![1; ids.len()], caches)
    }

    /// Several sequences in one pass: `lens[i]` tokens of `ids` (back to back) continue
    /// `caches[i]`, each at its own length. Logits of each sequence's last new position (B, V).
    /// The linear layers run once over all the tokens (prefilling many prompts reads and expands
    /// the weights once); attention runs sequence by sequence.
    pub fn forward_segments(&self, ids: &[u32], lens: &[usize], caches: &mut [&mut Cache]) -> Result<Tensor> {
        if lens.len() != caches.len() || lens.is_empty() || lens.contains(&0) || lens.iter().sum::<usize>() != ids.len()
        {
            return Err(Error::Input(format!(
                "{} new tokens in segments of {lens:?} for {} caches",
                ids.len(),
                caches.len()
            )));
        }
        let device = caches.iter().flat_map(|c| c.layers.iter()).find_map(KvCache::device).unwrap_or(Device::Cpu);
        let x = Tensor::from_slice(ids, (1, ids.len()), &device).context(|| "segment token ids".into())?;
        let mut start = 0;
        for (c, &len) in caches.iter().zip(lens) {
            self.check_fits(&x.narrow(1, start, len).context(|| "segment ids".into())?, c.len(), true, false)?;
            start += len;
        }
        let past = caches.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
        let mut layers: Vec<&mut [KvCache]> = caches.iter_mut().map(|c| c.layers.as_mut_slice()).collect();
        let h = match self {
            Model::Llama(m) => m.forward_segments(&x, lens, &mut layers),
            Model::Gpt2(m) => m.forward_segments(&x, lens, &mut layers),
        }
        .context(|| "segment-wise forward pass".into())?;
        // Each segment's last position, (1, B, C).
        let last: Vec<u32> = lens
            .iter()
            .scan(0, |end, &len| {
                *end += len;
                Some(*end as u32 - 1)
            })
            .collect();
        let last = Tensor::from_vec(last, lens.len(), &device).context(|| "segment ends".into())?;
        let h = h.index_select(&last, 1).context(|| "selecting each segment's last position".into())?;
        let logits = self.logits(&h)?.squeeze(0).context(|| "squeezing logits".into())?;
        self.check_finite(&logits, &x, past)?;
        Ok(logits)
    }

    /// ids (B, T) → logits of the last position only (B, V): what generation needs, and it skips
    /// the output head (the largest matmul for small models) on every other prompt position.
    pub fn forward_last(&self, ids: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        let past = cache.as_ref().map_or(0, |c| c.len());
        let h = self.forward_hidden(ids, cache)?;
        let last = llama::last_position(&h).context(|| "selecting the last position".into())?;
        let logits = self.logits(&last)?.squeeze(1).context(|| "squeezing logits".into())?;
        self.check_finite(&logits, ids, past)?;
        Ok(logits)
    }
}

/// True when every element is finite: their sum is (a finite sum of logit-sized values cannot
/// overflow f32), and one NaN or infinity makes it NaN or infinite. No copy of `t` is made.
fn is_finite(t: &Tensor) -> Result<bool> {
    let sum = t
        .sum_all()
        .and_then(|s| s.to_dtype(DType::F64))
        .and_then(|s| s.to_scalar::<f64>())
        .context(|| "checking logits for NaN".into())?;
    Ok(sum.is_finite())
}

/// Where a model came from and what it is, for `ingot inspect`.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// The GGUF file, or the checkpoint folder.
    pub path: PathBuf,
    pub gguf: Option<Arc<GgufFile>>,
    /// config.json of a checkpoint folder.
    pub hf_config: Option<PathBuf>,
}

/// How a model's weights are held when it loads, and the adapters put on it.
#[derive(Clone, Default)]
pub struct LoadOptions {
    pub hold: Hold,
    /// LoRA adapters, fresh (to train) or loaded ([`adapter::load`]).
    pub adapters: Option<Arc<ingot_nn::Adapters>>,
}

/// How weights read from a file are held.
#[derive(Clone, Default)]
pub enum Hold {
    /// As stored: GGUF weights stay quantized (inference; QLoRA's frozen base).
    #[default]
    AsStored,
    /// Dense f32, frozen (LoRA over an f32 base).
    Dense,
    /// Dense f32 trainable variables in this map, under HF keys (full fine-tuning).
    Trainable(candle_nn::VarMap),
}

impl LoadOptions {
    fn apply(&self, mut w: Weights) -> Weights {
        w = match &self.hold {
            Hold::AsStored => w,
            Hold::Dense => w.dequantized(),
            Hold::Trainable(vars) => w.trainable(vars.clone()),
        };
        match &self.adapters {
            Some(a) => w.with_adapters(a.clone()),
            None => w,
        }
    }
}

/// Load a model from a GGUF file or an HF-style checkpoint folder (config.json + *.safetensors).
pub fn load(path: &Path, device: &Device) -> Result<(Model, ModelFiles)> {
    load_with(path, device, &LoadOptions::default())
}

/// [`load`], holding the weights as `opts` says and attaching its adapters.
pub fn load_with(path: &Path, device: &Device, opts: &LoadOptions) -> Result<(Model, ModelFiles)> {
    if !path.exists() {
        return Err(Error::NotFound {
            what: "model".into(),
            path: path.to_path_buf(),
            hint: " (pass a .gguf file or a checkpoint folder with config.json and *.safetensors)".into(),
        });
    }
    if path.is_dir() {
        return load_checkpoint(path, device, opts);
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        let dir = path.parent().unwrap_or(Path::new("."));
        return load_checkpoint(dir, device, opts);
    }
    let file = Arc::new(GgufFile::open(path)?);
    let model = load_gguf_with(file.clone(), device, opts)?;
    Ok((model, ModelFiles { path: path.to_path_buf(), gguf: Some(file), hf_config: None }))
}

/// Build the model a GGUF file describes.
pub fn load_gguf(file: Arc<GgufFile>, device: &Device) -> Result<Model> {
    load_gguf_with(file, device, &LoadOptions::default())
}

fn load_gguf_with(file: Arc<GgufFile>, device: &Device, opts: &LoadOptions) -> Result<Model> {
    let keys = config::GgufKeys::new(&file)?;
    match keys.arch.as_str() {
        "llama" | "mistral" | "qwen2" => {
            let cfg = keys.llama()?;
            let w = opts.apply(Weights::from_gguf(file.clone(), llama::gguf_name, device));
            Ok(Model::Llama(Llama::load(&w, &cfg)?))
        }
        "gpt2" => {
            let cfg = keys.gpt2()?;
            let w = opts.apply(Weights::from_gguf(file.clone(), gpt2::gguf_name, device));
            Ok(Model::Gpt2(Gpt2::load(&w, &cfg)?))
        }
        other => Err(Error::UnknownArchitecture {
            arch: other.to_string(),
            source_name: file.path().display().to_string(),
            supported: SUPPORTED,
        }),
    }
}

/// Read and parse `config.json`.
pub fn read_hf_config(path: &Path) -> Result<HfConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: "config.json".into(),
            path: path.to_path_buf(),
            hint: " (a checkpoint folder needs config.json beside its safetensors)".into(),
        },
        _ => Error::Io { op: "open", path: path.to_path_buf(), source },
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.to_path_buf(), cause: source })
}

/// The safetensors files of a checkpoint folder, in name order.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { op: "list", path: dir.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        // Weights only: a training checkpoint also holds optimizer.safetensors.
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("model")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::NotFound {
            what: "safetensors weights".into(),
            path: dir.to_path_buf(),
            hint: " (expected model.safetensors or model-*.safetensors)".into(),
        });
    }
    Ok(files)
}

/// Build a model from weights that follow the HF key tree, for the architecture `cfg` names.
pub fn from_hf_config(cfg: &HfConfig, w: &Weights, source: &str) -> Result<Model> {
    let arch = cfg.model_type();
    match arch.as_str() {
        "llama" | "mistral" | "qwen2" => Ok(Model::Llama(Llama::load(w, &cfg.llama(source)?)?)),
        "gpt2" => Ok(Model::Gpt2(Gpt2::load(w, &cfg.gpt2(source)?)?)),
        _ => Err(Error::UnknownArchitecture {
            arch: if arch.is_empty() { "(no model_type)".into() } else { arch },
            source_name: source.to_string(),
            supported: SUPPORTED,
        }),
    }
}

fn load_checkpoint(dir: &Path, device: &Device, opts: &LoadOptions) -> Result<(Model, ModelFiles)> {
    let config_path = dir.join("config.json");
    let cfg = read_hf_config(&config_path)?;
    // A full fine-tune's checkpoint of a GGUF llama keeps llama.cpp's q/k row order: as an HF
    // folder it would compute something else.
    let raw: serde_json::Value =
        std::fs::read_to_string(&config_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if raw.get(adapter::ROW_ORDER_KEY).is_some() {
        return Err(Error::Model(format!(
            "{}: this training checkpoint keeps q/k rows in llama.cpp's order (a full fine-tune of a GGUF file); resume training from it, or load the model exported at the end of training (<out>/model) or written by `ingot merge`",
            dir.display()
        )));
    }
    let files = safetensors_files(dir)?;
    let w = opts.apply(Weights::from_safetensors(&files, device)?);
    let model = from_hf_config(&cfg, &w, &config_path.display().to_string())?;
    Ok((model, ModelFiles { path: dir.to_path_buf(), gguf: None, hf_config: Some(config_path) }))
}
