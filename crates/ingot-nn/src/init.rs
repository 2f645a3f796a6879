//! Reproducible initialisation of fresh trainable weights.
//!
//! candle's CPU random generator cannot be seeded (CANDLE-NOTES), so a `VarMap` filled through
//! `candle_nn::Init` differs on every run. [`SeededVarMap`] is a `VarBuilder` backend that creates
//! each missing variable from its own generator, seeded by (run seed, variable name): the same seed
//! gives the same weights whatever order the model asks for them in.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A `VarMap` whose new variables are drawn from seeded generators.
#[derive(Clone)]
pub struct SeededVarMap {
    vars: VarMap,
    seed: u64,
}

/// FNV-1a, to turn a variable name into part of a seed.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Sample `n` values of `init` from a generator seeded by (seed, name).
pub fn sample_init(init: &Init, n: usize, fan_in: usize, seed: u64, name: &str) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(name));
    let mut normal = |mean: f64, std: f64| -> f32 {
        // Box–Muller; 1 - u keeps the log argument in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        (mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    };
    match *init {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| normal(mean, stdev)).collect(),
        Init::Uniform { lo, up } => {
            let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(name));
            (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
        }
        Init::Kaiming { .. } => {
            // Kaiming normal for a linear layer (gain sqrt(2) / sqrt(fan_in)), as candle's default.
            let std = (2.0 / fan_in.max(1) as f64).sqrt();
            (0..n).map(|_| normal(0.0, std)).collect()
        }
    }
}

impl SeededVarMap {
    pub fn new(vars: VarMap, seed: u64) -> Self {
        Self { vars, seed }
    }

    pub fn var_map(&self) -> &VarMap {
        &self.vars
    }

    /// A `VarBuilder` over this map (f32 weights), for model code.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        self.var_builder_dtype(device, DType::F32)
    }

    /// The same with weights of another float type (f64 for gradient checks).
    pub fn var_builder_dtype(&self, device: &Device, dtype: DType) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut data = self.vars.data().lock().map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
        if let Some(var) = data.get(name) {
            let t = var.as_tensor();
            if t.shape() != &s {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: t.shape().clone(),
                }
                .bt());
            }
            return Ok(t.clone());
        }
        let fan_in = s.dims().last().copied().unwrap_or(1);
        let values = sample_init(&h, s.elem_count(), fan_in, self.seed, name);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("variable '{name}' must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}
