//! AdamW with decoupled weight decay and two parameter groups, and global gradient-norm clipping.
//!
//! Why not `candle_nn::AdamW`: it decays every parameter (norm gains and biases included), has
//! no parameter groups, and cannot save or restore its moments, so a resumed run would restart
//! them from zero. This one follows `torch.optim.AdamW` (Loshchilov & Hutter, "Decoupled Weight
//! Decay Regularization", 2019), step `t` counted from 1, for each parameter `p` with gradient `g`:
//!
//! ```text
//! p = p * (1 - lr * wd)                      decoupled decay (wd = 0 for the no-decay group)
//! m = b1 * m + (1 - b1) * g
//! v = b2 * v + (1 - b2) * g^2
//! p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//!
//! The arithmetic runs as candle tensor ops in f32, in torch's order (so results agree with
//! PyTorch to f32 rounding). Moments are kept in f32 whatever the parameter dtype. Parameters are
//! held sorted by name, so every run visits them in the same order and saved state maps back by
//! name, not by position.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::error::{Context, Error, Result};

/// Whether the parameter `name` of shape `shape` gets weight decay.
///
/// Decay pulls weights towards zero, which is what one wants for the matrices of linear layers,
/// but not for:
/// - norm gains and biases (`norm` or `ln_` in the name, or a name ending `.bias`): decaying a
///   gain towards 0 fights the normalisation it exists to undo;
/// - embeddings (`embed`, `wte`, `wpe`): each row is only updated when its token appears, while
///   decay shrinks every row every step, so rare tokens would collapse towards zero;
/// - anything of fewer than 2 dimensions (nanoGPT's whole rule: `p.dim() >= 2` decays).
///
/// A tied output head shares the embedding's variable and so is not decayed either; an untied
/// `lm_head.weight` is decayed like any other matrix.
pub fn decays(name: &str, shape: &[usize]) -> bool {
    let no_decay = name.contains("norm")
        || name.contains("ln_")
        || name.ends_with(".bias")
        || name == "bias"
        || name.contains("embed")
        || name.contains("wte")
        || name.contains("wpe");
    !no_decay && shape.len() >= 2
}

/// AdamW hyper-parameters; the learning rate comes with each step (see `LrSchedule`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    /// 0.95 rather than torch's 0.999: the second moment then tracks gradient scale changes within
    /// ~20 steps instead of ~1000, which keeps LLM pretraining stable (GPT-3, nanoGPT, Llama).
    pub beta2: f64,
    pub eps: f64,
    /// Applied to the decay group only; 0.1 as in GPT-3, nanoGPT and Llama.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<()> {
        let beta_ok = |b: f64| (0.0..1.0).contains(&b);
        if !beta_ok(self.beta1) || !beta_ok(self.beta2) {
            return Err(Error::Config(format!(
                "AdamW betas must lie in [0, 1); got beta1 {}, beta2 {}",
                self.beta1, self.beta2
            )));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::Config(format!("AdamW eps must be positive and finite; got {}", self.eps)));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::Config(format!("weight_decay must be a finite number >= 0; got {}", self.weight_decay)));
        }
        Ok(())
    }
}

/// One trainable parameter and its moments.
struct Param {
    name: String,
    var: Var,
    decay: bool,
    /// First moment (running mean of gradients), f32, the parameter's shape.
    m: Tensor,
    /// Second moment (running mean of squared gradients), f32.
    v: Tensor,
}

/// What one [`AdamW::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// Parameters updated.
    pub updated: usize,
    /// Parameters skipped because the gradient store had no gradient for them (frozen, or not
    /// reached by the loss: with candle's fused norms that is a bug, see CANDLE-NOTES.md).
    pub without_grad: usize,
}

/// AdamW over named candle variables, with a decay and a no-decay group chosen by [`decays`].
pub struct AdamW {
    params: Vec<Param>,
    config: AdamWConfig,
    step_count: u64,
}

