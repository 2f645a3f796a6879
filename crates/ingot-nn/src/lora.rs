//! Low-rank adapters (LoRA, Hu et al. 2021) on linear layers, as PEFT defines them.
//!
//! A targeted layer computes y = base(x) + s · dropout(x) Aᵀ Bᵀ with A (r, in), B (out, r) and
//! s = alpha / r (rsLoRA, Kalajdzievski 2023: alpha / √r). A starts Kaiming-uniform
//! (PEFT's `kaiming_uniform_(a=√5)`: U(±1/√in)) and B at zero, so a fresh adapter leaves the model
//! exactly as it was. The base stays frozen, dense or quantized (QLoRA, Dettmers et al. 2023);
//! only A and B are trainable.
//!
//! Adapters are injected at load: [`Adapters`] rides on the [`crate::Weights`] cursor, and every
//! [`crate::Linear`] whose module name (the last part of its HF key, `q_proj`) is a target gets
//! its pair, fresh (seeded by run seed and key) or read from a saved adapter. The tensors are named
//! as PEFT names them, `base_model.model.<module key>.lora_A.weight`, so a saved adapter is a
//! PEFT adapter.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarMap};
use ingot_core::{CandleContext, Error, Result};
use serde::{Deserialize, Serialize};

use crate::dropout::{Dropout, DropoutState};

/// PEFT's default target modules for the llama family (`q_proj`, `v_proj`).
pub fn default_target_modules() -> Vec<String> {
    vec!["q_proj".into(), "v_proj".into()]
}

/// What to adapt and how; field names and defaults are PEFT's `LoraConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scale numerator: the update is multiplied by alpha / r (alpha / √r with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the adapter's input (training only).
    pub lora_dropout: f64,
    /// Module names to adapt (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
    /// `down_proj` for llama; `c_attn`, `c_proj`, `c_fc` for GPT-2), or `["all-linear"]`: every
    /// linear layer except the output head.
    pub target_modules: Vec<String>,
    /// rsLoRA scaling, alpha / √r.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { r: 8, lora_alpha: 8.0, lora_dropout: 0.0, target_modules: default_target_modules(), use_rslora: false }
    }
}

impl LoraConfig {
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(m));
        if self.r == 0 {
            return bad("lora.r must be at least 1".into());
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return bad(format!("lora.lora_alpha must be a finite number above 0, got {}", self.lora_alpha));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(format!("lora.lora_dropout must be in [0, 1), got {}", self.lora_dropout));
        }
        if self.target_modules.is_empty() {
            return bad("lora.target_modules is empty; name the modules to adapt, e.g. [\"q_proj\", \"v_proj\"]".into());
        }
        Ok(())
    }

    fn all_linear(&self) -> bool {
        self.target_modules.iter().any(|t| t == "all-linear")
    }
}

/// PEFT's key for an adapter tensor of the module at `module_key`.
pub fn peft_key(module_key: &str, part: &str) -> String {
    format!("base_model.model.{module_key}.{part}.weight")
}

/// Where adapter tensors come from.
enum Source {
    /// Fresh trainable variables, created in this map.
    Train { vars: VarMap, seed: u64 },
    /// Saved tensors (PEFT keys), frozen.
    Loaded { tensors: HashMap<String, Tensor>, origin: String },
}

