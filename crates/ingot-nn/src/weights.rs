//! Where a model's weights come from: a GGUF file, a safetensors checkpoint, or a training
//! `VarMap` (fresh, trainable variables).
//!
//! Model code walks one key tree for all three, the Hugging Face one
//! (`model.layers.3.self_attn.q_proj.weight`), by `pp()`-ing prefixes as candle's `VarBuilder`
//! does. For GGUF, a per-architecture [`GgufNames`] table maps each HF key to the llama.cpp name
//! (`blk.3.attn_q.weight`), so the same model file loads quantized or dense weights.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use ingot_core::gguf::GgufFile;
use ingot_core::{CandleContext, Error, Result};

use crate::lora::Adapters;

/// Maps a full HF-style key to the GGUF tensor name, or `None` when the key has no GGUF form.
pub type GgufNames = fn(&str) -> Option<String>;

#[derive(Clone)]
enum Source {
    Gguf {
        file: Arc<GgufFile>,
        names: GgufNames,
    },
    /// safetensors (memory-mapped) or a VarMap: anything candle's VarBuilder reads.
    Vars(VarBuilder<'static>),
}

/// How weights read from a file are held.
#[derive(Clone)]
enum Hold {
    /// As stored: quantized GGUF tensors stay quantized (inference, QLoRA's frozen base).
    AsStored,
    /// Expanded to dense f32, frozen (LoRA over an f32 base).
    Dense,
    /// Expanded to dense f32 and registered in this map as trainable variables (full fine-tuning).
    Trainable(VarMap),
}

/// A cursor into a model's weights at some key prefix.
#[derive(Clone)]
pub struct Weights {
    source: Source,
    prefix: Vec<String>,
    device: Device,
    /// Refuse weights holding NaN or infinity (files; a training VarMap is made here).
    check_finite: bool,
    hold: Hold,
    /// LoRA adapters to attach to the linear layers they target.
    adapters: Option<Arc<Adapters>>,
}

/// A weight as stored: dense (trainable when it comes from a VarMap) or quantized (inference only).
#[derive(Clone, Debug)]
pub enum Stored {
    Dense(Tensor),
    Quantized(Arc<QTensor>),
}

impl Weights {
    pub fn from_gguf(file: Arc<GgufFile>, names: GgufNames, device: &Device) -> Self {
        Self {
            source: Source::Gguf { file, names },
            prefix: Vec::new(),
            device: device.clone(),
            check_finite: true,
            hold: Hold::AsStored,
            adapters: None,
        }
    }

    /// Expand every weight to dense f32, frozen: quantized GGUF tensors are dequantized once.
    pub fn dequantized(mut self) -> Self {
        self.hold = Hold::Dense;
        self
    }

    /// Expand every weight to dense f32 and register it in `vars` under its HF key, trainable
    /// (full fine-tuning of a GGUF or safetensors model). A tied head shares its embedding's
    /// variable.
    pub fn trainable(mut self, vars: VarMap) -> Self {
        self.hold = Hold::Trainable(vars);
        self
    }

    /// Attach `adapters` to the linear layers they target, as the model loads.
    pub fn with_adapters(mut self, adapters: Arc<Adapters>) -> Self {
        self.adapters = Some(adapters);
        self
    }

    pub fn adapters(&self) -> Option<&Arc<Adapters>> {
        self.adapters.as_ref()
    }

    /// The HF key of the module at this prefix (`model.layers.0.self_attn.q_proj`).
    pub fn module_key(&self) -> String {
        self.prefix.join(".")
    }

    /// Apply the holding rule to a weight just read from a file.
    fn hold_weight(&self, stored: Stored, key: &str) -> Result<Stored> {
        let dense = |stored: Stored| -> Result<Tensor> {
            match stored {
                Stored::Dense(t) => Ok(t),
                Stored::Quantized(q) => q.dequantize(&self.device).context(|| format!("dequantizing '{key}'")),
            }
        };
        match &self.hold {
            Hold::AsStored => Ok(stored),
            Hold::Dense => Ok(Stored::Dense(dense(stored)?)),
            Hold::Trainable(vars) => {
                let t = dense(stored)?.to_dtype(DType::F32).context(|| format!("reading '{key}'"))?;
                let var = Var::from_tensor(&t).context(|| format!("making '{key}' trainable"))?;
                let mut data = vars.data().lock().map_err(|_| Error::Input("variable map lock poisoned".into()))?;
                Ok(Stored::Dense(data.entry(key.to_string()).or_insert(var).as_tensor().clone()))
            }
        }
    }

    /// Weights read through a candle `VarBuilder` (safetensors files or a training `VarMap`).
    pub fn from_var_builder(vb: VarBuilder<'static>) -> Self {
        let device = vb.device().clone();
        Self {
            source: Source::Vars(vb),
            prefix: Vec::new(),
            device,
            check_finite: false,
            hold: Hold::AsStored,
            adapters: None,
        }
    }