impl AdamW {
    /// Parameter groups by [`decays`]. Names must be unique (as in a `VarMap`).
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        Self::with_decay_rule(vars, config, decays)
    }

    /// Parameter groups by a rule of the caller's (for example, LoRA adapters that all decay).
    pub fn with_decay_rule(
        mut vars: Vec<(String, Var)>,
        config: AdamWConfig,
        rule: impl Fn(&str, &[usize]) -> bool,
    ) -> Result<Self> {
        config.validate()?;
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = vars.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::Config(format!("parameter '{}' is given to the optimizer twice", w[0].0)));
        }
        let mut params = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !var.dtype().is_float() {
                return Err(Error::Config(format!(
                    "parameter '{name}' has dtype {:?}; only floating-point parameters can be trained",
                    var.dtype()
                )));
            }
            let zeros = || Tensor::zeros(var.shape(), DType::F32, var.device());
            let m = zeros().context(|| format!("allocating AdamW moments for '{name}'"))?;
            let v = zeros().context(|| format!("allocating AdamW moments for '{name}'"))?;
            let decay = rule(&name, var.dims());
            params.push(Param { name, var, decay, m, v });
        }
        let count = |decay: bool| {
            let ps = params.iter().filter(|p| p.decay == decay);
            (ps.clone().count(), ps.map(|p| p.var.elem_count()).sum::<usize>())
        };
        let ((nd, ne_d), (nn, ne_n)) = (count(true), count(false));
        tracing::info!(
            "AdamW: {nd} tensors ({ne_d} parameters) with weight decay {}, {nn} tensors ({ne_n} parameters) without",
            config.weight_decay
        );
        Ok(Self { params, config, step_count: 0 })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Steps taken so far (restored by [`AdamW::load_state`]); bias correction uses it.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// The parameters in the optimizer's (name) order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().map(|p| &p.var)
    }

    /// Each parameter's name and whether it is in the decay group, in name order.
    pub fn groups(&self) -> Vec<(&str, bool)> {
        self.params.iter().map(|p| (p.name.as_str(), p.decay)).collect()
    }

    /// Global gradient-norm clipping over this optimizer's parameters; see [`clip_grad_norm`].
    pub fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        clip_grad_norm(grads, self.vars(), max_norm)
    }

    /// One AdamW step at learning rate `lr`. Parameters with no gradient in `grads` are left
    /// alone (their moments too), as torch does; the step count advances once for all.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepReport> {
        self.step_scaled(grads, lr, 1.0)
    }

    /// [`AdamW::step`] with every gradient multiplied by `grad_scale` first: clipping
    /// ([`clip_coefficient`]) folded into the update's single pass over each parameter.
    pub fn step_scaled(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<StepReport> {
        if !grad_scale.is_finite() || grad_scale <= 0.0 {
            return Err(Error::Config(format!("gradient scale must be finite and > 0; got {grad_scale}")));
        }
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::Config(format!("learning rate must be finite and >= 0; got {lr}")));
        }
        self.step_count += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.config;
        let t = self.step_count.min(i32::MAX as u64) as i32;
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bias_correction1;

        let mut report = StepReport { updated: 0, without_grad: 0 };
        let mut missing = Vec::new();
        for p in &mut self.params {
            let Some(grad) = grads.get(p.var.as_tensor()) else {
                report.without_grad += 1;
                missing.push(p.name.as_str());
                continue;
            };
            let ctx = || format!("AdamW update of '{}'", p.name);
            let wd = if p.decay { weight_decay } else { 0.0 };
            let constants = ingot_kernels::adamw::AdamWStep {
                decay: 1.0 - lr * wd,
                beta1,
                beta2,
                eps,
                step_size,
                bias_correction2_sqrt,
                grad_scale,
            };
            if let Some((theta, m, v)) = fused_update(&p.var, grad, &p.m, &p.v, &constants).context(ctx)? {
                p.var.set(&theta).context(ctx)?;
                (p.m, p.v) = (m, v);
                report.updated += 1;
                continue;
            }
            // Other dtypes or devices: the same operations, composed.
            let g = grad.detach().to_dtype(DType::F32).context(ctx)?;
            let g = if grad_scale == 1.0 { g } else { g.affine(grad_scale, 0.0).context(ctx)? };
            let theta = p.var.as_tensor().detach().to_dtype(DType::F32).context(ctx)?;
            // The same sequence of f32 operations as torch's single-tensor AdamW.
            let next = (|| {
                let theta = theta.affine(1.0 - lr * wd, 0.0)?;
                let m = ((&p.m * beta1)? + (&g * (1.0 - beta1))?)?;
                let v = ((&p.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                let denom = v.sqrt()?.affine(1.0 / bias_correction2_sqrt, eps)?;
                let theta = (theta - ((&m / denom)? * step_size)?)?;
                candle_core::Result::Ok((theta.to_dtype(p.var.dtype())?, m, v))
            })();
            let (theta, m, v) = next.context(ctx)?;
            p.var.set(&theta).context(ctx)?;
            (p.m, p.v) = (m, v);
            report.updated += 1;
        }
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(5).copied().collect();
            let more = missing.len().saturating_sub(shown.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            if self.step_count == 1 {
                tracing::warn!(
                    "AdamW: no gradient for {} parameter(s), left unchanged: {}{more}",
                    missing.len(),
                    shown.join(", ")
                );
            } else {
                tracing::debug!("AdamW step {}: no gradient for {}{more}", self.step_count, shown.join(", "));
            }
        }
        Ok(report)
    }

    /// The moments, `m.<name>` and `v.<name>` for each parameter (f32), to save beside the
    /// weights. Restore with [`AdamW::load_state`] and the [`AdamW::step_count`].
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for p in &self.params {
            out.push((format!("m.{}", p.name), p.m.clone()));
            out.push((format!("v.{}", p.name), p.v.clone()));
        }
        out
    }

    /// Restore moments saved by [`AdamW::state_tensors`] and the step count, so that a resumed
    /// run continues exactly as the original would have. Every parameter must have both moments
    /// with its shape; a moment for a parameter this optimizer does not have is an error too (the
    /// state belongs to a different model). Nothing changes unless all checks pass.
    pub fn load_state(&mut self, mut tensors: HashMap<String, Tensor>, step_count: u64) -> Result<()> {
        let mut restored = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let mut take = |kind: &str| -> Result<Tensor> {
                let key = format!("{kind}.{}", p.name);
                let t = tensors.remove(&key).ok_or_else(|| {
                    Error::OptimizerState(format!("no saved moment '{key}' for parameter '{}'", p.name))
                })?;
                if t.dims() != p.var.dims() {
                    return Err(Error::OptimizerState(format!(
                        "saved moment '{key}' has shape {:?}, parameter '{}' has shape {:?}",
                        t.dims(),
                        p.name,
                        p.var.dims()
                    )));
                }
                Ok(t.to_dtype(DType::F32)
                    .and_then(|t| t.to_device(p.var.device()))
                    .context(|| format!("restoring moment '{key}'"))?)
            };
            restored.push((take("m")?, take("v")?));
        }
        if !tensors.is_empty() {
            let mut extra: Vec<&String> = tensors.keys().collect();
            extra.sort();
            return Err(Error::OptimizerState(format!(
                "saved state has {} moment(s) for parameters this model does not have: {}",
                extra.len(),
                extra.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        for (p, (m, v)) in self.params.iter_mut().zip(restored) {
            (p.m, p.v) = (m, v);
        }
        self.step_count = step_count;
        Ok(())
    }
}

/// One parameter's AdamW step in one pass ([`ingot_kernels::adamw`]) when the parameter, its
/// gradient and moments are contiguous f32 on the CPU: the new (θ, m, v).
fn fused_update(
    var: &Var,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    constants: &ingot_kernels::adamw::AdamWStep,
) -> candle_core::Result<Option<(Tensor, Tensor, Tensor)>> {
    let theta = var.as_tensor();
    if !ingot_nn::norm::fused_kernels() {
        return Ok(None);
    }
    if grad.elem_count() != theta.elem_count() || m.elem_count() != theta.elem_count() {
        candle_core::bail!("gradient or moments of {:?} do not match the parameter's shape", theta.dims())
    }
    // A gradient may come back as a strided view (a transposed weight's): one copy makes it
    // contiguous, cheaper than the composed update.
    let grad = &grad.contiguous()?;
    let Some((t2, m2, v2)) = ingot_kernels::with_f32_slices(&[theta, m, v, grad], |s| {
        ingot_kernels::adamw::adamw_update(s[0], s[1], s[2], s[3], constants)
    }) else {
        return Ok(None);
    };
    let (shape, device) = (theta.shape(), theta.device());
    Ok(Some((
        Tensor::from_vec(t2, shape, device)?,
        Tensor::from_vec(m2, shape, device)?,
        Tensor::from_vec(v2, shape, device)?,
    )))
}

/// The global L2 norm of the gradients of `vars` as one vector (each tensor's sum of squares
/// in f64), as `torch.nn.utils.clip_grad_norm_` takes it.
pub fn grad_norm<'a>(grads: &GradStore, vars: impl IntoIterator<Item = &'a Var>) -> Result<f64> {
    let mut sum_sq = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            let g = &g.contiguous().context(|| format!("gradient of a tensor of shape {:?}", var.dims()))?;
            let s = match ingot_kernels::with_f32_slices(&[g], |s| ingot_kernels::adamw::sum_squares(s[0])) {
                Some(s) => s,
                None => g
                    .to_dtype(DType::F64)
                    .and_then(|g| g.sqr()?.sum_all()?.to_scalar::<f64>())
                    .context(|| format!("gradient norm of a tensor of shape {:?}", var.dims()))?,
            };
            sum_sq += s;
        }
    }
    Ok(sum_sq.sqrt())
}

