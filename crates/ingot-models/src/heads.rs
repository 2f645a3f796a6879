//! Scalar heads on a model's final hidden states: a reward model's score (what HF's
//! `LlamaForSequenceClassification` with one label calls `score`: a linear map C → 1 without
//! bias) and PPO's value head (the same shape, with a bias, as TRL's `v_head`).
//!
//! A head is a few thousand f32 weights, trained in full whatever the method of the model under
//! it, and saved in a file of its own (`<name>.safetensors`, key `<name>.weight` and
//! `<name>.bias`), beside the adapter or checkpoint it goes with.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ingot_core::{CandleContext, Error, Result};

/// A linear map from hidden states (N, C) to one number each (N).
#[derive(Clone, Debug)]
pub struct ScalarHead {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl ScalarHead {
    /// A fresh head in `vars` under `<name>.weight` (and `<name>.bias`): weights N(0, 0.02), as
    /// transformers initialises `score`; bias 0. Existing variables of those names are reused
    /// (a resumed run restores them afterwards).
    pub fn train(vars: &VarMap, name: &str, hidden: usize, bias: bool, seed: u64) -> Result<Self> {
        let init = ingot_nn::normal(0.02);
        let w = ingot_nn::SeededVarMap::new(vars.clone(), seed).var_builder(&Device::Cpu);
        let weight = w.pp(name).get_with_hints((1, hidden), "weight", init).context(|| format!("creating {name}"))?;
        let bias = if bias {
            Some(
                w.pp(name)
                    .get_with_hints(1, "bias", candle_nn::Init::Const(0.0))
                    .context(|| format!("creating {name}"))?,
            )
        } else {
            None
        };
        Ok(Self { name: name.into(), weight, bias })
    }

    /// The head saved by [`Self::save`] in `dir`.
    pub fn load(dir: &Path, name: &str, hidden: usize) -> Result<Self> {
        let path = dir.join(format!("{name}.safetensors"));
        if !path.is_file() {
            return Err(Error::NotFound {
                what: format!("the {name} head"),
                path,
                hint: " (a reward model's folder holds it beside its adapter or model)".into(),
            });
        }
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| Error::Corrupt {
            path: path.clone(),
            format: "safetensors",
            detail: ingot_core::text::error_text(&e),
        })?;
        let weight = tensors
            .get(&format!("{name}.weight"))
            .ok_or_else(|| Error::Model(format!("{}: no tensor '{name}.weight'", path.display())))?;
        if weight.dims() != [1, hidden] {
            return Err(Error::Model(format!(
                "{}: '{name}.weight' has shape {:?}, but this model's hidden size needs [1, {hidden}]: the head belongs to another model",
                path.display(),
                weight.dims()
            )));
        }
        let weight = weight.to_dtype(DType::F32).context(|| format!("reading {name}.weight"))?;
        let bias = match tensors.get(&format!("{name}.bias")) {
            Some(b) if b.dims() == [1] => Some(b.to_dtype(DType::F32).context(|| format!("reading {name}.bias"))?),
            Some(b) => {
                return Err(Error::Model(format!(
                    "{}: '{name}.bias' has shape {:?}, not [1]",
                    path.display(),
                    b.dims()
                )))
            }
            None => None,
        };
        Ok(Self { name: name.into(), weight, bias })
    }

    /// hidden (N, C) → (N).
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let y = hidden.matmul(&self.weight.t().context(|| "head".into())?).context(|| format!("{} head", self.name))?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b).context(|| format!("{} head bias", self.name))?,
            None => y,
        };
        y.squeeze(1).context(|| format!("{} head", self.name))
    }

    /// Write the head as `<dir>/<name>.safetensors`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut tensors = std::collections::HashMap::new();
        tensors.insert(format!("{}.weight", self.name), self.weight.detach());
        if let Some(b) = &self.bias {
            tensors.insert(format!("{}.bias", self.name), b.detach());
        }
        let path = dir.join(format!("{}.safetensors", self.name));
        let staged = ingot_core::atomic::StagedFile::create(&path)?;
        candle_core::safetensors::save(&tensors, staged.tmp_path())
            .context(|| format!("writing {}", staged.tmp_path().display()))?;
        staged.commit()
    }

    /// Its variable names, for telling them from adapter tensors.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = vec![format!("{}.weight", self.name)];
        if self.bias.is_some() {
            keys.push(format!("{}.bias", self.name));
        }
        keys
    }
}