/// The adapters of one model: config, tensors, and the record of which modules got one.
pub struct Adapters {
    cfg: LoraConfig,
    source: Source,
    dropout: Arc<DropoutState>,
    /// On by default; off, every adapted layer computes its base alone (the reference model of
    /// DPO, PPO and GRPO without a second copy).
    enabled: Arc<AtomicBool>,
    /// Every linear module seen at load (key) and whether it was adapted.
    seen: Mutex<Vec<(String, bool)>>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Adapters {
    /// Fresh adapters to train, in `vars`; A drawn from generators seeded by (seed, key).
    pub fn train(cfg: LoraConfig, vars: VarMap, seed: u64) -> Result<Arc<Self>> {
        cfg.validate()?;
        Ok(Arc::new(Self {
            cfg,
            source: Source::Train { vars, seed },
            dropout: DropoutState::new(),
            enabled: Arc::new(AtomicBool::new(true)),
            seen: Mutex::default(),
        }))
    }

    /// Saved adapters (PEFT-keyed tensors); `origin` names the file for errors.
    pub fn loaded(cfg: LoraConfig, tensors: HashMap<String, Tensor>, origin: impl Into<String>) -> Result<Arc<Self>> {
        cfg.validate()?;
        Ok(Arc::new(Self {
            cfg,
            source: Source::Loaded { tensors, origin: origin.into() },
            dropout: DropoutState::new(),
            enabled: Arc::new(AtomicBool::new(true)),
            seen: Mutex::default(),
        }))
    }

    pub fn config(&self) -> &LoraConfig {
        &self.cfg
    }

    /// Switch every adapter of the model on or off; returns the previous state. Off, the model
    /// is its base exactly (what a reference model for KL penalties needs).
    pub fn set_enabled(&self, on: bool) -> bool {
        self.enabled.swap(on, Ordering::Relaxed)
    }

    /// The dropout switch of every adapter (the trainer turns it on per step).
    pub fn dropout_state(&self) -> &Arc<DropoutState> {
        &self.dropout
    }

    /// The trainable variables, when training.
    pub fn var_map(&self) -> Option<&VarMap> {
        match &self.source {
            Source::Train { vars, .. } => Some(vars),
            Source::Loaded { .. } => None,
        }
    }

    fn targets(&self, module_key: &str, output_head: bool) -> bool {
        if output_head {
            return self.cfg.target_modules.iter().any(|t| t == module_key);
        }
        let name = module_key.rsplit('.').next().unwrap_or(module_key);
        self.cfg.all_linear() || self.cfg.target_modules.iter().any(|t| t == name || t == module_key)
    }

    /// The adapter for the linear layer at `module_key` (in → out), if it is a target.
    /// `output_head` layers are adapted only when named in full (PEFT's all-linear skips them).
    pub fn for_module(
        &self,
        module_key: &str,
        in_dim: usize,
        out_dim: usize,
        output_head: bool,
    ) -> Result<Option<Lora>> {
        let hit = self.targets(module_key, output_head);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((module_key.to_string(), hit));
        }
        if !hit {
            return Ok(None);
        }
        let r = self.cfg.r;
        let (a_key, b_key) = (peft_key(module_key, "lora_A"), peft_key(module_key, "lora_B"));
        let (a, b) = match &self.source {
            Source::Train { vars, seed } => {
                let bound = 1.0 / (in_dim as f64).sqrt();
                let a_init = crate::init::sample_init(
                    &Init::Uniform { lo: -bound, up: bound },
                    r * in_dim,
                    in_dim,
                    *seed,
                    &a_key,
                );
                let a = Var::from_vec(a_init, (r, in_dim), &Device::Cpu).context(|| format!("creating {a_key}"))?;
                let b = Var::zeros((out_dim, r), DType::F32, &Device::Cpu).context(|| format!("creating {b_key}"))?;
                let mut data =
                    vars.data().lock().map_err(|_| Error::Input("adapter variables lock poisoned".into()))?;
                let a = data.entry(a_key).or_insert(a).as_tensor().clone();
                let b = data.entry(b_key).or_insert(b).as_tensor().clone();
                (a, b)
            }
            Source::Loaded { tensors, origin } => {
                let get = |key: &str, shape: (usize, usize)| -> Result<Tensor> {
                    let t = tensors.get(key).ok_or_else(|| {
                        Error::Model(format!(
                            "{origin}: the adapter has no tensor '{key}' for module {module_key} (its target_modules say it should; the file is incomplete)"
                        ))
                    })?;
                    if t.dims() != [shape.0, shape.1] {
                        return Err(Error::Model(format!(
                            "{origin}: adapter tensor '{key}' has shape {:?}, but module {module_key} needs {:?}: the adapter was trained for another model",
                            t.dims(),
                            [shape.0, shape.1]
                        )));
                    }
                    t.to_dtype(DType::F32).context(|| format!("reading {key}"))
                };
                (get(&a_key, (r, in_dim))?, get(&b_key, (out_dim, r))?)
            }
        };
        let dropout =
            (self.cfg.lora_dropout > 0.0).then(|| Dropout::new(self.cfg.lora_dropout as f32, self.dropout.clone()));
        Ok(Some(Lora { a, b, scale: self.cfg.scaling(), dropout, enabled: self.enabled.clone() }))
    }

    /// After the model is built: every target must have matched a module, and a loaded adapter
    /// must have had every tensor used. Errors name the module and what exists.
    pub fn finish(&self) -> Result<()> {
        let seen = self.seen.lock().map_err(|_| Error::Input("adapter record lock poisoned".into()))?;
        let names: BTreeSet<String> = seen.iter().map(|(k, _)| k.rsplit('.').next().unwrap_or(k).to_string()).collect();
        let keys: BTreeSet<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
        for t in &self.cfg.target_modules {
            if t == "all-linear" {
                continue;
            }
            if !names.contains(t) && !keys.contains(t.as_str()) {
                return Err(Error::Input(format!(
                    "target module '{t}' does not exist in this model; its linear modules are: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if let Source::Loaded { tensors, origin } = &self.source {
            let used: BTreeSet<String> = seen
                .iter()
                .filter(|(_, hit)| *hit)
                .flat_map(|(k, _)| [peft_key(k, "lora_A"), peft_key(k, "lora_B")])
                .collect();
            if let Some(extra) = tensors.keys().find(|k| !used.contains(*k)) {
                return Err(Error::Model(format!(
                    "{origin}: adapter tensor '{extra}' matches no adapted module of this model: the adapter was trained for another model (or its adapter_config.json lists other target_modules)"
                )));
            }
        }
        Ok(())
    }

    /// Module keys that got an adapter, in load order.
    pub fn adapted_modules(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.iter().filter(|(_, hit)| *hit).map(|(k, _)| k.clone()).collect()).unwrap_or_default()
    }
}

/// One adapter pair.
#[derive(Clone, Debug)]
pub struct Lora {
    /// (r, in)
    a: Tensor,
    /// (out, r)
    b: Tensor,
    scale: f64,
    dropout: Option<Dropout>,
    /// The adapters' shared on/off switch ([`Adapters::set_enabled`]).
    enabled: Arc<AtomicBool>,
}

impl Lora {
    /// False while the adapters are switched off (the layer computes its base alone).
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The update s · dropout(x) Aᵀ Bᵀ for x (..., in) → (..., out).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = match &self.dropout {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        let (r, in_dim) = self.a.dims2()?;
        let out_dim = self.b.dims()[0];
        let rows = x.elem_count() / in_dim.max(1);
        let mut shape = x.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out_dim;
        }
        let h = x.reshape((rows, in_dim))?.matmul(&self.a.t()?)?; // (rows, r)
        debug_assert_eq!(h.dims()[1], r);
        (h.matmul(&self.b.t()?)? * self.scale)?.reshape(shape)
    }

    /// The dense update s · B A, (out, in): what merging adds to the base weight.
    pub fn delta_weight(&self) -> candle_core::Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }

    pub fn a(&self) -> &Tensor {
        &self.a
    }

    pub fn b(&self) -> &Tensor {
        &self.b
    }
}