    /// Memory-map safetensors files (f32 compute; other stored dtypes are converted).
    pub fn from_safetensors(files: &[std::path::PathBuf], device: &Device) -> Result<Self> {
        // SAFETY: the files are mapped read-only; Ingot writes checkpoints to a temporary file and
        // renames it into place, so a mapped file is never modified underneath us.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, DType::F32, device) }
            .context(|| format!("opening safetensors {files:?}"))?;
        Ok(Self { check_finite: true, ..Self::from_var_builder(vb) })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// True when this source holds quantized tensors (a GGUF file).
    pub fn is_gguf(&self) -> bool {
        matches!(self.source, Source::Gguf { .. })
    }

    /// The GGUF file behind these weights, if any.
    pub fn gguf(&self) -> Option<&Arc<GgufFile>> {
        match &self.source {
            Source::Gguf { file, .. } => Some(file),
            Source::Vars(_) => None,
        }
    }

    /// Descend into a sub-module's key prefix.
    pub fn pp(&self, s: impl ToString) -> Self {
        let mut w = self.clone();
        w.prefix.push(s.to_string());
        w
    }

    fn key(&self, name: &str) -> String {
        let mut parts = self.prefix.clone();
        parts.push(name.to_string());
        parts.join(".")
    }

    fn gguf_name(&self, name: &str) -> Result<(Arc<GgufFile>, String)> {
        let Source::Gguf { file, names } = &self.source else { unreachable!("called on a GGUF source") };
        let key = self.key(name);
        let mapped = names(&key).ok_or_else(|| Error::Model(format!("no GGUF tensor name for weight '{key}'")))?;
        Ok((file.clone(), mapped))
    }

    /// Whether the weight `name` exists under the current prefix.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Gguf { .. } => match self.gguf_name(name) {
                Ok((file, mapped)) => file.tensor_info(&mapped).is_some(),
                Err(_) => false,
            },
            Source::Vars(vb) => vb.contains_tensor(&self.key(name)),
        }
    }

    /// A weight in its stored form, checked to have `shape` (candle order).
    ///
    /// From a VarMap a missing weight is created with `init`; from files it is an error.
    pub fn get_stored(&self, shape: &[usize], name: &str, init: Init) -> Result<Stored> {
        match &self.source {
            Source::Gguf { .. } => {
                let (file, mapped) = self.gguf_name(name)?;
                let info = file.tensor_info(&mapped).ok_or_else(|| Error::Missing {
                    path: file.path().to_path_buf(),
                    what: "tensor",
                    key: format!("{mapped} (for {})", self.key(name)),
                })?;
                // GGUF stores 1-d norm vectors as [n] but some writers keep a leading 1.
                let got: Vec<usize> =
                    info.shape.iter().copied().skip_while(|&d| d == 1 && info.shape.len() > shape.len()).collect();
                if got != shape {
                    return Err(Error::Model(format!(
                        "{}: tensor '{mapped}' has shape {:?}, the model config implies {shape:?}",
                        file.path().display(),
                        info.shape
                    )));
                }
                if let Some(i) = ingot_core::limits::first_non_finite(info.ggml_type, file.tensor_bytes(info)) {
                    let at = if info.ggml_type.is_float() {
                        format!("element {i}")
                    } else {
                        format!("the scale of block {i}")
                    };
                    return Err(Error::Model(format!(
                        "{}: tensor '{mapped}' holds NaN or infinity ({at}); the file is corrupt",
                        file.path().display()
                    )));
                }
                let q = file.qtensor(&mapped, &self.device)?;
                let stored = if info.ggml_type.is_float() {
                    let t = q.dequantize(&self.device).context(|| format!("dequantizing '{mapped}'"))?;
                    Stored::Dense(t.reshape(shape).context(|| format!("reshaping '{mapped}'"))?)
                } else {
                    Stored::Quantized(Arc::new(q))
                };
                self.hold_weight(stored, &self.key(name))
            }
            Source::Vars(vb) => {
                let key = self.key(name);
                // With RUST_BACKTRACE set candle wraps its errors in WithBacktrace: unwrap first, so
                // the message does not depend on the environment.
                let t = vb.get_with_hints(shape, &key, init);
                let t = t.map_err(ingot_core::error::strip_backtrace).map_err(|e| match e {
                    candle_core::Error::CannotFindTensor { .. } => {
                        Error::Model(format!("checkpoint has no weight '{key}'"))
                    }
                    candle_core::Error::UnexpectedShape { msg, .. } => {
                        Error::Model(format!("weight '{key}': {msg} (expected {shape:?})"))
                    }
                    other => Error::Candle { context: format!("loading weight '{key}'"), source: other },
                })?;
                if self.check_finite {
                    // A finite sum of weight-sized values cannot overflow f32; one NaN or infinity
                    // makes it non-finite. Reads the tensor once, copies nothing.
                    let sum = t
                        .sum_all()
                        .and_then(|s| s.to_dtype(DType::F64))
                        .and_then(|s| s.to_scalar::<f64>())
                        .context(|| format!("checking weight '{key}'"))?;
                    if !sum.is_finite() {
                        return Err(Error::Model(format!(
                            "checkpoint weight '{key}' holds NaN or infinity; the file is corrupt"
                        )));
                    }
                }
                self.hold_weight(Stored::Dense(t), &key)
            }
        }
    }

    /// A dense f32 weight (quantized storage is dequantized).
    pub fn get(&self, shape: &[usize], name: &str, init: Init) -> Result<Tensor> {
        match self.get_stored(shape, name, init)? {
            Stored::Dense(t) => Ok(t),
            Stored::Quantized(q) => q.dequantize(&self.device).context(|| format!("dequantizing '{}'", self.key(name))),
        }
    }
}

/// GPT-2 style initialisation: N(0, std).
pub fn normal(std: f64) -> Init {
    Init::Randn { mean: 0.0, stdev: std }
}