/// The factor clipping multiplies every gradient by for a global norm `norm`:
/// `max_norm / (norm + 1e-6)` when the norm exceeds `max_norm`, else 1 (torch's rule).
pub fn clip_coefficient(norm: f64, max_norm: f64) -> f64 {
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        coef
    } else {
        1.0
    }
}

/// Scale all gradients together so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`: the norm is taken over every gradient of `vars` as one
/// vector (each tensor's sum of squares in f64), and when it exceeds `max_norm` every gradient is
/// multiplied by `max_norm / (norm + 1e-6)`. Returns the norm before clipping, worth logging: a
/// spike often comes before a loss spike.
///
/// A non-finite norm (a NaN or inf gradient) is returned without scaling anything; the caller
/// should skip that step rather than apply it.
pub fn clip_grad_norm<'a>(
    grads: &mut GradStore,
    vars: impl IntoIterator<Item = &'a Var>,
    max_norm: f64,
) -> Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(Error::Config(format!("max gradient norm must be positive; got {max_norm}")));
    }
    let vars: Vec<&Var> = vars.into_iter().collect();
    let norm = grad_norm(grads, vars.iter().copied())?;
    if !norm.is_finite() {
        return Ok(norm);
    }
    let coef = clip_coefficient(norm, max_norm);
    if coef < 1.0 {
        for var in &vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled =
                    g.affine(coef, 0.0).context(|| format!("clipping a gradient of shape {:?}", var.dims()))?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
