//! Linear layers whose weight is dense (trainable) or quantized (GGUF inference), and embeddings
//! that can share that weight with a tied output head.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use candle_nn::Init;
use ingot_core::{CandleContext, Result};
use ingot_kernels::{QFormat, QMatrix, Rows};

use crate::lora::Lora;
use crate::weights::{Stored, Weights};

#[derive(Clone, Debug)]
enum Kernel {
    /// `w` is (out, in), as nn.Linear stores it.
    Dense(Tensor),
    /// `w` is (in, out), as GPT-2's Conv1D stores it; kept as is so training updates the
    /// checkpoint's own tensor.
    DenseTransposed(Tensor),
    /// Q4_0 / Q4_1 / Q8_0 through Ingot's fused kernel (f32 activations).
    Fused(QMatrix),
    /// Other GGML formats (K-quants) through candle's quantized matmul.
    Quantized(QMatMul),
}

/// Pick the kernel for quantized weights: Ingot's fused one where it reads the format, candle's
/// otherwise. `INGOT_CANDLE_QMATMUL=1` forces candle's, for side-by-side measurements.
fn quantized_kernel(q: Arc<QTensor>) -> Result<Kernel> {
    let format = match q.dtype() {
        GgmlDType::Q4_0 => Some(QFormat::Q4_0),
        GgmlDType::Q4_1 => Some(QFormat::Q4_1),
        GgmlDType::Q8_0 => Some(QFormat::Q8_0),
        _ => None,
    };
    let force_candle = std::env::var_os("INGOT_CANDLE_QMATMUL").is_some_and(|v| v != "0");
    if let (Some(format), false) = (format, force_candle) {
        let (n, k) = q.shape().dims2().context(|| "a quantized linear weight must be 2-d".into())?;
        let bytes = q.data().context(|| "reading quantized weight bytes".into())?;
        let m = QMatrix::new(format, n, k, &bytes).context(|| "wrapping quantized weight".into())?;
        return Ok(Kernel::Fused(m));
    }
    Ok(Kernel::Quantized(QMatMul::from_arc(q).context(|| "building a quantized matmul".into())?))
}

/// y = x Wᵀ + b over the last dimension of x, plus a LoRA update when the layer has an adapter.
#[derive(Clone, Debug)]
pub struct Linear {
    kernel: Kernel,
    bias: Option<Tensor>,
    in_dim: usize,
    out_dim: usize,
    /// The module's HF key (`model.layers.0.self_attn.q_proj`); empty for tied heads.
    key: String,
    adapter: Option<Lora>,
}

/// The adapter `w`'s adapters give the module at `w`'s prefix, if it is a target.
fn adapter_for(w: &Weights, in_dim: usize, out_dim: usize) -> Result<Option<Lora>> {
    match w.adapters() {
        Some(a) => {
            let key = w.module_key();
            a.for_module(&key, in_dim, out_dim, key == "lm_head")
        }
        None => Ok(None),
    }
}

impl Linear {
    /// Load `weight` (out, in) and, if `bias`, `bias` (out) under `w`'s prefix.
    pub fn load(w: &Weights, in_dim: usize, out_dim: usize, bias: bool, init: Init) -> Result<Self> {
        let kernel = match w.get_stored(&[out_dim, in_dim], "weight", init)? {
            Stored::Dense(t) => Kernel::Dense(t),
            Stored::Quantized(q) => quantized_kernel(q)?,
        };
        let bias = if bias { Some(w.get(&[out_dim], "bias", Init::Const(0.0))?) } else { None };
        let adapter = adapter_for(w, in_dim, out_dim)?;
        Ok(Self { kernel, bias, in_dim, out_dim, key: w.module_key(), adapter })
    }

    /// GPT-2's Conv1D: HF checkpoints store (in, out); GGUF converters store (out, in).
    pub fn load_conv1d(w: &Weights, in_dim: usize, out_dim: usize, init: Init) -> Result<Self> {
        if w.is_gguf() {
            return Self::load(w, in_dim, out_dim, true, init);
        }
        let weight = w.get(&[in_dim, out_dim], "weight", init)?;
        let bias = Some(w.get(&[out_dim], "bias", Init::Const(0.0))?);
        let adapter = adapter_for(w, in_dim, out_dim)?;
        Ok(Self { kernel: Kernel::DenseTransposed(weight), bias, in_dim, out_dim, key: w.module_key(), adapter })
    }

    /// The module's HF key; empty for a head tied to the embedding.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn adapter(&self) -> Option<&Lora> {
        self.adapter.as_ref()
    }

    /// `<key>.weight` (merged when `merge`) and `<key>.bias`, as an exported model stores them.
    pub fn named_weights(&self, merge: bool) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut out = vec![(format!("{}.weight", self.key), self.merged_weight(merge)?)];
        if let Some(b) = &self.bias {
            out.push((format!("{}.bias", self.key), b.detach()));
        }
        Ok(out)
    }

    /// The weight (out, in) as dense f32 (quantized storage expanded), with the adapter's update
    /// added when `merge`: the weight a merged model stores.
    pub fn merged_weight(&self, merge: bool) -> candle_core::Result<Tensor> {
        let base = match &self.kernel {
            Kernel::Dense(w) => w.clone(),
            Kernel::DenseTransposed(w) => w.t()?.contiguous()?,
            Kernel::Fused(m) => Tensor::from_vec(m.dequantize(), m.shape(), &candle_core::Device::Cpu)?,
            Kernel::Quantized(QMatMul::QTensor(q)) => q.dequantize(&candle_core::Device::Cpu)?,
            Kernel::Quantized(QMatMul::Tensor(t)) | Kernel::Quantized(QMatMul::TensorF16(t)) => {
                t.to_dtype(candle_core::DType::F32)?
            }
        };
        match (&self.adapter, merge) {
            (Some(a), true) => base.detach() + a.delta_weight()?.detach(),
            _ => Ok(base.detach()),
        }
    }

    /// A linear layer over an existing weight (out, in), for tied heads.
    pub fn from_stored(weight: Stored) -> Result<Self> {
        let (out_dim, in_dim) = match &weight {
            Stored::Dense(t) => t.dims2(),
            Stored::Quantized(q) => q.shape().dims2(),
        }
        .context(|| "a linear weight must be 2-d".into())?;
        let kernel = match weight {
            Stored::Dense(t) => Kernel::Dense(t),
            Stored::Quantized(q) => quantized_kernel(q)?,
        };
        Ok(Self { kernel, bias: None, in_dim, out_dim, key: String::new(), adapter: None })
    }

    /// One layer computing `parts` side by side (outputs concatenated on the last dim), when all
    /// run on Ingot's fused quantized kernel with one format; None otherwise. Dense layers are
    /// left separate so each keeps its own trainable weight.
    pub fn concat_outputs(parts: &[&Linear]) -> Option<Linear> {
        let mats: Vec<&QMatrix> = parts
            .iter()
            .map(|l| match &l.kernel {
                Kernel::Fused(m) => Some(m),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let kernel = Kernel::Fused(QMatrix::concat_rows(&mats)?);
        let bias = match parts.iter().map(|l| l.bias.clone()).collect::<Option<Vec<Tensor>>>() {
            Some(bs) => Some(Tensor::cat(&bs, 0).ok()?),
            None if parts.iter().all(|l| l.bias.is_none()) => None,
            None => return None,
        };
        let out_dim = parts.iter().map(|l| l.out_dim).sum();
        Some(Self { kernel, bias, in_dim: parts[0].in_dim, out_dim, key: String::new(), adapter: None })
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// The dense weight as (out, in) if this layer is dense; None for quantized.
    pub fn dense_weight(&self) -> Option<Tensor> {
        match &self.kernel {
            Kernel::Dense(w) => Some(w.clone()),
            Kernel::DenseTransposed(w) => w.t().ok(),
            Kernel::Fused(_) | Kernel::Quantized(_) => None,
        }
    }

    /// The (out, in) weight when this layer is exactly x·Wᵀ, dense with no bias and no enabled
    /// adapter: what a fused kernel (the head's cross-entropy) may take in its place.
    pub fn plain_weight(&self) -> Option<Tensor> {
        if self.bias.is_some() || self.adapter.as_ref().is_some_and(|a| a.is_enabled()) {
            return None;
        }
        self.dense_weight()
    }

    /// The weight as the decode loop reads it ([`ingot_kernels::Rows`]), with the bias; None
    /// when the layer has an enabled adapter or a storage the loop has no kernel for (K-quants).
    /// Dense weights are copied (the loop keeps them next to the model's).
    pub fn decode_rows(&self) -> Option<(Rows, Option<Vec<f32>>)> {
        if self.adapter.as_ref().is_some_and(|a| a.is_enabled()) {
            return None;
        }
        let rows = match &self.kernel {
            Kernel::Fused(m) => Rows::Quant(m.clone()),
            Kernel::Dense(_) | Kernel::DenseTransposed(_) => {
                let w = self.dense_weight()?.to_dtype(candle_core::DType::F32).ok()?;
                let data: Vec<f32> = w.flatten_all().ok()?.to_vec1().ok()?;
                Rows::F32 { data: data.into(), n: self.out_dim, k: self.in_dim }
            }
            Kernel::Quantized(QMatMul::QTensor(q)) if q.dtype() == GgmlDType::F16 => {
                Rows::F16 { data: q.data().ok()?.into_owned().into(), n: self.out_dim, k: self.in_dim }
            }
            Kernel::Quantized(_) => return None,
        };
        let bias = match &self.bias {
            Some(b) => Some(b.to_dtype(candle_core::DType::F32).ok()?.to_vec1().ok()?),
            None => None,
        };
        Some((rows, bias))
    }

    /// Storage type name, for `ingot inspect`.
    pub fn storage_name(&self) -> String {
        match &self.kernel {
            Kernel::Dense(w) | Kernel::DenseTransposed(w) => format!("{:?}", w.dtype()),
            Kernel::Fused(m) => format!("{:?} (ingot kernel)", m.format()),
            Kernel::Quantized(QMatMul::QTensor(q)) => format!("{:?}", q.dtype()),
            Kernel::Quantized(_) => "dequantized".into(),
        }
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.forward_base(x)?;
        match &self.adapter {
            Some(a) if a.is_enabled() => y + a.forward(x)?,
            _ => Ok(y),
        }
    }

    /// The frozen (or dense trainable) layer without its adapter.
    fn forward_base(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // Dense f32 layers on the CPU that train, or run in bf16, take Ingot's linear op: the
        // bias is added in the same op and its gradient is a parallel column sum.
        let dense = match &self.kernel {
            Kernel::Dense(w) => Some(w.clone()),
            Kernel::DenseTransposed(w) => Some(w.t()?),
            Kernel::Fused(_) | Kernel::Quantized(_) => None,
        };
        if let Some(w) = dense {
            let tensors: Vec<&Tensor> = [Some(x), Some(&w), self.bias.as_ref()].into_iter().flatten().collect();
            let bf16 = crate::precision::bf16_product(x, &w);
            let f32_kernel = x.dtype() == candle_core::DType::F32 && crate::norm::kernel_dtype(&tensors);
            if f32_kernel && (bf16 || crate::norm::needs_grad(&tensors)) {
                return ingot_kernels::linear(x, &w, self.bias.as_ref(), bf16);
            }
        }
        let y = match &self.kernel {
            Kernel::Dense(w) => matmul_last_dim(x, &w.t()?)?,
            Kernel::DenseTransposed(w) => matmul_last_dim(x, w)?,
            Kernel::Fused(m) => ingot_kernels::qmatmul(x, m)?,
            // candle's QMatMul has no backward: take the op that adds one when x needs it.
            Kernel::Quantized(QMatMul::QTensor(q)) if x.track_op() => ingot_kernels::candle_qmatmul(x, q)?,
            Kernel::Quantized(q) => q.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Several linear layers reading the same input (q, k, v; gate, up). On Ingot's quantized kernel
/// they are stacked into one matrix so one call does the work; dense layers stay separate so each
/// keeps its own trainable weight.
/// Adapters stay per part: each part's update is added to its slice of the stacked output.
#[derive(Clone, Debug)]
pub enum SharedInput {
    Separate(Vec<Linear>),
    /// One kernel over the stacked weights; the parts keep only what is theirs (a second copy of
    /// their quantized weights would double the memory of q/k/v and gate/up).
    Stacked {
        layer: Linear,
        parts: Vec<StackedPart>,
    },
}

/// One layer of a [`SharedInput::Stacked`]: its key, width and adapter.
#[derive(Clone, Debug)]
pub struct StackedPart {
    key: String,
    out_dim: usize,
    adapter: Option<Lora>,
}

impl SharedInput {
    pub fn new(parts: Vec<Linear>) -> Self {
        let refs: Vec<&Linear> = parts.iter().collect();
        match Linear::concat_outputs(&refs) {
            Some(layer) => Self::Stacked {
                layer,
                parts: parts
                    .into_iter()
                    .map(|p| StackedPart { key: p.key, out_dim: p.out_dim, adapter: p.adapter })
                    .collect(),
            },
            None => Self::Separate(parts),
        }
    }

    /// Each layer's `<key>.weight` (out, in) as dense f32 and `<key>.bias`, adapters merged in
    /// when `merge`: what an exported model stores.
    pub fn named_weights(&self, merge: bool) -> candle_core::Result<Vec<(String, Tensor)>> {
        match self {
            Self::Separate(parts) => {
                let mut out = Vec::new();
                for l in parts {
                    out.extend(l.named_weights(merge)?);
                }
                Ok(out)
            }
            Self::Stacked { layer, parts } => {
                let w = layer.merged_weight(false)?; // (Σ out, in)
                let mut out = Vec::new();
                let mut start = 0;
                for p in parts {
                    let mut wp = w.narrow(0, start, p.out_dim)?;
                    if let (Some(a), true) = (&p.adapter, merge) {
                        wp = (wp + a.delta_weight()?.detach())?;
                    }
                    out.push((format!("{}.weight", p.key), wp));
                    if let Some(b) = &layer.bias {
                        out.push((format!("{}.bias", p.key), b.narrow(0, start, p.out_dim)?.detach()));
                    }
                    start += p.out_dim;
                }
                Ok(out)
            }
        }
    }

    /// Each layer's output, in order.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        match self {
            Self::Separate(parts) => parts.iter().map(|l| l.forward(x)).collect(),
            Self::Stacked { layer, parts } => {
                let y = layer.forward(x)?;
                let last = y.rank() - 1;
                let mut start = 0;
                parts
                    .iter()
                    .map(|p| {
                        let part = y.narrow(last, start, p.out_dim)?;
                        start += p.out_dim;
                        match &p.adapter {
                            Some(a) if a.is_enabled() => part + a.forward(x)?,
                            _ => Ok(part),
                        }
                    })
                    .collect()
            }
        }
    }

    /// Each part's weight and bias as the decode loop reads them (see [`Linear::decode_rows`]);
    /// a stacked layer is one matrix. None when any part has an enabled adapter.
    pub fn decode_rows(&self) -> Option<Vec<(Rows, Option<Vec<f32>>)>> {
        match self {
            Self::Separate(parts) => parts.iter().map(Linear::decode_rows).collect(),
            Self::Stacked { layer, parts } => {
                if parts.iter().any(|p| p.adapter.as_ref().is_some_and(|a| a.is_enabled())) {
                    return None;
                }
                Some(vec![layer.decode_rows()?])
            }
        }
    }

    /// Whether any part holds a dense weight.
    pub fn is_dense(&self) -> bool {
        match self {
            Self::Separate(parts) => parts.iter().any(|p| p.dense_weight().is_some()),
            Self::Stacked { layer, .. } => layer.dense_weight().is_some(),
        }
    }

    pub fn storage_name(&self) -> String {
        match self {
            Self::Separate(parts) => parts.first().map(Linear::storage_name).unwrap_or_default(),
            Self::Stacked { layer, .. } => layer.storage_name(),
        }
    }
}

/// x (..., in) @ w (in, out) -> (..., out), flattening leading dims so one GEMM does the work.
fn matmul_last_dim(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (in_dim, out_dim) = w.dims2()?;
    let mut out_shape = x.dims().to_vec();
    match out_shape.last_mut() {
        Some(last) => *last = out_dim,
        None => candle_core::bail!("linear layer applied to a scalar"),
    }
    let rows = x.elem_count() / in_dim.max(1);
    x.reshape((rows, in_dim))?.matmul(w)?.reshape(out_shape)
}

/// Token embedding whose table may be dense or quantized; `as_linear` gives the tied head.
#[derive(Clone, Debug)]
pub struct Embedding {
    table: Stored,
    dim: usize,
}

impl Embedding {
    pub fn load(w: &Weights, vocab: usize, dim: usize, init: Init) -> Result<Self> {
        Ok(Self { table: w.get_stored(&[vocab, dim], "weight", init)?, dim })
    }

    pub fn from_stored(table: Stored, dim: usize) -> Self {
        Self { table, dim }
    }

    /// ids (...) -> (..., dim)
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match &self.table {
            Stored::Dense(t) => {
                let mut shape = ids.dims().to_vec();
                shape.push(self.dim);
                t.index_select(&ids.flatten_all()?, 0)?.reshape(shape)
            }
            Stored::Quantized(q) => q.embedding(ids),
        }
    }

    pub fn stored(&self) -> &Stored {
        &self.table
    }

    /// The same table used as an output projection (weight tying).
    pub fn as_linear(&self) -> Result<Linear> {
        Linear::from_stored(self.table.clone())
    }

    pub fn quantized(&self) -> Option<&Arc<QTensor>> {
        match &self.table {
            Stored::Quantized(q) => Some(q),
            Stored::Dense(_) => None,
        }
    }
}
